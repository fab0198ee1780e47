//! DNS wire view: header, questions, records, EDNS, with a guard against compression loops.
//!
//! [`Packet`] is the view over untrusted bytes: a checked constructor, the header fields by
//! name (offsets in [`field`]), and one walker ([`Packet::entries`], [`walk_name`],
//! [`RecordRef::rdata_names`], [`RecordRef::options`]) that both [`parse`] (for `parsedns`)
//! and the scrubber (`pcap2hex --scrub`) use.
//!
//! [`parse`] never fails: it returns what it could read and, when the message is malformed,
//! an error saying where (byte offset in the DNS message) and why it stopped.
//!
//! Names: labels are read until the root label; a compression pointer must point before the
//! place it is read from (so every jump goes strictly backwards, which makes loops impossible),
//! and inside the message; at most 255 bytes of name are accepted.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::Range;

use thiserror::Error;

pub mod dissect;

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

/// Walks the name written at `at`: calls `on_label(range, inline)` for each label (its bytes'
/// range in `msg`; `inline` when the label is written at the name's place, before the first
/// compression pointer) and returns the offset after the name where it is written.
///
/// The guard against compression loops: a pointer must point strictly before the place the
/// previous jump started from, so every jump goes backwards and the walk ends after at most
/// as many jumps as there are bytes before `at`. Names longer than 255 bytes, label types
/// 0x40 and 0x80 and names running off the message are errors.
pub fn walk_name(
    msg: &[u8],
    at: usize,
    mut on_label: impl FnMut(Range<usize>, bool),
) -> Result<usize, DnsError> {
    let mut pos = at;
    let mut after: Option<usize> = None;
    let mut wire_len = 0usize;
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
                    return Ok(after.unwrap_or(pos + 1));
                }
                let end = pos + 1 + usize::from(len);
                if end > msg.len() {
                    return Err(error(
                        pos,
                        format!("label of {len} bytes runs past the end of the message"),
                    ));
                }
                wire_len += 1 + usize::from(len);
                if wire_len > 255 {
                    return Err(error(pos, "name longer than 255 bytes"));
                }
                on_label(pos + 1..end, after.is_none());
                pos = end;
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

/// Where a name is written: from `start` to `end` (the root label or the compression pointer
/// that ends it included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameRef {
    /// Offset of the first byte.
    pub start: usize,
    /// Offset after the last byte.
    pub end: usize,
}

/// A question as the walker finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuestionRef {
    /// Where its name is.
    pub name: NameRef,
    /// QTYPE.
    pub qtype: u16,
    /// QCLASS.
    pub qclass: u16,
}

/// A resource record as the walker finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRef {
    /// Its section.
    pub section: Section,
    /// Where its owner name is.
    pub name: NameRef,
    /// TYPE.
    pub rtype: u16,
    /// CLASS (the UDP payload size for OPT).
    pub class: u16,
    /// TTL (extended rcode, version and flags for OPT).
    pub ttl: u32,
    /// Where its data is (inside the message: checked).
    pub rdata: Range<usize>,
}

/// An EDNS option as the walker finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionRef {
    /// Option code.
    pub code: u16,
    /// Where its value is, cut at the end of the OPT record when it claims more (`cut`).
    pub data: Range<usize>,
    /// The value claims more bytes than the OPT record holds: `data` is what there is.
    pub cut: bool,
}

impl RecordRef {
    /// The names inside the record's data, by type: NS, CNAME and PTR one, MX one after the
    /// preference (when the data is at least 3 bytes), SOA two (MNAME and RNAME).
    pub fn rdata_names(&self, msg: &[u8]) -> Result<[Option<NameRef>; 2], DnsError> {
        let at = |start: usize| -> Result<NameRef, DnsError> {
            let end = walk_name(msg, start, |_, _| {})?;
            Ok(NameRef { start, end })
        };
        let start = self.rdata.start;
        Ok(match self.rtype {
            rtype::NS | rtype::CNAME | rtype::PTR => [Some(at(start)?), None],
            rtype::MX if self.rdata.len() >= 3 => [Some(at(start + 2)?), None],
            rtype::SOA => {
                let mname = at(start)?;
                [Some(mname), Some(at(mname.end)?)]
            }
            _ => [None, None],
        })
    }

    /// The EDNS options of an OPT record (none for other types). Stops after an option header
    /// cut by the end of the record (an error) or an option value that is (`cut`).
    pub fn options<'a>(&self, msg: &'a [u8]) -> EdnsOptions<'a> {
        EdnsOptions {
            msg,
            pos: self.rdata.start,
            end: if self.rtype == rtype::OPT {
                self.rdata.end
            } else {
                self.rdata.start
            },
        }
    }
}

/// The options of an OPT record, in order (see [`RecordRef::options`]).
#[derive(Debug, Clone)]
pub struct EdnsOptions<'a> {
    msg: &'a [u8],
    pos: usize,
    end: usize,
}

impl Iterator for EdnsOptions<'_> {
    type Item = Result<OptionRef, DnsError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.end {
            return None;
        }
        let at = self.pos;
        if at + 4 > self.end {
            self.pos = self.end;
            return Some(Err(error(at, "EDNS option header cut short")));
        }
        let code = u16::from_be_bytes([self.msg[at], self.msg[at + 1]]);
        let len = usize::from(u16::from_be_bytes([self.msg[at + 2], self.msg[at + 3]]));
        let start = at + 4;
        let cut = start + len > self.end;
        let end = if cut { self.end } else { start + len };
        self.pos = end;
        Some(Ok(OptionRef {
            code,
            data: start..end,
            cut,
        }))
    }
}

/// One entry of a message, in wire order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A question.
    Question(QuestionRef),
    /// A record of the answer, authority or additional section.
    Record(RecordRef),
}

/// A view of a DNS message over untrusted bytes: the header fields by name, and the walker
/// over questions and records ([`Packet::entries`]).
///
/// The constructor checks that the header is there ([`Packet::new_checked`]), so the header
/// accessors cannot fail; everything after the header is checked as it is walked.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// A view of `buffer` (the UDP payload), refused when shorter than the 12-byte header.
    pub fn new_checked(buffer: T) -> Result<Packet<T>, DnsError> {
        let len = buffer.as_ref().len();
        if len < field::HEADER_LEN {
            return Err(error(
                len,
                format!("message is {len} bytes, shorter than the 12-byte header"),
            ));
        }
        Ok(Packet { buffer })
    }

    /// The message bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// The buffer the view was made from.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn word(&self, at: usize) -> u16 {
        let msg = self.buffer.as_ref();
        u16::from_be_bytes([msg[at], msg[at + 1]])
    }

    /// Message id.
    pub fn id(&self) -> u16 {
        self.word(field::ID)
    }

    /// The flags word.
    pub fn flags(&self) -> u16 {
        self.word(field::FLAGS)
    }

    /// Question count.
    pub fn qdcount(&self) -> u16 {
        self.word(field::QDCOUNT)
    }

    /// Answer count.
    pub fn ancount(&self) -> u16 {
        self.word(field::ANCOUNT)
    }

    /// Authority count.
    pub fn nscount(&self) -> u16 {
        self.word(field::NSCOUNT)
    }

    /// Additional count.
    pub fn arcount(&self) -> u16 {
        self.word(field::ARCOUNT)
    }

    /// The whole header.
    pub fn header(&self) -> Header {
        Header {
            id: self.id(),
            flags: self.flags(),
            qdcount: self.qdcount(),
            ancount: self.ancount(),
            nscount: self.nscount(),
            arcount: self.arcount(),
        }
    }

    /// The walker: the questions, then the records of each section as the counts say. Each
    /// name is walked whole (with the loop guard) and each record's data must lie inside the
    /// message. Yields an error and stops at the first problem, and at the end when bytes
    /// follow the last record.
    pub fn entries(&self) -> Entries<'_> {
        Entries {
            msg: self.buffer.as_ref(),
            pos: field::QUESTIONS,
            remaining: [
                self.qdcount(),
                self.ancount(),
                self.nscount(),
                self.arcount(),
            ],
            stage: 0,
            done: false,
        }
    }
}

/// The entries of a message, in wire order (see [`Packet::entries`]).
#[derive(Debug, Clone)]
pub struct Entries<'a> {
    msg: &'a [u8],
    pos: usize,
    /// Entries left in the question, answer, authority and additional sections.
    remaining: [u16; 4],
    stage: usize,
    done: bool,
}

impl Entries<'_> {
    /// Offset of the next entry (after the last one read).
    pub fn offset(&self) -> usize {
        self.pos
    }

    fn read(&mut self) -> Result<Entry, DnsError> {
        let msg = self.msg;
        let start = self.pos;
        let end = walk_name(msg, start, |_, _| {})?;
        let name = NameRef { start, end };
        if self.stage == 0 {
            let (Some(qtype), Some(qclass)) = (
                u16_at(msg, end + field::question::TYPE),
                u16_at(msg, end + field::question::CLASS),
            ) else {
                return Err(error(end, "question cut short: expected type and class"));
            };
            self.pos = end + field::question::LEN;
            return Ok(Entry::Question(QuestionRef {
                name,
                qtype,
                qclass,
            }));
        }
        use field::record;
        let fixed = msg.get(end..end + record::RDATA).ok_or_else(|| {
            error(
                end,
                "record cut short: expected type, class, TTL and length",
            )
        })?;
        let word = |at: usize| u16::from_be_bytes([fixed[at], fixed[at + 1]]);
        let rdlen = usize::from(word(record::RDLENGTH));
        let rdata_start = end + record::RDATA;
        if rdata_start + rdlen > msg.len() {
            return Err(error(
                rdata_start,
                format!("record data of {rdlen} bytes runs past the end of the message"),
            ));
        }
        self.pos = rdata_start + rdlen;
        Ok(Entry::Record(RecordRef {
            section: [Section::Answer, Section::Authority, Section::Additional][self.stage - 1],
            name,
            rtype: word(record::TYPE),
            class: word(record::CLASS),
            ttl: u32::from_be_bytes([
                fixed[record::TTL],
                fixed[record::TTL + 1],
                fixed[record::TTL + 2],
                fixed[record::TTL + 3],
            ]),
            rdata: rdata_start..rdata_start + rdlen,
        }))
    }
}

impl Iterator for Entries<'_> {
    type Item = Result<Entry, DnsError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        while self.stage < 4 && self.remaining[self.stage] == 0 {
            self.stage += 1;
        }
        if self.stage == 4 {
            self.done = true;
            let left = self.msg.len() - self.pos;
            return (left > 0).then(|| {
                Err(error(
                    self.pos,
                    format!("{left} bytes after the last record"),
                ))
            });
        }
        self.remaining[self.stage] -= 1;
        let entry = self.read();
        self.done = entry.is_err();
        Some(entry)
    }
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
            let serial = u32_at(msg, after).ok_or_else(|| error(after, "SOA record cut short"))?;
            format!("{} {} {serial}", name_text(names[0])?, name_text(names[1])?)
        }
        rtype::TXT => {
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
                                    format!(
                                        "EDNS option {} runs past the OPT record",
                                        option_name(option.code)
                                    ),
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
pub(crate) mod tests {
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

    /// Header (id 0x1234, one question, one answer, one additional), `www.example.net A IN`,
    /// an answer whose owner is a pointer to the question's name, and an OPT record with a
    /// client-subnet option.
    pub(crate) fn answer_with_pointer_and_opt() -> Vec<u8> {
        let mut msg = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 1];
        msg.extend_from_slice(b"\x03www\x07example\x03net\x00\x00\x01\x00\x01");
        msg.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 192, 0, 2, 2]);
        msg.extend_from_slice(&[0, 0, 41, 4, 208, 0, 0, 0x80, 0, 0, 11]);
        msg.extend_from_slice(&[0, 8, 0, 7, 0, 1, 24, 0, 10, 53, 0]);
        msg
    }

    #[test]
    fn the_view_reads_header_fields_by_name() {
        let msg = answer_with_pointer_and_opt();
        let packet = Packet::new_checked(&msg[..]).unwrap();
        assert_eq!(packet.id(), 0x1234);
        assert_eq!(packet.flags() & flags::QR, flags::QR);
        assert_eq!(
            (
                packet.qdcount(),
                packet.ancount(),
                packet.nscount(),
                packet.arcount()
            ),
            (1, 1, 0, 1)
        );
        assert_eq!(packet.header().flag_names(), ["qr", "rd", "ra"]);
        let err = Packet::new_checked(&msg[..11]).unwrap_err();
        assert_eq!(err.offset, 11);
    }

    #[test]
    fn the_walker_finds_every_entry_in_place() {
        let msg = answer_with_pointer_and_opt();
        let packet = Packet::new_checked(&msg[..]).unwrap();
        let entries: Vec<Entry> = packet.entries().map(Result::unwrap).collect();
        assert_eq!(entries.len(), 3);
        let Entry::Question(q) = &entries[0] else {
            panic!("{entries:?}")
        };
        assert_eq!(
            (q.name, q.qtype, q.qclass),
            (NameRef { start: 12, end: 29 }, 1, 1)
        );
        let Entry::Record(answer) = &entries[1] else {
            panic!("{entries:?}")
        };
        assert_eq!(answer.name, NameRef { start: 33, end: 35 });
        assert_eq!((answer.section, answer.ttl), (Section::Answer, 300));
        assert_eq!(&msg[answer.rdata.clone()], &[192, 0, 2, 2]);
        let Entry::Record(opt) = &entries[2] else {
            panic!("{entries:?}")
        };
        assert_eq!((opt.rtype, opt.class), (rtype::OPT, 1232));
        let options: Vec<OptionRef> = opt.options(&msg).map(Result::unwrap).collect();
        assert_eq!(options.len(), 1);
        assert_eq!(options[0].code, option::CLIENT_SUBNET);
        assert_eq!(&msg[options[0].data.clone()], &[0, 1, 24, 0, 10, 53, 0]);
        assert!(!options[0].cut);
        // Inline labels only: the answer's owner is a pointer, it has none of its own.
        let mut inline = Vec::new();
        walk_name(&msg, 33, |label, is_inline| inline.push((label, is_inline))).unwrap();
        assert_eq!(inline, [(13..16, false), (17..24, false), (25..28, false)]);
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
            err.message.contains("1 bytes after the last record"),
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
            .message
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
            .message
            .contains("longer than 255"));
        let msg = [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 1, 0, 1];
        assert!(parse(&msg)
            .error
            .unwrap()
            .message
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
