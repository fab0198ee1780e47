//! Classic pcap records: read here rather than by `pcap-file`'s parser, which refuses records
//! longer than the header's snap length (libpcap and tcpdump read them).
//!
//! Keeps what the file header decides for every record (byte order, timestamp resolution,
//! link type, FCS length) and the reading of one record at a time from the buffer. Must not
//! let a record's claimed length grow the buffer past [`MAX_RECORD`], nor copy a packet: each
//! is handed over where it lies in the buffer.

use std::io::Read;
use std::time::Duration;

use super::reader::Reader;
use super::{Packet, ReadError, MAX_RECORD};

/// How the records of a classic pcap file read: what its header says, decided once so that
/// each record costs only its own 16-byte header.
#[derive(Debug, Clone, Copy)]
pub(super) struct PcapRecords {
    pub big_endian: bool,
    pub nanoseconds: bool,
    /// Nanoseconds in a unit of the timestamps' fraction.
    pub scale: u32,
    /// Units of the fraction in a second.
    pub per_second: u32,
    pub snaplen: u32,
    pub linktype: u32,
    pub fcs_len: u32,
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

impl<R: Read> Reader<R> {
    /// The next record of a classic pcap file. Read here rather than by `pcap-file`'s parser,
    /// which refuses records longer than the header's snap length; libpcap and tcpdump read
    /// them (files with snap length 0, or written by tools that set it too small), and so does
    /// this reader. A record's length is checked against [`MAX_RECORD`] before the buffer grows
    /// for it.
    #[inline]
    pub(super) fn next_pcap_record(
        &mut self,
        records: PcapRecords,
    ) -> Result<Option<Packet<'_>>, ReadError> {
        let (secs, frac, incl, orig_len) = match self.buffered_record(records) {
            Some(head) => head,
            None => match self.wait_for_record(records)? {
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
            return Err(self.cut_short(left));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pcap::Container;
    use std::io;

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
