//! DNS wire view: header, questions, records, EDNS, with a guard against compression loops.
//!
//! [`parse`] never fails: it returns what it could read and, when the message is malformed,
//! an error saying where (byte offset in the DNS message) and why it stopped.
//!
//! Names: labels are read until the root label; a compression pointer must point before the
//! place it is read from (so every jump goes strictly backwards, which makes loops impossible),
//! and inside the message; at most 255 bytes of name are accepted.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use thiserror::Error;

/// Field offsets within the DNS header (RFC 1035 4.1.1), from the first byte of the message
/// (the first byte of the UDP payload). Generators add the UDP header's 8 bytes to them.
pub mod field {
    /// Message id (16 bits).
    pub const ID: usize = 0;
    /// Flags: QR, opcode, AA, TC, RD, RA, Z, AD, CD, rcode (16 bits, see [`super::flags`]).
    pub const FLAGS: usize = 2;
    /// Question count (16 bits).
    pub const QDCOUNT: usize = 4;
    /// Answer count (16 bits).
    pub const ANCOUNT: usize = 6;
    /// Authority count (16 bits).
    pub const NSCOUNT: usize = 8;
    /// Additional count (16 bits).
    pub const ARCOUNT: usize = 10;
    /// Header length: the question section starts here.
    pub const HEADER_LEN: usize = 12;
    /// The first question's name.
    pub const QUESTIONS: usize = HEADER_LEN;
    /// Offsets in the fixed part that follows a record's owner name.
    pub mod record {
        /// TYPE (16 bits).
        pub const TYPE: usize = 0;
        /// CLASS (16 bits; the UDP payload size for OPT).
        pub const CLASS: usize = 2;
        /// TTL (32 bits; extended rcode, version and flags for OPT).
        pub const TTL: usize = 4;
        /// RDLENGTH (16 bits).
        pub const RDLENGTH: usize = 8;
        /// Where RDATA starts: the length of the fixed part.
        pub const RDATA: usize = 10;
    }
    /// Offsets in the fixed part that follows a question's name.
    pub mod question {
        /// QTYPE (16 bits).
        pub const TYPE: usize = 0;
        /// QCLASS (16 bits).
        pub const CLASS: usize = 2;
        /// The length of the fixed part.
        pub const LEN: usize = 4;
    }
}

/// Bits and masks of the flags word ([`field::FLAGS`]).
pub mod flags {
    /// Response.
    pub const QR: u16 = 0x8000;
    /// Opcode (4 bits).
    pub const OPCODE: u16 = 0x7800;
    /// Authoritative answer.
    pub const AA: u16 = 0x0400;
    /// Truncated.
    pub const TC: u16 = 0x0200;
    /// Recursion desired.
    pub const RD: u16 = 0x0100;
    /// Recursion available.
    pub const RA: u16 = 0x0080;
    /// Reserved bit.
    pub const Z: u16 = 0x0040;
    /// Authentic data.
    pub const AD: u16 = 0x0020;
    /// Checking disabled.
    pub const CD: u16 = 0x0010;
    /// Response code (4 bits; EDNS extends it).
    pub const RCODE: u16 = 0x000f;
}

/// Record types the view gives meaning to.
pub mod rtype {
    /// IPv4 address.
    pub const A: u16 = 1;
    /// Name server.
    pub const NS: u16 = 2;
    /// Canonical name.
    pub const CNAME: u16 = 5;
    /// Start of authority.
    pub const SOA: u16 = 6;
    /// Pointer.
    pub const PTR: u16 = 12;
    /// Mail exchange.
    pub const MX: u16 = 15;
    /// Text.
    pub const TXT: u16 = 16;
    /// IPv6 address.
    pub const AAAA: u16 = 28;
    /// EDNS pseudo-record.
    pub const OPT: u16 = 41;
}

/// EDNS option codes the view gives meaning to.
pub mod option {
    /// Name server identifier.
    pub const NSID: u16 = 3;
    /// Client subnet.
    pub const CLIENT_SUBNET: u16 = 8;
    /// Cookie.
    pub const COOKIE: u16 = 10;
    /// Padding.
    pub const PADDING: u16 = 12;
}

/// Where and why parsing stopped.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("at byte offset {offset} of the DNS message: {message}")]
pub struct DnsError {
    /// Offset in the DNS message.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

fn error(offset: usize, message: impl Into<String>) -> DnsError {
    DnsError {
        offset,
        message: message.into(),
    }
}

/// The fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Header {
    /// Message id.
    pub id: u16,
    /// The flags word.
    pub flags: u16,
    /// Question count.
    pub qdcount: u16,
    /// Answer count.
    pub ancount: u16,
    /// Authority count.
    pub nscount: u16,
    /// Additional count.
    pub arcount: u16,
}

impl Header {
    /// Names of the single-bit flags that are set (`qr aa tc rd ra z ad cd`).
    pub fn flag_names(&self) -> Vec<&'static str> {
        const BITS: [(u16, &str); 8] = [
            (flags::QR, "qr"),
            (flags::AA, "aa"),
            (flags::TC, "tc"),
            (flags::RD, "rd"),
            (flags::RA, "ra"),
            (flags::Z, "z"),
            (flags::AD, "ad"),
            (flags::CD, "cd"),
        ];
        BITS.iter()
            .filter(|(bit, _)| self.flags & bit != 0)
            .map(|(_, name)| *name)
            .collect()
    }
    /// The opcode (4 bits).
    pub fn opcode(&self) -> u16 {
        (self.flags & flags::OPCODE) >> 11
    }
    /// The rcode (4 bits; EDNS extends it).
    pub fn rcode(&self) -> u16 {
        self.flags & flags::RCODE
    }
}

/// A question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// The name, dotted, ending with `.`.
    pub name: String,
    /// QTYPE.
    pub qtype: u16,
    /// QCLASS.
    pub qclass: u16,
}

/// An EDNS option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdnsOption {
    /// Option code.
    pub code: u16,
    /// Option data.
    pub data: Vec<u8>,
}

/// A resource record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Owner name.
    pub name: String,
    /// TYPE.
    pub rtype: u16,
    /// CLASS (the UDP payload size for OPT).
    pub class: u16,
    /// TTL (extended rcode, version and flags for OPT).
    pub ttl: u32,
    /// The data, shown as text.
    pub data: String,
    /// EDNS options, for OPT records.
    pub options: Vec<EdnsOption>,
}

/// Which section a record is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// Answers.
    Answer,
    /// Authority.
    Authority,
    /// Additional.
    Additional,
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Section::Answer => "answer",
            Section::Authority => "authority",
            Section::Additional => "additional",
        })
    }
}

/// What could be read of a message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    /// The header, if the message is at least 12 bytes.
    pub header: Option<Header>,
    /// Questions read.
    pub questions: Vec<Question>,
    /// Records read, with their section.
    pub records: Vec<(Section, Record)>,
    /// Why parsing stopped early.
    pub error: Option<DnsError>,
}

/// The name of a record type.
pub fn type_name(rtype: u16) -> String {
    match rtype {
        1 => "A".into(),
        2 => "NS".into(),
        5 => "CNAME".into(),
        6 => "SOA".into(),
        12 => "PTR".into(),
        15 => "MX".into(),
        16 => "TXT".into(),
        28 => "AAAA".into(),
        33 => "SRV".into(),
        41 => "OPT".into(),
        43 => "DS".into(),
        46 => "RRSIG".into(),
        47 => "NSEC".into(),
        48 => "DNSKEY".into(),
        50 => "NSEC3".into(),
        65 => "HTTPS".into(),
        255 => "ANY".into(),
        other => format!("TYPE{other}"),
    }
}

/// The name of a class.
pub fn class_name(class: u16) -> String {
    match class {
        1 => "IN".into(),
        3 => "CH".into(),
        4 => "HS".into(),
        255 => "ANY".into(),
        other => format!("CLASS{other}"),
    }
}

/// The name of an opcode.
pub fn opcode_name(opcode: u16) -> String {
    match opcode {
        0 => "QUERY".into(),
        1 => "IQUERY".into(),
        2 => "STATUS".into(),
        4 => "NOTIFY".into(),
        5 => "UPDATE".into(),
        other => format!("OPCODE{other}"),
    }
}

/// The name of an rcode.
pub fn rcode_name(rcode: u16) -> String {
    match rcode {
        0 => "NOERROR".into(),
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        16 => "BADVERS".into(),
        other => format!("RCODE{other}"),
    }
}

/// The name of an EDNS option.
pub fn option_name(code: u16) -> String {
    match code {
        3 => "NSID".into(),
        8 => "CLIENT-SUBNET".into(),
        10 => "COOKIE".into(),
        11 => "TCP-KEEPALIVE".into(),
        12 => "PADDING".into(),
        15 => "EDE".into(),
        other => format!("OPTION{other}"),
    }
}

fn u16_at(msg: &[u8], at: usize) -> Option<u16> {
    msg.get(at..at + 2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
}

fn u32_at(msg: &[u8], at: usize) -> Option<u32> {
    msg.get(at..at + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn push_label(name: &mut String, label: &[u8]) {
    for &b in label {
        match b {
            b'.' | b'\\' => {
                name.push('\\');
                name.push(char::from(b));
            }
            0x21..=0x7e => name.push(char::from(b)),
            other => name.push_str(&format!("\\{other:03}")),
        }
    }
    name.push('.');
}

/// Reads the name at `at`; returns it (dotted, `.` for the root) and the offset after it.
pub fn read_name(msg: &[u8], at: usize) -> Result<(String, usize), DnsError> {
    let mut name = String::new();
    let mut pos = at;
    let mut after: Option<usize> = None;
    let mut wire_len = 0usize;
    // Every pointer must go strictly backwards from where it is read: no loops possible.
    let mut limit = at;
    loop {
        let len = *msg.get(pos).ok_or_else(|| {
            error(
                pos,
                format!("name at {at} runs past the end of the message"),
            )
        })?;
        match len & 0xc0 {
            0x00 => {
                if len == 0 {
                    if name.is_empty() {
                        name.push('.');
                    }
                    return Ok((name, after.unwrap_or(pos + 1)));
                }
                let label = msg
                    .get(pos + 1..pos + 1 + usize::from(len))
                    .ok_or_else(|| {
                        error(
                            pos,
                            format!("label of {len} bytes runs past the end of the message"),
                        )
                    })?;
                wire_len += 1 + usize::from(len);
                if wire_len > 255 {
                    return Err(error(pos, "name longer than 255 bytes"));
                }
                push_label(&mut name, label);
                pos += 1 + usize::from(len);
            }
            0xc0 => {
                let target = usize::from(
                    u16_at(msg, pos).ok_or_else(|| {
                        error(pos, "compression pointer cut by the end of the message")
                    })? & 0x3fff,
                );
                if target >= limit {
                    return Err(error(
                        pos,
                        format!("compression pointer to offset {target} does not point backwards: a loop or a forward reference"),
                    ));
                }
                after.get_or_insert(pos + 2);
                limit = target;
                pos = target;
            }
            _ => {
                return Err(error(
                    pos,
                    format!("label type {:#04x} is not supported", len & 0xc0),
                ))
            }
        }
    }
}

fn rdata_text(msg: &[u8], rtype: u16, start: usize, rdata: &[u8]) -> Result<String, DnsError> {
    let name_at = |at| read_name(msg, at).map(|(n, _)| n);
    Ok(match rtype {
        1 if rdata.len() == 4 => Ipv4Addr::new(rdata[0], rdata[1], rdata[2], rdata[3]).to_string(),
        28 if rdata.len() == 16 => {
            let mut bytes = [0u8; 16];
            bytes.copy_from_slice(rdata);
            Ipv6Addr::from(bytes).to_string()
        }
        2 | 5 | 12 => name_at(start)?,
        15 if rdata.len() >= 3 => format!(
            "{} {}",
            u16::from_be_bytes([rdata[0], rdata[1]]),
            name_at(start + 2)?
        ),
        6 => {
            let (mname, next) = read_name(msg, start)?;
            let (rname, next) = read_name(msg, next)?;
            let serial = u32_at(msg, next).ok_or_else(|| error(next, "SOA record cut short"))?;
            format!("{mname} {rname} {serial}")
        }
        16 => {
            let mut parts = Vec::new();
            let mut i = 0;
            while i < rdata.len() {
                let len = usize::from(rdata[i]);
                let text = rdata
                    .get(i + 1..i + 1 + len)
                    .ok_or_else(|| error(start + i, "TXT string runs past the record"))?;
                parts.push(format!(
                    "\"{}\"",
                    String::from_utf8_lossy(text).escape_default()
                ));
                i += 1 + len;
            }
            parts.join(" ")
        }
        _ => hex::encode(rdata),
    })
}

fn parse_options(rdata: &[u8], start: usize) -> Result<Vec<EdnsOption>, DnsError> {
    let mut options = Vec::new();
    let mut i = 0;
    while i < rdata.len() {
        let (Some(code), Some(len)) = (u16_at(rdata, i), u16_at(rdata, i + 2)) else {
            return Err(error(start + i, "EDNS option header cut short"));
        };
        let data = rdata.get(i + 4..i + 4 + usize::from(len)).ok_or_else(|| {
            error(
                start + i,
                format!("EDNS option {} runs past the OPT record", option_name(code)),
            )
        })?;
        options.push(EdnsOption {
            code,
            data: data.to_vec(),
        });
        i += 4 + usize::from(len);
    }
    Ok(options)
}

/// Describes an EDNS option's data (client subnet with its address, cookies, NSID...).
pub fn option_text(option: &EdnsOption) -> String {
    let data = &option.data;
    match option.code {
        8 if data.len() >= 4 => {
            let family = u16::from_be_bytes([data[0], data[1]]);
            let (source, scope) = (data[2], data[3]);
            let address = &data[4..];
            let shown = match family {
                1 => {
                    let mut b = [0u8; 4];
                    b[..address.len().min(4)].copy_from_slice(&address[..address.len().min(4)]);
                    Ipv4Addr::from(b).to_string()
                }
                2 => {
                    let mut b = [0u8; 16];
                    b[..address.len().min(16)].copy_from_slice(&address[..address.len().min(16)]);
                    Ipv6Addr::from(b).to_string()
                }
                _ => hex::encode(address),
            };
            format!("{shown}/{source} scope /{scope}")
        }
        10 if data.len() >= 8 => {
            if data.len() > 8 {
                format!(
                    "client {} server {}",
                    hex::encode(&data[..8]),
                    hex::encode(&data[8..])
                )
            } else {
                format!("client {}", hex::encode(data))
            }
        }
        3 => {
            let printable = data.iter().all(|b| b.is_ascii_graphic() || *b == b' ');
            if printable && !data.is_empty() {
                format!(
                    "{} \"{}\"",
                    hex::encode(data),
                    String::from_utf8_lossy(data)
                )
            } else {
                hex::encode(data)
            }
        }
        12 => format!("{} bytes", data.len()),
        _ => hex::encode(data),
    }
}

/// Reads a DNS message as far as it can.
pub fn parse(msg: &[u8]) -> Message {
    let mut message = Message::default();
    if msg.len() < field::HEADER_LEN {
        message.error = Some(error(
            msg.len(),
            format!(
                "message is {} bytes, shorter than the 12-byte header",
                msg.len()
            ),
        ));
        return message;
    }
    let word = |at| u16_at(msg, at).unwrap_or(0);
    let header = Header {
        id: word(field::ID),
        flags: word(field::FLAGS),
        qdcount: word(field::QDCOUNT),
        ancount: word(field::ANCOUNT),
        nscount: word(field::NSCOUNT),
        arcount: word(field::ARCOUNT),
    };
    message.header = Some(header);
    let mut pos = field::HEADER_LEN;
    let result = (|| -> Result<(), DnsError> {
        for _ in 0..header.qdcount {
            let (name, next) = read_name(msg, pos)?;
            let (Some(qtype), Some(qclass)) = (u16_at(msg, next), u16_at(msg, next + 2)) else {
                return Err(error(next, "question cut short: expected type and class"));
            };
            message.questions.push(Question {
                name,
                qtype,
                qclass,
            });
            pos = next + 4;
        }
        let sections = [
            (Section::Answer, header.ancount),
            (Section::Authority, header.nscount),
            (Section::Additional, header.arcount),
        ];
        for (section, count) in sections {
            for _ in 0..count {
                let (name, next) = read_name(msg, pos)?;
                let fixed = msg.get(next..next + 10).ok_or_else(|| {
                    error(
                        next,
                        "record cut short: expected type, class, TTL and length",
                    )
                })?;
                let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
                let class = u16::from_be_bytes([fixed[2], fixed[3]]);
                let ttl = u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
                let rdlen = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
                let start = next + 10;
                let rdata = msg.get(start..start + rdlen).ok_or_else(|| {
                    error(
                        start,
                        format!("record data of {rdlen} bytes runs past the end of the message"),
                    )
                })?;
                let (data, options) = if rtype == 41 {
                    (String::new(), parse_options(rdata, start)?)
                } else {
                    (rdata_text(msg, rtype, start, rdata)?, Vec::new())
                };
                message.records.push((
                    section,
                    Record {
                        name,
                        rtype,
                        class,
                        ttl,
                        data,
                        options,
                    },
                ));
                pos = start + rdlen;
            }
        }
        if pos < msg.len() {
            return Err(error(
                pos,
                format!("{} bytes after the last record", msg.len() - pos),
            ));
        }
        Ok(())
    })();
    message.error = result.err();
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointer_loops_and_forward_pointers_are_refused() {
        // Header, then a name that points to itself.
        let mut msg = vec![0u8; 12];
        msg[5] = 1;
        msg.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        let parsed = parse(&msg);
        let err = parsed.error.unwrap();
        assert_eq!(err.offset, 12);
        assert!(err.message.contains("does not point backwards"), "{err}");
        // Two pointers pointing at each other.
        let mut msg = vec![0u8; 12];
        msg.extend_from_slice(&[0xc0, 14, 0xc0, 12]);
        assert!(read_name(&msg, 14).is_err());
    }

    #[test]
    fn names_follow_backward_pointers() {
        let mut msg = vec![0u8; 12];
        msg.extend_from_slice(b"\x03www\x07example\x03net\x00");
        let second = msg.len();
        msg.extend_from_slice(&[3, b'f', b'o', b'o', 0xc0, 16]);
        assert_eq!(
            read_name(&msg, 12).unwrap(),
            ("www.example.net.".to_string(), second)
        );
        assert_eq!(read_name(&msg, second).unwrap().0, "foo.example.net.");
    }
}
