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
//! obsolete pcapng Packet Block, option strings that are not UTF-8 (replaced, not refused), and
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
/// rather than calling the input something else.
pub fn starts_like_capture(start: &[u8]) -> bool {
    let start = &start[..start.len().min(4)];
    !start.is_empty() && MAGICS.iter().any(|m| m.starts_with(start))
}

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
    Pcap(PcapParser),
    PcapNg(PcapNgParser),
}

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
            buf: vec![0; 1 << 16],
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
        if !is_pcap && !is_pcapng {
            let shown: Vec<String> = magic.iter().map(|b| format!("{b:02x}")).collect();
            return Err(reader.error(format!(
                "not a capture file: magic {} is neither pcap (a1b2c3d4, a1b23c4d) nor pcapng (0a0d0d0a)",
                shown.join("")
            )));
        }
        loop {
            let slice = &reader.buf[reader.pos..reader.end];
            let parsed = if is_pcap {
                PcapParser::new(slice).map(|(rem, p)| (slice.len() - rem.len(), State::Pcap(p)))
            } else {
                PcapNgParser::new(slice).map(|(rem, p)| (slice.len() - rem.len(), State::PcapNg(p)))
            };
            match parsed {
                Ok((used, state)) => {
                    reader.pos += used;
                    reader.container = match &state {
                        State::Pcap(p) => {
                            let header: PcapHeader = p.header();
                            let (linktype, fcs_len) =
                                split_linktype_field(datalink_number(header.datalink));
                            Container::Pcap {
                                nanoseconds: header.ts_resolution == TsResolution::NanoSecond,
                                snaplen: header.snaplen,
                                linktype,
                                fcs_len,
                            }
                        }
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
                Err(e) => return Err(reader.error(format!("bad file header: {e}"))),
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

    /// The length a record at `pos` claims, if its header is in the buffer, so a huge claim is
    /// refused before the buffer grows for it.
    fn claimed_len(&self) -> Option<u64> {
        let head = self.buf.get(self.pos..self.end)?;
        match &self.state {
            State::Pcap(p) => {
                let bytes: [u8; 4] = head.get(8..12)?.try_into().ok()?;
                let incl = match p.header().endianness {
                    Endianness::Big => u32::from_be_bytes(bytes),
                    Endianness::Little => u32::from_le_bytes(bytes),
                };
                Some(u64::from(incl) + 16)
            }
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
            State::Start => None,
        }
    }

    /// The byte offset in the input of the next record: how far the input has been read.
    pub fn position(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// The next packet, `Ok(None)` at the end of the input.
    pub fn next_packet(&mut self) -> Result<Option<Packet<'_>>, ReadError> {
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
                State::Start => Err(pcap_file::PcapError::InvalidField("no file header")),
                State::Pcap(parser) => {
                    let header = parser.header();
                    let start = self.pos;
                    let (linktype, fcs_len) =
                        split_linktype_field(datalink_number(header.datalink));
                    pcap_record(slice, header.endianness, header.ts_resolution).map(
                        |(used, len, timestamp, orig_len)| {
                            let found = Found {
                                start: start + 16,
                                len,
                                timestamp,
                                orig_len,
                                linktype,
                                fcs_len,
                            };
                            (used, Some(found))
                        },
                    )
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

/// One classic pcap record at the start of `slice`: (bytes used, captured length, timestamp,
/// original length). Read here rather than by `pcap-file`'s parser, which refuses records
/// longer than the header's snap length; libpcap and tcpdump read them (files with snap length
/// 0, or written by tools that set it too small), and so does this reader. Lengths are bounded
/// by [`MAX_RECORD`] before the record is read.
fn pcap_record(
    slice: &[u8],
    endianness: Endianness,
    resolution: TsResolution,
) -> Result<(usize, usize, Duration, u32), pcap_file::PcapError> {
    let head = slice
        .get(..16)
        .ok_or(pcap_file::PcapError::IncompleteBuffer)?;
    let word = |at: usize| {
        let bytes: [u8; 4] = head[at..at + 4].try_into().expect("4 bytes");
        match endianness {
            Endianness::Big => u32::from_be_bytes(bytes),
            Endianness::Little => u32::from_le_bytes(bytes),
        }
    };
    let (secs, frac, incl, orig) = (word(0), word(4), word(8), word(12));
    let len = incl as usize;
    if slice.len() < 16 + len {
        return Err(pcap_file::PcapError::IncompleteBuffer);
    }
    let nanos = match resolution {
        TsResolution::NanoSecond => u64::from(frac),
        TsResolution::MicroSecond => u64::from(frac) * 1000,
    };
    let timestamp = Duration::from_secs(u64::from(secs)) + Duration::from_nanos(nanos);
    Ok((16 + len, len, timestamp, orig))
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
