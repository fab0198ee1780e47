//! pcapng blocks: packets of every interface (Enhanced, Simple and the obsolete Packet Block)
//! with their own link type, timestamp resolution and FCS length, read with `pcap-file`'s
//! parser over the reader's buffer.
//!
//! Keeps the repairs made so that a file reads as Wireshark and tcpdump read it (text options
//! that are not UTF-8 replaced, blocks that carry no packet and cannot be read skipped) and
//! the conversion of timestamps. Must not skip a block that packets depend on (section
//! header, interface description, packet blocks), nor accept a block claiming more than
//! [`MAX_RECORD`] bytes.

use std::borrow::Cow;
use std::io::Read;
use std::time::Duration;

use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketOption;
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
use pcap_file::pcapng::blocks::packet::PacketOption;
use pcap_file::pcapng::{Block, PcapNgParser};
use pcap_file::Endianness;

use super::reader::{datalink_number, Found, Reader, State};
use super::{Packet, ReadError, MAX_RECORD};

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
pub(super) fn repair_text_options(block: &mut [u8], endianness: Endianness) -> bool {
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

    /// The next packet of a pcapng file.
    pub(super) fn next_pcapng_packet(&mut self) -> Result<Option<Packet<'_>>, ReadError> {
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
                    let found = packet_of_block(parser, block, buf_start)?;
                    Ok((used, found))
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
                        return Err(self.cut_short(left));
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

/// The packet a pcapng block carries, located in the reader's buffer (which starts at address
/// `buf_start`), or `None` for a block that is not a packet.
fn packet_of_block(
    parser: &PcapNgParser,
    block: Block<'_>,
    buf_start: usize,
) -> Result<Option<Found>, pcap_file::PcapError> {
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
        Block::SimplePacket(spb) => (0, spb.data, Duration::ZERO, spb.original_len, None),
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
        _ => return Ok(None),
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
            InterfaceDescriptionOption::IfFcsLen(bits) => fcs_bits = Some(u32::from(*bits)),
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
    Ok(Some(found))
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
