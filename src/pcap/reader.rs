//! The input side of [`Reader`]: its buffer over any `Read`, the file header, and the
//! dispatch of each record to its format's reader.
//!
//! Keeps the buffer (grown only to the largest record present, never past [`MAX_RECORD`]),
//! the byte offsets and packet numbers every [`ReadError`] carries, and the detection of the
//! format from the magic number. Must not interpret a record: `classic` and `pcapng` do.

use std::io::{self, Read};
use std::time::Duration;

use pcap_file::pcap::{PcapHeader, PcapParser};
use pcap_file::pcapng::PcapNgParser;
use pcap_file::{DataLink, Endianness, TsResolution};

use super::classic::PcapRecords;
use super::pcapng::repair_text_options;
use super::{split_linktype_field, Container, Packet, ReadError, GZIP_MAGIC, MAGICS, MAX_RECORD};

/// A packet located in the buffer.
pub(super) struct Found {
    pub start: usize,
    pub len: usize,
    pub timestamp: Duration,
    pub orig_len: u32,
    pub linktype: u32,
    pub fcs_len: u32,
}

pub(super) enum State {
    /// Before the file header is read.
    Start,
    Pcap(PcapRecords),
    PcapNg(PcapNgParser),
}

/// The input buffer's first size: large reads keep system calls few.
const READ_BUFFER: usize = 256 << 10;

/// Streams packets from a pcap or pcapng input.
pub struct Reader<R: Read> {
    input: R,
    pub(super) buf: Vec<u8>,
    pub(super) pos: usize,
    pub(super) end: usize,
    /// Stream offset of `buf[0]`.
    pub(super) base: u64,
    eof: bool,
    pub(super) state: State,
    container: Container,
    pub(super) packets: u64,
}

pub(super) fn datalink_number(datalink: DataLink) -> u32 {
    u32::from(datalink)
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

    pub(super) fn error(&self, message: String) -> ReadError {
        ReadError {
            packet: self.packets + 1,
            offset: self.base + self.pos as u64,
            message,
            io: None,
            cut: None,
        }
    }

    /// The error of an input that ends `left` bytes into a record.
    pub(super) fn cut_short(&self, left: usize) -> ReadError {
        let mut err = self.error(format!(
            "truncated record: the input ends {left} bytes into it"
        ));
        err.cut = Some(left);
        err
    }

    /// Makes at least `want` unread bytes available if the input has them.
    pub(super) fn fill(&mut self, want: usize) -> Result<(), ReadError> {
        while self.end - self.pos < want && !self.eof {
            if !self.more()? {
                break;
            }
        }
        Ok(())
    }

    /// Reads more input, compacting or growing the buffer; false at end of input.
    pub(super) fn more(&mut self) -> Result<bool, ReadError> {
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

    /// The byte offset in the input of the next record: how far the input has been read.
    pub fn position(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// The next packet, `Ok(None)` at the end of the input.
    #[inline]
    pub fn next_packet(&mut self) -> Result<Option<Packet<'_>>, ReadError> {
        match self.state {
            State::Pcap(records) => self.next_pcap_record(records),
            State::PcapNg(_) | State::Start => self.next_pcapng_packet(),
        }
    }
}
