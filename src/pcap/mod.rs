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
//!
//! Layout: this file keeps what every part shares (the packet, the error, the container, the
//! magic numbers, the pcap link-type field); `reader` holds the input buffer and reads the
//! file header, `classic` and `pcapng` read the records of each format, `writer` writes
//! classic pcap. This file must not read or write bytes itself.

mod classic;
pub mod hex;
pub mod link;
mod pcapng;
mod reader;
pub mod scrub;
mod writer;

use std::io;
use std::time::Duration;

use thiserror::Error;

pub use reader::Reader;
pub use writer::{Writer, Written};

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
    /// The input ends inside this record (a capture still being written, a full disk): the
    /// bytes of it that are there. Everything before the record was read.
    pub cut: Option<usize>,
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
