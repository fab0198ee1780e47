//! Classic pcap writing: the file header and one record per packet, in host byte order.
//!
//! Keeps the adaptations that make every record readable by tcpdump (data cut to
//! [`MAX_SNAPLEN`], timestamps past 32-bit seconds clamped) and says when it made them
//! ([`Written`]). Must not write anything but the header and whole records: no buffering of
//! its own, no reordering.

use std::io::{self, Write};
use std::time::Duration;

use super::{split_linktype_field, MAX_SNAPLEN};

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
    /// `linktype_field` if any), nanosecond or microsecond timestamps.
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
