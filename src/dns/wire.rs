//! The DNS wire view: field offsets, the checked view over untrusted bytes, and the one
//! walker over names, questions, records and EDNS options.
//!
//! Keeps every rule about reading the wire form: the header is there before any accessor
//! runs, names end at the root label within 255 bytes, compression pointers point strictly
//! backwards (so loops are impossible), record data and options lie inside the message. Every
//! refusal is a [`DnsError`] with its byte offset. Must not make text: names, types and data
//! as people read them are the text form's.

use std::fmt;
use std::ops::Range;

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

/// Where and why reading a message stopped.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("at byte offset {offset} of the DNS message: {problem}")]
pub struct DnsError {
    /// Offset in the DNS message.
    pub offset: usize,
    /// What is wrong.
    pub problem: DnsProblem,
}

/// What is wrong with a DNS message at the offset of a [`DnsError`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DnsProblem {
    /// Shorter than the fixed header.
    #[error("message is {len} bytes, shorter than the 12-byte header")]
    ShortHeader {
        /// The message's length.
        len: usize,
    },
    /// A name that runs off the message.
    #[error("name at {name_at} runs past the end of the message")]
    NameRunsPast {
        /// Where the name starts.
        name_at: usize,
    },
    /// A label that runs off the message.
    #[error("label of {len} bytes runs past the end of the message")]
    LabelRunsPast {
        /// The label's length.
        len: u8,
    },
    /// A name of more than 255 bytes.
    #[error("name longer than 255 bytes")]
    NameTooLong,
    /// A compression pointer cut by the end of the message.
    #[error("compression pointer cut by the end of the message")]
    PointerCut,
    /// A compression pointer that does not point strictly backwards.
    #[error("compression pointer to offset {target} does not point backwards: a loop or a forward reference")]
    PointerNotBackwards {
        /// Where it points.
        target: usize,
    },
    /// Label type 0x40 or 0x80.
    #[error("label type {bits:#04x} is not supported")]
    LabelType {
        /// The label's two top bits.
        bits: u8,
    },
    /// A question without its type and class.
    #[error("question cut short: expected type and class")]
    QuestionCut,
    /// A record without its fixed fields.
    #[error("record cut short: expected type, class, TTL and length")]
    RecordCut,
    /// Record data that runs off the message.
    #[error("record data of {len} bytes runs past the end of the message")]
    RdataRunsPast {
        /// The length the record claims.
        len: usize,
    },
    /// Bytes after the last record the counts announce.
    #[error("{count} bytes after the last record")]
    TrailingBytes {
        /// How many.
        count: usize,
    },
    /// An EDNS option header cut by the end of the OPT record.
    #[error("EDNS option header cut short")]
    OptionHeaderCut,
    /// An EDNS option whose value runs past the OPT record.
    #[error("EDNS option {} runs past the OPT record", super::option_name(*.code))]
    OptionRunsPast {
        /// The option's code.
        code: u16,
    },
    /// An SOA record without its serial.
    #[error("SOA record cut short")]
    SoaCut,
    /// A TXT string that runs past its record.
    #[error("TXT string runs past the record")]
    TxtRunsPast,
}

use DnsProblem as Problem;

pub(super) fn error(offset: usize, problem: DnsProblem) -> DnsError {
    DnsError { offset, problem }
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

pub(super) fn u16_at(msg: &[u8], at: usize) -> Option<u16> {
    msg.get(at..at + 2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
}

pub(super) fn u32_at(msg: &[u8], at: usize) -> Option<u32> {
    msg.get(at..at + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
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
        let len = *msg
            .get(pos)
            .ok_or_else(|| error(pos, Problem::NameRunsPast { name_at: at }))?;
        match len & 0xc0 {
            0x00 => {
                if len == 0 {
                    return Ok(after.unwrap_or(pos + 1));
                }
                let end = pos + 1 + usize::from(len);
                if end > msg.len() {
                    return Err(error(pos, Problem::LabelRunsPast { len }));
                }
                wire_len += 1 + usize::from(len);
                // RFC 1035 3.1: 255 bytes at most, the root label's byte included.
                if wire_len + 1 > 255 {
                    return Err(error(pos, Problem::NameTooLong));
                }
                on_label(pos + 1..end, after.is_none());
                pos = end;
            }
            0xc0 => {
                let target = usize::from(
                    u16_at(msg, pos).ok_or_else(|| error(pos, Problem::PointerCut))? & 0x3fff,
                );
                if target >= limit {
                    return Err(error(pos, Problem::PointerNotBackwards { target }));
                }
                after.get_or_insert(pos + 2);
                limit = target;
                pos = target;
            }
            _ => return Err(error(pos, Problem::LabelType { bits: len & 0xc0 })),
        }
    }
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
            return Some(Err(error(at, Problem::OptionHeaderCut)));
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
            return Err(error(len, Problem::ShortHeader { len }));
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

    /// The walker resumed after the first question, which ends at `offset` (its name walked
    /// with [`walk_name`] and its type and class read, as a reader of the question alone does):
    /// the other questions, then the records. With no question, the same as
    /// [`Packet::entries`].
    pub fn entries_after_first_question(&self, offset: usize) -> Entries<'_> {
        let mut entries = self.entries();
        if entries.remaining[0] > 0 {
            entries.remaining[0] -= 1;
            entries.pos = offset;
        }
        entries
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
                return Err(error(end, Problem::QuestionCut));
            };
            self.pos = end + field::question::LEN;
            return Ok(Entry::Question(QuestionRef {
                name,
                qtype,
                qclass,
            }));
        }
        use field::record;
        let fixed = msg
            .get(end..end + record::RDATA)
            .ok_or_else(|| error(end, Problem::RecordCut))?;
        let word = |at: usize| u16::from_be_bytes([fixed[at], fixed[at + 1]]);
        let rdlen = usize::from(word(record::RDLENGTH));
        let rdata_start = end + record::RDATA;
        if rdata_start + rdlen > msg.len() {
            return Err(error(rdata_start, Problem::RdataRunsPast { len: rdlen }));
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
            return (left > 0)
                .then(|| Err(error(self.pos, Problem::TrailingBytes { count: left })));
        }
        self.remaining[self.stage] -= 1;
        let entry = self.read();
        self.done = entry.is_err();
        Some(entry)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

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
    }

    #[test]
    fn refusals_are_typed_with_their_offset() {
        let mut msg = vec![0u8; 12];
        msg.extend_from_slice(&[0xc0, 14, 0xc0, 12]);
        // From 14 the walk jumps back to 12, whose pointer to 14 is the one refused.
        assert_eq!(
            walk_name(&msg, 14, |_, _| {}),
            Err(error(12, Problem::PointerNotBackwards { target: 14 }))
        );
        assert_eq!(
            Packet::new_checked(&msg[..5]).unwrap_err().problem,
            Problem::ShortHeader { len: 5 }
        );
    }
}
