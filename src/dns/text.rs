//! The text form of DNS messages: what `parsedns` prints.
//!
//! Keeps the owned message ([`Message`]: header, questions, records as text, EDNS options)
//! that [`parse`] reads with the wire view's walker, and the names of types, classes, opcodes,
//! rcodes and options. [`parse`] never fails: it returns what it could read and the error that
//! stopped it. Must not read the wire form itself beyond what the walker hands over: every
//! offset it reads was checked by the view.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::rtype;
use super::wire::{
    error, u32_at, walk_name, DnsError, DnsProblem as Problem, Entry, Header, NameRef, Packet,
    RecordRef, Section,
};

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

fn push_label(name: &mut String, label: &[u8]) {
    let plain = |b: &u8| matches!(b, 0x21..=0x7e) && *b != b'.' && *b != b'\\';
    if label.iter().all(plain) {
        // Printable ASCII only: valid UTF-8, copied at once.
        name.push_str(std::str::from_utf8(label).unwrap_or_default());
        name.push('.');
        return;
    }
    for &b in label {
        match b {
            b'.' | b'\\' => {
                name.push('\\');
                name.push(char::from(b));
            }
            0x21..=0x7e => name.push(char::from(b)),
            other => {
                name.push('\\');
                name.push(char::from(b'0' + other / 100));
                name.push(char::from(b'0' + other / 10 % 10));
                name.push(char::from(b'0' + other % 10));
            }
        }
    }
    name.push('.');
}

/// Reads the name at `at`; returns it (dotted, `.` for the root; `.` and `\` escaped, other
/// bytes outside printable ASCII as `\DDD`) and the offset after it.
pub fn read_name(msg: &[u8], at: usize) -> Result<(String, usize), DnsError> {
    let mut name = String::new();
    let after = walk_name(msg, at, |label, _| push_label(&mut name, &msg[label]))?;
    if name.is_empty() {
        name.push('.');
    }
    Ok((name, after))
}

fn rdata_text(msg: &[u8], record: &RecordRef) -> Result<String, DnsError> {
    let rdata = &msg[record.rdata.clone()];
    let start = record.rdata.start;
    let names = record.rdata_names(msg)?;
    let name_text = |name: Option<NameRef>| -> Result<String, DnsError> {
        match name {
            Some(name) => Ok(read_name(msg, name.start)?.0),
            None => Ok(String::new()),
        }
    };
    Ok(match record.rtype {
        rtype::A if rdata.len() == 4 => {
            Ipv4Addr::new(rdata[0], rdata[1], rdata[2], rdata[3]).to_string()
        }
        rtype::AAAA if rdata.len() == 16 => {
            let mut bytes = [0u8; 16];
            bytes.copy_from_slice(rdata);
            Ipv6Addr::from(bytes).to_string()
        }
        rtype::NS | rtype::CNAME | rtype::PTR => name_text(names[0])?,
        rtype::MX if rdata.len() >= 3 => format!(
            "{} {}",
            u16::from_be_bytes([rdata[0], rdata[1]]),
            name_text(names[0])?
        ),
        rtype::SOA => {
            let after = names[1].map_or(start, |n| n.end);
            let serial = u32_at(msg, after).ok_or_else(|| error(after, Problem::SoaCut))?;
            format!("{} {} {serial}", name_text(names[0])?, name_text(names[1])?)
        }
        rtype::TXT => {
            let mut parts = Vec::new();
            let mut i = 0;
            while i < rdata.len() {
                let len = usize::from(rdata[i]);
                let text = rdata
                    .get(i + 1..i + 1 + len)
                    .ok_or_else(|| error(start + i, Problem::TxtRunsPast))?;
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

/// Reads a DNS message as far as it can, with the walker of [`Packet::entries`].
pub fn parse(msg: &[u8]) -> Message {
    let mut message = Message::default();
    let packet = match Packet::new_checked(msg) {
        Ok(packet) => packet,
        Err(e) => {
            message.error = Some(e);
            return message;
        }
    };
    message.header = Some(packet.header());
    let result = (|| -> Result<(), DnsError> {
        for entry in packet.entries() {
            match entry? {
                Entry::Question(q) => message.questions.push(Question {
                    name: read_name(msg, q.name.start)?.0,
                    qtype: q.qtype,
                    qclass: q.qclass,
                }),
                Entry::Record(r) => {
                    let name = read_name(msg, r.name.start)?.0;
                    let (data, options) = if r.rtype == rtype::OPT {
                        let mut options = Vec::new();
                        for option in r.options(msg) {
                            let option = option?;
                            if option.cut {
                                return Err(error(
                                    option.data.start - 4,
                                    Problem::OptionRunsPast { code: option.code },
                                ));
                            }
                            options.push(EdnsOption {
                                code: option.code,
                                data: msg[option.data].to_vec(),
                            });
                        }
                        (String::new(), options)
                    } else {
                        (rdata_text(msg, &r)?, Vec::new())
                    };
                    message.records.push((
                        r.section,
                        Record {
                            name,
                            rtype: r.rtype,
                            class: r.class,
                            ttl: r.ttl,
                            data,
                            options,
                        },
                    ));
                }
            }
        }
        Ok(())
    })();
    message.error = result.err();
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::tests::answer_with_pointer_and_opt;

    #[test]
    fn pointer_loops_and_forward_pointers_are_refused() {
        // Header, then a name that points to itself.
        let mut msg = vec![0u8; 12];
        msg[5] = 1;
        msg.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        let parsed = parse(&msg);
        let err = parsed.error.unwrap();
        assert_eq!(err.offset, 12);
        assert!(
            err.to_string().contains("does not point backwards"),
            "{err}"
        );
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

    #[test]
    fn parse_reads_what_the_walker_finds() {
        let msg = answer_with_pointer_and_opt();
        let parsed = parse(&msg);
        assert_eq!(parsed.error, None);
        assert_eq!(parsed.records[0].1.name, "www.example.net.");
        assert_eq!(parsed.records[0].1.data, "192.0.2.2");
        assert_eq!(
            option_text(&parsed.records[1].1.options[0]),
            "10.53.0.0/24 scope /0"
        );
    }

    #[test]
    fn the_walker_stops_at_cut_records_and_trailing_bytes() {
        let msg = answer_with_pointer_and_opt();
        // Every cut inside the records is an error with its place, never a panic.
        for len in 12..msg.len() {
            let parsed = parse(&msg[..len]);
            let err = parsed
                .error
                .unwrap_or_else(|| panic!("cut at {len}: no error"));
            assert!(err.offset <= len, "cut at {len}: {err}");
        }
        let mut longer = msg.clone();
        longer.push(0);
        let err = parse(&longer).error.unwrap();
        assert_eq!(err.offset, msg.len());
        assert!(
            err.to_string().contains("1 bytes after the last record"),
            "{err}"
        );
        // An option claiming more than the OPT record holds is given cut, and parse refuses it.
        let mut cut = msg.clone();
        let at = cut.len() - 9;
        cut[at] = 8;
        let packet = Packet::new_checked(&cut[..]).unwrap();
        let Some(Ok(Entry::Record(opt))) = packet.entries().nth(2) else {
            panic!()
        };
        let option = opt.options(&cut).next().unwrap().unwrap();
        assert!(option.cut);
        assert_eq!(option.data.end, cut.len());
        assert!(parse(&cut)
            .error
            .unwrap()
            .to_string()
            .contains("runs past the OPT record"));
    }

    #[test]
    fn names_longer_than_255_bytes_and_reserved_label_types_are_refused() {
        let mut msg = vec![0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        for _ in 0..5 {
            msg.push(63);
            msg.extend_from_slice(&[b'a'; 63]);
        }
        msg.extend_from_slice(&[0, 0, 1, 0, 1]);
        assert!(parse(&msg)
            .error
            .unwrap()
            .to_string()
            .contains("longer than 255"));
        let msg = [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 1, 0, 1];
        assert!(parse(&msg)
            .error
            .unwrap()
            .to_string()
            .contains("label type 0x40"));
    }

    #[test]
    fn names_escape_dots_and_bytes_outside_printable_ascii() {
        let msg = [
            0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, b'a', b'.', 0xff, 0, 0, 1, 0, 1,
        ];
        assert_eq!(parse(&msg).questions[0].name, "a\\.\\255.");
    }
}
