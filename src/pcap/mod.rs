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
//! [`Writer`] writes classic pcap. [`link`] finds the network header in each link type and turns
//! frames into plain Ethernet.

pub mod link;
pub mod scrub;

use std::borrow::Cow;
use std::io::{self, Read, Write};
use std::time::Duration;

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapParser, PcapWriter};
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
use pcap_file::pcapng::{Block, PcapNgParser};
use pcap_file::{DataLink, Endianness, TsResolution};
use thiserror::Error;

/// The largest record (pcap packet or pcapng block) accepted: far above any real snap length
/// (262144), far below what would hurt to allocate.
pub const MAX_RECORD: usize = 16 << 20;

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

/// A packet located in the buffer: data start, data length, timestamp, wire length, link type.
type Found = (usize, usize, Duration, u32, u32);

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
                            Container::Pcap {
                                nanoseconds: header.ts_resolution == TsResolution::NanoSecond,
                                snaplen: header.snaplen,
                                linktype: datalink_number(header.datalink),
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

    /// The next packet, `Ok(None)` at the end of the input.
    pub fn next_packet(&mut self) -> Result<Option<Packet<'_>>, ReadError> {
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
                    pcap_record(slice, header.endianness, header.ts_resolution).map(
                        |(used, len, timestamp, orig_len)| {
                            let linktype = datalink_number(header.datalink);
                            (used, Some((start + 16, len, timestamp, orig_len, linktype)))
                        },
                    )
                }
                State::PcapNg(parser) => parser.next_block(slice).and_then(|(rem, block)| {
                    let used = slice.len() - rem.len();
                    let (interface, data, timestamp, orig_len): (u32, Cow<[u8]>, Duration, u32) =
                        match block {
                            Block::EnhancedPacket(epb) => {
                                (epb.interface_id, epb.data, epb.timestamp, epb.original_len)
                            }
                            Block::SimplePacket(spb) => {
                                (0, spb.data, Duration::ZERO, spb.original_len)
                            }
                            _ => return Ok((used, None)),
                        };
                    let idb = parser
                        .interfaces()
                        .get(interface as usize)
                        .ok_or(pcap_file::PcapError::InvalidInterfaceId(interface))?;
                    let tsresol = idb.options.iter().find_map(|o| match o {
                        InterfaceDescriptionOption::IfTsResol(r) => Some(*r),
                        _ => None,
                    });
                    let start = data.as_ptr() as usize - buf_start;
                    Ok((
                        used,
                        Some((
                            start,
                            data.len(),
                            pcapng_time(timestamp, tsresol),
                            orig_len,
                            datalink_number(idb.linktype),
                        )),
                    ))
                }),
            };
            match parsed {
                Ok((used, found)) => {
                    self.pos += used;
                    if let Some((start, len, timestamp, orig_len, linktype)) = found {
                        self.packets += 1;
                        return Ok(Some(Packet {
                            number: self.packets,
                            timestamp,
                            orig_len,
                            linktype,
                            data: &self.buf[start..start + len],
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
                Err(e) => return Err(self.error(format!("bad record: {e}"))),
            }
        }
    }
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

/// Writes classic pcap.
pub struct Writer<W: Write> {
    inner: PcapWriter<W>,
    linktype: u32,
}

impl<W: Write> Writer<W> {
    /// Writes the file header: `linktype`, snap length 262144 (or `snaplen` if larger),
    /// nanosecond or microsecond timestamps, host byte order.
    pub fn new(output: W, linktype: u32, nanoseconds: bool, snaplen: u32) -> io::Result<Writer<W>> {
        let header = PcapHeader {
            version_major: 2,
            version_minor: 4,
            ts_correction: 0,
            ts_accuracy: 0,
            snaplen: snaplen.max(262_144),
            datalink: DataLink::from(linktype),
            ts_resolution: if nanoseconds {
                TsResolution::NanoSecond
            } else {
                TsResolution::MicroSecond
            },
            endianness: Endianness::native(),
        };
        let inner = PcapWriter::with_header(output, header).map_err(to_io)?;
        Ok(Writer { inner, linktype })
    }

    /// The link type of the file.
    pub fn linktype(&self) -> u32 {
        self.linktype
    }

    /// Writes one packet.
    pub fn write(&mut self, timestamp: Duration, orig_len: u32, data: &[u8]) -> io::Result<()> {
        let packet = PcapPacket {
            timestamp,
            orig_len: orig_len.max(data.len() as u32),
            data: Cow::Borrowed(data),
        };
        self.inner.write_packet(&packet).map_err(to_io)?;
        Ok(())
    }

    /// Returns the output.
    pub fn into_inner(self) -> W {
        self.inner.into_writer()
    }
}

fn to_io(err: pcap_file::PcapError) -> io::Error {
    match err {
        pcap_file::PcapError::IoError(e) => e,
        other => io::Error::other(other.to_string()),
    }
}
