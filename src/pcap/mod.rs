//! pcap and pcapng reading, classic pcap writing, link types and normalization to Ethernet.
//!
//! [`Reader`] reads classic pcap (microsecond and nanosecond magic, both byte orders) and pcapng
//! (several sections and interfaces, each with its own link type and timestamp resolution), from
//! any `Read` (a file or stdin), with pcap-file's parsers over a buffer of our own, so that:
//! - every error names the packet number (from 1) and the byte offset where the damage starts;
//! - a record that claims a huge length is refused before anything is allocated for it
//!   ([`MAX_RECORD`]); the buffer only grows to the largest record actually present;
//! - the packets before the damage are delivered first.
//!
//! Read as libpcap and tcpdump read them: records longer than the header's snap length, the
//! obsolete pcapng Packet Block, option strings that are not UTF-8 (replaced, not refused, the
//! first section header's too), and
//! the FCS length a pcap header's link-type field or a pcapng interface declares.
//!
//! [`Writer`] writes classic pcap that tcpdump reads: records are cut to [`MAX_SNAPLEN`] bytes,
//! timestamps past pcap's 32-bit seconds are clamped, and it says when it did either.
//! [`link`] finds the network header in each link type and turns frames into plain Ethernet;
//! [`hex`] is the hex text form of packets.

pub mod hex;
pub mod link;
pub mod scrub;

use std::borrow::Cow;
use std::io::{self, Read, Write};
use std::time::Duration;

use pcap_file::pcap::{PcapHeader, PcapParser};
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketOption;
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
use pcap_file::pcapng::blocks::packet::PacketOption;
use pcap_file::pcapng::{Block, PcapNgParser};
use pcap_file::{DataLink, Endianness, TsResolution};
use thiserror::Error;

/// The largest record (pcap packet or pcapng block) accepted: far above any real snap length
/// (262144), far below what would hurt to allocate.
pub const MAX_RECORD: usize = 16 << 20;

/// The largest record written, and the snap length of written files: libpcap's largest snap
/// length, above which tcpdump refuses a record as damaged.
pub const MAX_SNAPLEN: u32 = hex::MAX_PACKET as u32;

/// A read error with where it happened.
#[derive(Debug, Error)]
#[error("packet {packet}, byte offset {offset}: {message}")]
pub struct ReadError {
    /// Number (from 1) of the packet being read.
    pub packet: u64,
    /// Byte offset in the input where the bad record starts.
    pub offset: u64,
    /// What is wrong.
    pub message: String,
    /// The I/O error, when the input itself failed.
    #[source]
    pub io: Option<io::Error>,
}

/// One packet.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    /// Number in the input, from 1.
    pub number: u64,
    /// Capture time since the Unix epoch.
    pub timestamp: Duration,
    /// Length on the wire.
    pub orig_len: u32,
    /// Link type (LINKTYPE_* number) of the packet's interface.
    pub linktype: u32,
    /// Length of the frame check sequence at the end of `data` (0: none or unknown), as the
    /// pcap header's link-type field, the pcapng interface or the packet's flags declare it.
    pub fcs_len: u32,
    /// The captured bytes.
    pub data: &'a [u8],
}

/// The container format of an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    /// Classic pcap.
    Pcap {
        /// Nanosecond timestamps.
        nanoseconds: bool,
        /// Snap length from the header.
        snaplen: u32,
        /// Link type from the header.
        linktype: u32,
        /// FCS length the header's link-type field declares (0: none or unknown).
        fcs_len: u32,
    },
    /// pcapng.
    PcapNg,
}

/// The magic numbers a capture starts with: pcapng's first, then classic pcap's (µs and ns,
/// both byte orders).
const MAGICS: [[u8; 4]; 5] = [
    [0x0a, 0x0d, 0x0d, 0x0a],
    [0xd4, 0xc3, 0xb2, 0xa1],
    [0xa1, 0xb2, 0xc3, 0xd4],
    [0x4d, 0x3c, 0xb2, 0xa1],
    [0xa1, 0xb2, 0x3c, 0x4d],
];

/// True when `start`, the first bytes of an input (up to 4), is a pcap or pcapng magic number
/// or the beginning of one: what [`Reader::new`] reads (or refuses as a truncated header)
/// rather than calling the input something else. A gzip-compressed file (magic 1f 8b) counts:
/// hex text never starts with these bytes, and the reader names it.
pub fn starts_like_capture(start: &[u8]) -> bool {
    let start = &start[..start.len().min(4)];
    !start.is_empty()
        && (MAGICS.iter().any(|m| m.starts_with(start)) || start.starts_with(&GZIP_MAGIC))
}

/// The first bytes of a gzip-compressed file.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// A packet located in the buffer.
struct Found {
    start: usize,
    len: usize,
    timestamp: Duration,
    orig_len: u32,
    linktype: u32,
    fcs_len: u32,
}

enum State {
    /// Before the file header is read.
    Start,
    Pcap(PcapRecords),
    PcapNg(PcapNgParser),
}

/// How the records of a classic pcap file read: what its header says, decided once so that
/// each record costs only its own 16-byte header.
#[derive(Debug, Clone, Copy)]
struct PcapRecords {
    big_endian: bool,
    nanoseconds: bool,
    /// Nanoseconds in a unit of the timestamps' fraction.
    scale: u32,
    /// Units of the fraction in a second.
    per_second: u32,
    snaplen: u32,
    linktype: u32,
    fcs_len: u32,
}

impl PcapRecords {
    fn word(&self, bytes: [u8; 4]) -> u32 {
        if self.big_endian {
            u32::from_be_bytes(bytes)
        } else {
            u32::from_le_bytes(bytes)
        }
    }

    /// The record header at the start of `head`: (seconds, fraction, captured length, wire
    /// length).
    #[inline]
    fn header(&self, head: &[u8; 16]) -> (u32, u32, u32, u32) {
        let at = |i: usize| [head[i], head[i + 1], head[i + 2], head[i + 3]];
        if self.big_endian {
            let word = u32::from_be_bytes;
            (word(at(0)), word(at(4)), word(at(8)), word(at(12)))
        } else {
            let word = u32::from_le_bytes;
            (word(at(0)), word(at(4)), word(at(8)), word(at(12)))
        }
    }

    /// The timestamp of a record: `frac` counts nanoseconds or microseconds. A fraction of a
    /// second or more (a damaged or odd record) carries into the seconds.
    #[inline]
    fn timestamp(&self, secs: u32, frac: u32) -> Duration {
        if frac < self.per_second {
            Duration::new(u64::from(secs), frac * self.scale)
        } else {
            Duration::from_secs(u64::from(secs))
                + Duration::from_nanos(u64::from(frac) * u64::from(self.scale))
        }
    }
}

/// The input buffer's first size: large reads keep system calls few.
const READ_BUFFER: usize = 256 << 10;

/// Streams packets from a pcap or pcapng input.
pub struct Reader<R: Read> {
    input: R,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    /// Stream offset of `buf[0]`.
    base: u64,
    eof: bool,
    state: State,
    container: Container,
    packets: u64,
}

fn datalink_number(datalink: DataLink) -> u32 {
    u32::from(datalink)
}

/// The link type and FCS length (bytes) in a pcap header's link-type field: the link type in
/// the low 16 bits; when bit 26 is set, the FCS length in 16-bit words in bits 28-31.
pub fn split_linktype_field(field: u32) -> (u32, u32) {
    let fcs = if field & 0x0400_0000 != 0 {
        (field >> 28) * 2
    } else {
        0
    };
    (field & 0xffff, fcs)
}

/// The pcap header link-type field for `linktype` with an FCS of `fcs_len` bytes (0: none).
pub fn linktype_field(linktype: u32, fcs_len: u32) -> u32 {
    let words = (fcs_len / 2).min(15);
    if words == 0 {
        linktype & 0xffff
    } else {
        linktype & 0xffff | 0x0400_0000 | words << 28
    }
}

/// Option codes that hold UTF-8 text, by block type: comments in every block, and the
/// section's hardware/OS/application, the interface's name/description/OS/hardware, and the
/// name resolution block's DNS name.
fn is_text_option(block_type: u32, code: u16) -> bool {
    matches!(
        (block_type, code),
        (_, 1 | 2988 | 19372) | (0x0a0d_0d0a, 2..=4) | (1, 2 | 3 | 12 | 15) | (4, 2)
    )
}

/// Replaces bytes that are not UTF-8 in the text options of the pcapng block at the start of
/// `block` by '?', so the block can be read as Wireshark and tcpdump read it. True when
/// something was replaced.
fn repair_text_options(block: &mut [u8], endianness: Endianness) -> bool {
    let word = |b: &[u8], at: usize| -> Option<u32> {
        let bytes: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
        Some(match endianness {
            Endianness::Big => u32::from_be_bytes(bytes),
            Endianness::Little => u32::from_le_bytes(bytes),
        })
    };
    let half = |b: &[u8], at: usize| -> Option<u16> {
        let bytes: [u8; 2] = b.get(at..at + 2)?.try_into().ok()?;
        Some(match endianness {
            Endianness::Big => u16::from_be_bytes(bytes),
            Endianness::Little => u16::from_le_bytes(bytes),
        })
    };
    let (Some(block_type), Some(total)) = (word(block, 0), word(block, 4)) else {
        return false;
    };
    let total = total as usize;
    if total < 12 || total > block.len() {
        return false;
    }
    // Where the options start: after the fixed fields (and the packet data) of each block.
    let options = match block_type {
        0x0a0d_0d0a => Some(24),
        1 => Some(16),
        6 => word(block, 20).map(|caplen| 28 + (caplen as usize).div_ceil(4) * 4),
        2 => word(block, 20).map(|caplen| 28 + (caplen as usize).div_ceil(4) * 4),
        5 => Some(20),
        _ => None,
    };
    let Some(mut at) = options else {
        return false;
    };
    let end = total - 4;
    let mut repaired = false;
    while at + 4 <= end {
        let (Some(code), Some(len)) = (half(block, at), half(block, at + 2)) else {
            break;
        };
        if code == 0 {
            break;
        }
        let value = at + 4..(at + 4 + usize::from(len)).min(end);
        // Custom text options start with a 4-byte private enterprise number.
        let text_start = if code == 2988 || code == 19372 {
            (value.start + 4).min(value.end)
        } else {
            value.start
        };
        if is_text_option(block_type, code) {
            let mut text = &mut block[text_start..value.end];
            while let Err(e) = std::str::from_utf8(text) {
                let bad = e.valid_up_to();
                let len = e.error_len().unwrap_or(text.len() - bad);
                text[bad..bad + len].fill(b'?');
                repaired = true;
                text = &mut text[bad + len..];
            }
        }
        at += 4 + usize::from(len).div_ceil(4) * 4;
    }
    repaired
}

/// pcapng timestamps are in units of the interface's `if_tsresol` (default 10^-6 s); pcap-file
/// hands back the raw count as nanoseconds.
fn pcapng_time(raw: Duration, tsresol: Option<u8>) -> Duration {
    let units = raw.as_nanos();
    let resol = tsresol.unwrap_or(6);
    let nanos = if resol & 0x80 == 0 {
        let exp = u32::from(resol);
        if exp <= 9 {
            units.saturating_mul(10u128.pow(9 - exp))
        } else {
            units / 10u128.pow((exp - 9).min(38))
        }
    } else {
        let exp = u32::from(resol & 0x7f).min(127);
        units.saturating_mul(1_000_000_000) >> exp
    };
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

impl<R: Read> Reader<R> {
    /// Reads the file header and detects the format from its magic number.
    pub fn new(input: R) -> Result<Reader<R>, ReadError> {
        let mut reader = Reader {
            input,
            buf: vec![0; READ_BUFFER],
            pos: 0,
            end: 0,
            base: 0,
            eof: false,
            state: State::Start,
            container: Container::PcapNg,
            packets: 0,
        };
        reader.fill(4)?;
        if reader.end == 0 {
            return Err(reader.error("empty input: expected a pcap or pcapng file".into()));
        }
        let magic = &reader.buf[..reader.end.min(4)];
        if magic.len() < 4 && MAGICS.iter().any(|m| m.starts_with(magic)) {
            return Err(reader.error("truncated file header".into()));
        }
        // MAGICS[0] is pcapng's, the others classic pcap's (µs and ns, both byte orders).
        let is_pcapng = magic == MAGICS[0];
        let is_pcap = MAGICS[1..].iter().any(|m| m == magic);
        if magic.starts_with(&GZIP_MAGIC) {
            return Err(reader.error("gzip-compressed: gunzip it (or zcat FILE | TOOL -)".into()));
        }
        if !is_pcap && !is_pcapng {
            let shown: Vec<String> = magic.iter().map(|b| format!("{b:02x}")).collect();
            return Err(reader.error(format!(
                "not a capture file: magic {} is neither pcap (a1b2c3d4, a1b23c4d) nor pcapng (0a0d0d0a)",
                shown.join("")
            )));
        }
        let mut repaired = false;
        loop {
            let slice = &reader.buf[reader.pos..reader.end];
            let parsed = if is_pcap {
                PcapParser::new(slice).map(|(rem, p)| {
                    let header: PcapHeader = p.header();
                    let (linktype, fcs_len) =
                        split_linktype_field(datalink_number(header.datalink));
                    let nanoseconds = header.ts_resolution == TsResolution::NanoSecond;
                    let records = PcapRecords {
                        big_endian: header.endianness == Endianness::Big,
                        nanoseconds,
                        scale: if nanoseconds { 1 } else { 1000 },
                        per_second: if nanoseconds {
                            1_000_000_000
                        } else {
                            1_000_000
                        },
                        snaplen: header.snaplen,
                        linktype,
                        fcs_len,
                    };
                    (slice.len() - rem.len(), State::Pcap(records))
                })
            } else {
                PcapNgParser::new(slice).map(|(rem, p)| (slice.len() - rem.len(), State::PcapNg(p)))
            };
            match parsed {
                Ok((used, state)) => {
                    reader.pos += used;
                    reader.container = match &state {
                        State::Pcap(records) => Container::Pcap {
                            nanoseconds: records.nanoseconds,
                            snaplen: records.snaplen,
                            linktype: records.linktype,
                            fcs_len: records.fcs_len,
                        },
                        State::PcapNg(_) | State::Start => Container::PcapNg,
                    };
                    reader.state = state;
                    return Ok(reader);
                }
                Err(pcap_file::PcapError::IncompleteBuffer) => {
                    if !reader.more()? {
                        return Err(reader.error("truncated file header".into()));
                    }
                }
                Err(e) => {
                    // The first section header's text options that are not UTF-8 are
                    // replaced, as in every later block.
                    let block = &mut reader.buf[reader.pos..reader.end];
                    let endianness = match block.get(8..12) {
                        Some([0x1a, 0x2b, 0x3c, 0x4d]) => Some(Endianness::Big),
                        Some([0x4d, 0x3c, 0x2b, 0x1a]) => Some(Endianness::Little),
                        _ => None,
                    };
                    if let (true, false, Some(endianness)) = (is_pcapng, repaired, endianness) {
                        if repair_text_options(block, endianness) {
                            repaired = true;
                            continue;
                        }
                    }
                    return Err(reader.error(format!("bad file header: {e}")));
                }
            }
        }
    }

    /// The container and (for pcap) its header fields.
    pub fn container(&self) -> Container {
        self.container
    }

    fn error(&self, message: String) -> ReadError {
        ReadError {
            packet: self.packets + 1,
            offset: self.base + self.pos as u64,
            message,
            io: None,
        }
    }

    /// Makes at least `want` unread bytes available if the input has them.
    fn fill(&mut self, want: usize) -> Result<(), ReadError> {
        while self.end - self.pos < want && !self.eof {
            if !self.more()? {
                break;
            }
        }
        Ok(())
    }

    /// Reads more input, compacting or growing the buffer; false at end of input.
    fn more(&mut self) -> Result<bool, ReadError> {
        if self.eof {
            return Ok(false);
        }
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.end, 0);
            self.base += self.pos as u64;
            self.end -= self.pos;
            self.pos = 0;
        }
        if self.end == self.buf.len() {
            if self.buf.len() >= MAX_RECORD + 64 {
                return Err(self.error(format!("record longer than {MAX_RECORD} bytes")));
            }
            let grown = (self.buf.len() * 2).min(MAX_RECORD + 64);
            self.buf.resize(grown, 0);
        }
        loop {
            match self.input.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let mut err = self.error(format!("cannot read input: {e}"));
                    err.io = Some(e);
                    return Err(err);
                }
            }
        }
    }

    /// The length a pcapng block at `pos` claims, if its header is in the buffer, so a huge
    /// claim is refused before the buffer grows for it.
    fn claimed_len(&self) -> Option<u64> {
        let head = self.buf.get(self.pos..self.end)?;
        match &self.state {
            State::PcapNg(p) => {
                let bytes: [u8; 4] = head.get(4..8)?.try_into().ok()?;
                let total = match p.section().endianness {
                    Endianness::Big => u32::from_be_bytes(bytes),
                    Endianness::Little => u32::from_le_bytes(bytes),
                };
                // A new section header may switch byte order: trust its own magic instead.
                if head.get(..4) == Some(&[0x0a, 0x0d, 0x0d, 0x0a]) {
                    return None;
                }
                Some(u64::from(total))
            }
            State::Pcap(_) | State::Start => None,
        }
    }

    /// The byte offset in the input of the next record: how far the input has been read.
    pub fn position(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// The next packet, `Ok(None)` at the end of the input.
    #[inline]
    pub fn next_packet(&mut self) -> Result<Option<Packet<'_>>, Box<ReadError>> {
        match self.state {
            State::Pcap(records) => self.next_pcap_record(records),
            State::PcapNg(_) | State::Start => self.next_pcapng_packet().map_err(Box::new),
        }
    }

    /// The next record of a classic pcap file. Read here rather than by `pcap-file`'s parser,
    /// which refuses records longer than the header's snap length; libpcap and tcpdump read
    /// them (files with snap length 0, or written by tools that set it too small), and so does
    /// this reader. A record's length is checked against [`MAX_RECORD`] before the buffer grows
    /// for it.
    #[inline]
    fn next_pcap_record(
        &mut self,
        records: PcapRecords,
    ) -> Result<Option<Packet<'_>>, Box<ReadError>> {
        let (secs, frac, incl, orig_len) = match self.buffered_record(records) {
            Some(head) => head,
            None => match self.wait_for_record(records).map_err(Box::new)? {
                Some(head) => head,
                None => return Ok(None),
            },
        };
        let start = self.pos + 16;
        self.pos = start + incl as usize;
        self.packets += 1;
        Ok(Some(Packet {
            number: self.packets,
            timestamp: records.timestamp(secs, frac),
            orig_len,
            linktype: records.linktype,
            fcs_len: records.fcs_len,
            data: &self.buf[start..self.pos],
        }))
    }

    /// The header of the record at `pos` (seconds, fraction, captured length, wire length)
    /// when all of the record is in the buffer and its length is sound.
    #[inline]
    fn buffered_record(&self, records: PcapRecords) -> Option<(u32, u32, u32, u32)> {
        let unread = &self.buf[self.pos..self.end];
        let header = records.header(unread.first_chunk::<16>()?);
        let len = header.2 as usize;
        (len <= unread.len() - 16 && len <= MAX_RECORD - 16).then_some(header)
    }

    /// Reads until the record at `pos` is all in the buffer, then gives its header as
    /// [`Reader::buffered_record`] does; `None` at the end of the input.
    #[cold]
    #[inline(never)]
    fn wait_for_record(
        &mut self,
        records: PcapRecords,
    ) -> Result<Option<(u32, u32, u32, u32)>, ReadError> {
        loop {
            self.pcap_refill(records, self.end - self.pos)?;
            if self.end == self.pos {
                return Ok(None);
            }
            if let Some(header) = self.buffered_record(records) {
                return Ok(Some(header));
            }
        }
    }

    /// Reads more of a pcap file when the record at `pos` is not all in the buffer (`left`
    /// bytes of it are): refuses a record that claims more than [`MAX_RECORD`] bytes, and
    /// one the input ends inside.
    fn pcap_refill(&mut self, records: PcapRecords, left: usize) -> Result<(), ReadError> {
        if let Some(bytes) = self.buf[self.pos..self.end].get(8..12) {
            let incl = records.word(bytes.try_into().expect("4 bytes"));
            let len = u64::from(incl) + 16;
            if len > MAX_RECORD as u64 {
                return Err(self.error(format!(
                    "record claims {len} bytes, more than the {MAX_RECORD} accepted: the file is damaged"
                )));
            }
        }
        if !self.more()? && left > 0 {
            return Err(self.error(format!(
                "truncated record: the input ends {left} bytes into it"
            )));
        }
        Ok(())
    }

    /// The next packet of a pcapng file.
    fn next_pcapng_packet(&mut self) -> Result<Option<Packet<'_>>, ReadError> {
        let mut repaired_at = None;
        loop {
            if self.pos == self.end {
                self.fill(1)?;
                if self.pos == self.end {
                    return Ok(None);
                }
            }
            if let Some(len) = self.claimed_len() {
                if len > MAX_RECORD as u64 {
                    return Err(self.error(format!(
                        "record claims {len} bytes, more than the {MAX_RECORD} accepted: the file is damaged"
                    )));
                }
            }
            let slice = &self.buf[self.pos..self.end];
            let buf_start = self.buf.as_ptr() as usize;
            // Bytes used, and the packet found (None for a block that is not a packet).
            let parsed: Result<(usize, Option<Found>), pcap_file::PcapError> = match &mut self.state
            {
                State::Start | State::Pcap(_) => {
                    Err(pcap_file::PcapError::InvalidField("not a pcapng file"))
                }
                State::PcapNg(parser) => parser.next_block(slice).and_then(|(rem, block)| {
                    let used = slice.len() - rem.len();
                    // (interface, data, raw timestamp, wire length, FCS length from flags)
                    let (interface, data, timestamp, orig_len, flags): (
                        u32,
                        Cow<[u8]>,
                        Duration,
                        u32,
                        Option<u32>,
                    ) = match block {
                        Block::EnhancedPacket(epb) => {
                            let flags = epb.options.iter().find_map(|o| match o {
                                EnhancedPacketOption::Flags(f) => Some(*f),
                                _ => None,
                            });
                            (
                                epb.interface_id,
                                epb.data,
                                epb.timestamp,
                                epb.original_len,
                                flags,
                            )
                        }
                        Block::SimplePacket(spb) => {
                            (0, spb.data, Duration::ZERO, spb.original_len, None)
                        }
                        // The obsolete Packet Block, still written by old tools.
                        Block::Packet(pb) => {
                            let flags = pb.options.iter().find_map(|o| match o {
                                PacketOption::Flags(f) => Some(*f),
                                _ => None,
                            });
                            (
                                u32::from(pb.interface_id),
                                pb.data,
                                Duration::from_nanos(pb.timestamp),
                                pb.original_len,
                                flags,
                            )
                        }
                        _ => return Ok((used, None)),
                    };
                    let idb = parser
                        .interfaces()
                        .get(interface as usize)
                        .ok_or(pcap_file::PcapError::InvalidInterfaceId(interface))?;
                    let mut tsresol = None;
                    let mut fcs_bits = None;
                    for option in &idb.options {
                        match option {
                            InterfaceDescriptionOption::IfTsResol(r) => tsresol = Some(*r),
                            InterfaceDescriptionOption::IfFcsLen(bits) => {
                                fcs_bits = Some(u32::from(*bits))
                            }
                            _ => {}
                        }
                    }
                    // The packet's flags (bits 5-8, in bytes) override the interface's
                    // if_fcslen (in bits).
                    let fcs_len = match flags.map(|f| (f >> 5) & 0xf) {
                        Some(bytes) if bytes != 0 => bytes,
                        _ => fcs_bits.map_or(0, |bits| bits / 8),
                    };
                    let start = data.as_ptr() as usize - buf_start;
                    let found = Found {
                        start,
                        len: data.len(),
                        timestamp: pcapng_time(timestamp, tsresol),
                        orig_len,
                        linktype: datalink_number(idb.linktype) & 0xffff,
                        fcs_len: fcs_len.min(data.len() as u32),
                    };
                    Ok((used, Some(found)))
                }),
            };
            match parsed {
                Ok((used, found)) => {
                    self.pos += used;
                    if let Some(found) = found {
                        self.packets += 1;
                        return Ok(Some(Packet {
                            number: self.packets,
                            timestamp: found.timestamp,
                            orig_len: found.orig_len,
                            linktype: found.linktype,
                            fcs_len: found.fcs_len,
                            data: &self.buf[found.start..found.start + found.len],
                        }));
                    }
                }
                Err(pcap_file::PcapError::IncompleteBuffer) => {
                    if !self.more()? {
                        let left = self.end - self.pos;
                        return Err(self.error(format!(
                            "truncated record: the input ends {left} bytes into it"
                        )));
                    }
                }
                Err(e) => {
                    if let State::PcapNg(parser) = &self.state {
                        let endianness = parser.section().endianness;
                        let block = &mut self.buf[self.pos..self.end];
                        // Text options that are not UTF-8 are replaced, once per block.
                        if repaired_at != Some(self.pos) && repair_text_options(block, endianness) {
                            repaired_at = Some(self.pos);
                            continue;
                        }
                        // A block that carries no packet and cannot be read is skipped.
                        if let Some(total) = skippable_block(block, endianness) {
                            self.pos += total;
                            continue;
                        }
                    }
                    return Err(self.error(format!("bad record: {e}")));
                }
            }
        }
    }
}

/// The length of the pcapng block at the start of `block` when it carries neither packets nor
/// what reading them needs (not a section header, interface description or packet block)
/// and its length is sound.
fn skippable_block(block: &[u8], endianness: Endianness) -> Option<usize> {
    let word = |at: usize| -> Option<u32> {
        let bytes: [u8; 4] = block.get(at..at + 4)?.try_into().ok()?;
        Some(match endianness {
            Endianness::Big => u32::from_be_bytes(bytes),
            Endianness::Little => u32::from_le_bytes(bytes),
        })
    };
    let (block_type, total) = (word(0)?, word(4)? as usize);
    let essential = matches!(block_type, 0x0a0d_0d0a | 1 | 2 | 3 | 6);
    (!essential && total >= 12 && total % 4 == 0 && total <= block.len()).then_some(total)
}

/// What [`Writer::write`] had to change so that tcpdump reads the record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    /// The data was longer than [`MAX_SNAPLEN`] and was cut (the wire length is kept).
    pub truncated: bool,
    /// The timestamp was past pcap's 32-bit seconds (2106-02-07) and was clamped to the last
    /// one it holds.
    pub clamped: bool,
}

/// Writes classic pcap (host byte order, snap length [`MAX_SNAPLEN`]).
///
/// Written by hand rather than with `pcap-file`'s writer, which refuses what this one adapts
/// (records over the snap length, timestamps past 32 bits) and hides its output.
pub struct Writer<W: Write> {
    output: W,
    linktype_field: u32,
    nanoseconds: bool,
}

impl<W: Write> Writer<W> {
    /// Writes the file header: the link-type field (a LINKTYPE number, with the FCS bits of
    /// [`linktype_field`] if any), nanosecond or microsecond timestamps.
    pub fn new(mut output: W, linktype_field: u32, nanoseconds: bool) -> io::Result<Writer<W>> {
        let magic: u32 = if nanoseconds {
            0xa1b2_3c4d
        } else {
            0xa1b2_c3d4
        };
        let mut header = [0u8; 24];
        header[0..4].copy_from_slice(&magic.to_ne_bytes());
        header[4..6].copy_from_slice(&2u16.to_ne_bytes());
        header[6..8].copy_from_slice(&4u16.to_ne_bytes());
        header[16..20].copy_from_slice(&MAX_SNAPLEN.to_ne_bytes());
        header[20..24].copy_from_slice(&linktype_field.to_ne_bytes());
        output.write_all(&header)?;
        Ok(Writer {
            output,
            linktype_field,
            nanoseconds,
        })
    }

    /// The link type of the file (without FCS bits).
    pub fn linktype(&self) -> u32 {
        split_linktype_field(self.linktype_field).0
    }

    /// The link-type field of the file header.
    pub fn linktype_field(&self) -> u32 {
        self.linktype_field
    }

    /// Writes one packet: the record header and the data in two writes, nothing else.
    pub fn write(
        &mut self,
        timestamp: Duration,
        orig_len: u32,
        data: &[u8],
    ) -> io::Result<Written> {
        let mut written = Written::default();
        let data = if data.len() > MAX_SNAPLEN as usize {
            written.truncated = true;
            &data[..MAX_SNAPLEN as usize]
        } else {
            data
        };
        let (secs, nanos) = match u32::try_from(timestamp.as_secs()) {
            Ok(secs) => (secs, timestamp.subsec_nanos()),
            Err(_) => {
                written.clamped = true;
                (u32::MAX, 999_999_999)
            }
        };
        let frac = if self.nanoseconds {
            nanos
        } else {
            nanos / 1000
        };
        let caplen = data.len() as u32;
        let mut record = [0u8; 16];
        record[0..4].copy_from_slice(&secs.to_ne_bytes());
        record[4..8].copy_from_slice(&frac.to_ne_bytes());
        record[8..12].copy_from_slice(&caplen.to_ne_bytes());
        record[12..16].copy_from_slice(&orig_len.max(caplen).to_ne_bytes());
        self.output.write_all(&record)?;
        self.output.write_all(data)?;
        Ok(written)
    }

    /// The output.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.output
    }

    /// Returns the output.
    pub fn into_inner(self) -> W {
        self.output
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A classic pcap file: header (magic in the byte order given), then each record.
    fn pcap_bytes(
        big_endian: bool,
        magic: u32,
        snaplen: u32,
        records: &[(u32, u32, &[u8], u32)],
    ) -> Vec<u8> {
        let word = |v: u32| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let half = |v: u16| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut out = Vec::new();
        out.extend_from_slice(&word(magic));
        out.extend_from_slice(&half(2));
        out.extend_from_slice(&half(4));
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&word(snaplen));
        out.extend_from_slice(&word(1));
        for &(secs, frac, data, orig_len) in records {
            for v in [secs, frac, data.len() as u32, orig_len] {
                out.extend_from_slice(&word(v));
            }
            out.extend_from_slice(data);
        }
        out
    }

    /// Hands out the input `chunk` bytes per read, as a pipe may.
    struct Trickle<'a> {
        data: &'a [u8],
        chunk: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.chunk.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    /// (number, timestamp, wire length, data) of each packet, and the error that ended the
    /// reading if any.
    type Outcome = (Vec<(u64, Duration, u32, Vec<u8>)>, Option<String>);

    fn read_all(input: impl Read) -> Outcome {
        let mut reader = Reader::new(input).expect("file header");
        let mut packets = Vec::new();
        loop {
            match reader.next_packet() {
                Ok(Some(p)) => packets.push((p.number, p.timestamp, p.orig_len, p.data.to_vec())),
                Ok(None) => return (packets, None),
                Err(e) => return (packets, Some(e.to_string())),
            }
        }
    }

    /// Reads `file` whole and a few bytes at a time: both must give the same.
    fn read_both_ways(file: &[u8]) -> Outcome {
        let whole = read_all(file);
        for chunk in [1, 7, 16, 100] {
            assert_eq!(
                read_all(Trickle { data: file, chunk }),
                whole,
                "{chunk} bytes per read"
            );
        }
        whole
    }

    const US: u32 = 0xa1b2_c3d4;
    const NS: u32 = 0xa1b2_3c4d;

    #[test]
    fn classic_pcap_reads_in_both_byte_orders_and_resolutions() {
        let records: [(u32, u32, &[u8], u32); 3] = [
            (1, 500_000, &[1, 2, 3], 3),
            (2, 999_999, &[], 60),
            (0xffff_fffe, 7, &[9; 70], 1500),
        ];
        for big_endian in [false, true] {
            let (packets, error) = read_both_ways(&pcap_bytes(big_endian, US, 65535, &records));
            assert_eq!(error, None);
            assert_eq!(
                packets,
                [
                    (1, Duration::new(1, 500_000_000), 3, vec![1, 2, 3]),
                    (2, Duration::new(2, 999_999_000), 60, vec![]),
                    (3, Duration::new(0xffff_fffe, 7000), 1500, vec![9; 70]),
                ]
            );
            let (packets, error) = read_both_ways(&pcap_bytes(big_endian, NS, 65535, &records));
            assert_eq!(error, None);
            assert_eq!(packets[0].1, Duration::new(1, 500_000));
            assert_eq!(packets[2].1, Duration::new(0xffff_fffe, 7));
        }
    }

    #[test]
    fn a_fraction_of_a_second_or_more_carries_into_the_seconds() {
        let records: [(u32, u32, &[u8], u32); 2] =
            [(5, 2_500_000, &[1], 1), (5, u32::MAX, &[2], 1)];
        let (packets, _) = read_both_ways(&pcap_bytes(false, US, 65535, &records));
        assert_eq!(packets[0].1, Duration::new(7, 500_000_000));
        assert_eq!(
            packets[1].1,
            Duration::new(5, 0) + Duration::from_micros(u64::from(u32::MAX))
        );
        let (packets, _) = read_both_ways(&pcap_bytes(true, NS, 65535, &records));
        assert_eq!(packets[0].1, Duration::new(5, 2_500_000));
        assert_eq!(packets[1].1, Duration::new(9, 294_967_295));
    }

    #[test]
    fn records_longer_than_the_snap_length_are_read_as_libpcap_reads_them() {
        let long = [7u8; 300];
        for snaplen in [0, 60] {
            let file = pcap_bytes(false, US, snaplen, &[(1, 0, &long, 300), (2, 0, &[1], 1)]);
            let (packets, error) = read_both_ways(&file);
            assert_eq!(error, None);
            assert_eq!(packets.len(), 2);
            assert_eq!(packets[0].3, long);
        }
        let big = vec![3u8; 300_000];
        let (packets, error) =
            read_both_ways(&pcap_bytes(true, US, 65535, &[(1, 0, &big, 300_000)]));
        assert_eq!((packets[0].3.len(), error), (300_000, None));
    }

    #[test]
    fn a_truncated_last_record_is_an_error_after_the_packets_before_it() {
        let mut file = pcap_bytes(
            false,
            US,
            65535,
            &[(1, 0, &[1, 2], 2), (2, 0, &[3; 10], 10)],
        );
        let whole = file.len();
        // Cut inside the second record's data, then inside its header.
        file.truncate(whole - 4);
        let (packets, error) = read_both_ways(&file);
        assert_eq!(packets.len(), 1);
        assert_eq!(
            error.as_deref(),
            Some("packet 2, byte offset 42: truncated record: the input ends 22 bytes into it")
        );
        file.truncate(42 + 5);
        let (packets, error) = read_both_ways(&file);
        assert_eq!(packets.len(), 1);
        assert_eq!(
            error.as_deref(),
            Some("packet 2, byte offset 42: truncated record: the input ends 5 bytes into it")
        );
        // Cut exactly between records: no error.
        file.truncate(42);
        assert_eq!(
            read_both_ways(&file),
            (vec![(1, Duration::new(1, 0), 2, vec![1, 2])], None)
        );
    }

    #[test]
    fn a_record_claiming_more_than_max_record_is_refused_before_it_is_read() {
        for big_endian in [false, true] {
            let mut file = pcap_bytes(big_endian, US, 65535, &[(1, 0, &[1], 1)]);
            let word = |v: u32| {
                if big_endian {
                    v.to_be_bytes()
                } else {
                    v.to_le_bytes()
                }
            };
            for v in [1, 0, MAX_RECORD as u32 - 15, 100] {
                file.extend_from_slice(&word(v));
            }
            let (packets, error) = read_both_ways(&file);
            assert_eq!(packets.len(), 1);
            assert_eq!(
                error.as_deref(),
                Some("packet 2, byte offset 41: record claims 16777217 bytes, more than the 16777216 accepted: the file is damaged")
            );
        }
    }

    #[test]
    fn the_header_decides_the_container() {
        let file = pcap_bytes(true, NS, 262_144, &[]);
        let reader = Reader::new(&file[..]).unwrap();
        assert_eq!(
            reader.container(),
            Container::Pcap {
                nanoseconds: true,
                snaplen: 262_144,
                linktype: 1,
                fcs_len: 0
            }
        );
        assert_eq!(read_both_ways(&file), (vec![], None));
    }
}
