//! Link types: where the network header starts, and normalization to plain Ethernet.
//!
//! Supported: Ethernet (with any number of 802.1Q / 802.1ad / QinQ tags), Linux cooked capture
//! v1 (SLL, 16-byte header) and v2 (SLL2, 20 bytes), raw IP (101, and 228 / 229 for IPv4 /
//! IPv6 only; 12, DLT_RAW of Linux and most BSDs, as tcpdump reads it), BSD loopback (0, a
//! 4-byte address family in the capturing host's byte order).
//!
//! [`LINK_TYPES`] is the one table of these link types (built on `pcap_file::DataLink`): the
//! names tools accept and print, tcpdump's name for each, and the length of its fixed header.
//! A frame check sequence at the end of a frame ([`crate::pcap::Packet::fcs_len`]) is not
//! part of the network packet: [`network_header`]'s callers cut it off.
//!
//! Normalization keeps the real ethertype: an SLL or SLL2 frame becomes an Ethernet header
//! (destination 00:00:00:00:00:00, source = the cooked header's link address when it is 6
//! bytes long, ethertype = the cooked header's protocol) followed by the network header; VLAN
//! tags are removed; raw IP and loopback get zero addresses and the ethertype of their IP
//! version.
//!
//! The cooked headers are read through their views, [`sll::Header`] and [`sll2::Header`],
//! whose field byte ranges are named once ([`sll::field`], [`sll2::field`]); no other place
//! spells their offsets.

use etherparse::{Ethernet2Slice, SingleVlanSlice};
use pcap_file::DataLink;
use thiserror::Error;

/// BSD loopback.
pub const LINKTYPE_NULL: u32 = 0;
/// Ethernet.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// Raw IP (IPv4 or IPv6 by the version nibble).
pub const LINKTYPE_RAW: u32 = 101;
/// Linux cooked capture v1.
pub const LINKTYPE_LINUX_SLL: u32 = 113;
/// Raw IPv4.
pub const LINKTYPE_IPV4: u32 = 228;
/// Raw IPv6.
pub const LINKTYPE_IPV6: u32 = 229;
/// Linux cooked capture v2.
pub const LINKTYPE_LINUX_SLL2: u32 = 276;
/// Raw IP as DLT_RAW is numbered on Linux and most BSDs (files should say 101, some say 12).
pub const LINKTYPE_DLT_RAW: u32 = 12;

/// The byte range of a header field.
pub type Field = std::ops::Range<usize>;

/// Linux cooked capture v1 (`LINKTYPE_LINUX_SLL`, what `tcpdump -i any` writes): a 16-byte
/// header, all fields big-endian.
///
/// This module keeps the header's layout (the [`sll::field`] ranges, [`sll::HEADER_LEN`])
/// and the view that reads and changes it; it must not judge what follows the header (VLAN
/// tags and the network header are [`network_header`]'s) nor refuse a header for its values.
/// The view checks only the header's length: every hardware type is read, loopback (772) and
/// tun (65534) included, which etherparse's `LinuxSllHeaderSlice` refuses though both are
/// common in `-i any` captures.
pub mod sll {
    /// Where each field of the header is.
    pub mod field {
        use crate::pcap::link::Field;

        /// Packet type: 0 to this host, 1 broadcast, 2 multicast, 3 to another host, 4 sent
        /// by this host.
        pub const PACKET_TYPE: Field = 0..2;
        /// The `ARPHRD_` type of the interface (1 Ethernet, 772 loopback, ...).
        pub const HARDWARE_TYPE: Field = 2..4;
        /// Length of the sender's link-layer address.
        pub const ADDRESS_LEN: Field = 4..6;
        /// Room for the sender's link-layer address: its first [`ADDRESS_LEN`] bytes, at
        /// most all 8, hold it.
        pub const ADDRESS: Field = 6..14;
        /// The protocol of what follows: an ethertype for the network layers read here.
        pub const PROTOCOL: Field = 14..16;
    }

    /// Length of the header: the network header (or a VLAN tag) follows it.
    pub const HEADER_LEN: usize = field::PROTOCOL.end;

    /// A view of an SLL header at the start of a buffer.
    #[derive(Debug, Clone, Copy)]
    pub struct Header<T: AsRef<[u8]>> {
        buffer: T,
    }

    impl<T: AsRef<[u8]>> Header<T> {
        /// The view of `buffer`, or `None` when it is shorter than [`HEADER_LEN`].
        pub fn new_checked(buffer: T) -> Option<Header<T>> {
            (buffer.as_ref().len() >= HEADER_LEN).then_some(Header { buffer })
        }

        fn be16(&self, field: crate::pcap::link::Field) -> u16 {
            let bytes = &self.buffer.as_ref()[field];
            u16::from_be_bytes([bytes[0], bytes[1]])
        }

        /// The packet type (see [`field::PACKET_TYPE`]).
        pub fn packet_type(&self) -> u16 {
            self.be16(field::PACKET_TYPE)
        }

        /// The interface's hardware type.
        pub fn hardware_type(&self) -> u16 {
            self.be16(field::HARDWARE_TYPE)
        }

        /// The length the header gives its address (it may exceed the 8 bytes of room).
        pub fn address_len(&self) -> u16 {
            self.be16(field::ADDRESS_LEN)
        }

        /// The sender's link-layer address: [`Header::address_len`] bytes, 8 at most.
        pub fn address(&self) -> &[u8] {
            &self.buffer.as_ref()[address_range(self.address_len())]
        }

        /// The protocol (an ethertype).
        pub fn protocol(&self) -> u16 {
            self.be16(field::PROTOCOL)
        }
    }

    impl<T: AsRef<[u8]> + AsMut<[u8]>> Header<T> {
        /// The sender's link-layer address, to change in place.
        pub fn address_mut(&mut self) -> &mut [u8] {
            let range = address_range(self.address_len());
            &mut self.buffer.as_mut()[range]
        }
    }

    fn address_range(address_len: u16) -> crate::pcap::link::Field {
        let len = usize::from(address_len).min(field::ADDRESS.len());
        field::ADDRESS.start..field::ADDRESS.start + len
    }
}

/// Linux cooked capture v2 (`LINKTYPE_LINUX_SLL2`, `tcpdump -i any` since libpcap 1.10): a
/// 20-byte header, all fields big-endian, the protocol first and the interface index added.
///
/// As [`sll`] does for v1, this module keeps the header's layout and its view, and must not
/// judge what follows the header nor refuse a header for its values: the view checks only the
/// header's length.
pub mod sll2 {
    /// Where each field of the header is.
    pub mod field {
        use crate::pcap::link::Field;

        /// The protocol of what follows: an ethertype for the network layers read here.
        pub const PROTOCOL: Field = 0..2;
        /// Reserved (zero).
        pub const RESERVED: Field = 2..4;
        /// The index of the interface the packet was seen on.
        pub const INTERFACE_INDEX: Field = 4..8;
        /// The `ARPHRD_` type of the interface.
        pub const HARDWARE_TYPE: Field = 8..10;
        /// Packet type, as in SLL v1 (one byte here).
        pub const PACKET_TYPE: usize = 10;
        /// Length of the sender's link-layer address (one byte).
        pub const ADDRESS_LEN: usize = 11;
        /// Room for the sender's link-layer address: its first [`ADDRESS_LEN`] bytes, at
        /// most all 8, hold it.
        pub const ADDRESS: Field = 12..20;
    }

    /// Length of the header: the network header (or a VLAN tag) follows it.
    pub const HEADER_LEN: usize = field::ADDRESS.end;

    /// A view of an SLL2 header at the start of a buffer.
    #[derive(Debug, Clone, Copy)]
    pub struct Header<T: AsRef<[u8]>> {
        buffer: T,
    }

    impl<T: AsRef<[u8]>> Header<T> {
        /// The view of `buffer`, or `None` when it is shorter than [`HEADER_LEN`].
        pub fn new_checked(buffer: T) -> Option<Header<T>> {
            (buffer.as_ref().len() >= HEADER_LEN).then_some(Header { buffer })
        }

        /// The protocol (an ethertype).
        pub fn protocol(&self) -> u16 {
            let bytes = &self.buffer.as_ref()[field::PROTOCOL];
            u16::from_be_bytes([bytes[0], bytes[1]])
        }

        /// The interface index.
        pub fn interface_index(&self) -> u32 {
            let bytes = &self.buffer.as_ref()[field::INTERFACE_INDEX];
            u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
        }

        /// The interface's hardware type.
        pub fn hardware_type(&self) -> u16 {
            let bytes = &self.buffer.as_ref()[field::HARDWARE_TYPE];
            u16::from_be_bytes([bytes[0], bytes[1]])
        }

        /// The packet type.
        pub fn packet_type(&self) -> u8 {
            self.buffer.as_ref()[field::PACKET_TYPE]
        }

        /// The length the header gives its address (it may exceed the 8 bytes of room).
        pub fn address_len(&self) -> u8 {
            self.buffer.as_ref()[field::ADDRESS_LEN]
        }

        /// The sender's link-layer address: [`Header::address_len`] bytes, 8 at most.
        pub fn address(&self) -> &[u8] {
            &self.buffer.as_ref()[address_range(self.address_len())]
        }
    }

    impl<T: AsRef<[u8]> + AsMut<[u8]>> Header<T> {
        /// The sender's link-layer address, to change in place.
        pub fn address_mut(&mut self) -> &mut [u8] {
            let range = address_range(self.address_len());
            &mut self.buffer.as_mut()[range]
        }
    }

    fn address_range(address_len: u8) -> crate::pcap::link::Field {
        let len = usize::from(address_len).min(field::ADDRESS.len());
        field::ADDRESS.start..field::ADDRESS.start + len
    }
}

/// The largest link type libpcap 1.10 knows: tcpdump refuses files with a larger one.
pub const LINKTYPE_MAX_KNOWN: u32 = 289;

/// One link type the tools understand.
#[derive(Debug, Clone, Copy)]
pub struct LinkType {
    /// Its number, as `pcap-file` names it.
    pub datalink: DataLink,
    /// Names accepted on command lines (the first is the canonical one).
    pub names: &'static [&'static str],
    /// The name `tcpdump -y` knows it by.
    pub tcpdump_name: &'static str,
    /// A description for messages.
    pub description: &'static str,
    /// Length of its fixed header before the network header (`None`: it varies).
    pub header_len: Option<u32>,
    /// The IP version its packets always have (`None`: either).
    pub ip_version: Option<u8>,
}

impl LinkType {
    /// Its LINKTYPE number.
    pub fn number(&self) -> u32 {
        u32::from(self.datalink)
    }
}

/// The link types understood here: every tool reads its names, numbers and headers from it.
pub const LINK_TYPES: &[LinkType] = &[
    LinkType {
        datalink: DataLink::ETHERNET,
        names: &["ether", "ethernet", "en10mb"],
        tcpdump_name: "EN10MB",
        description: "Ethernet",
        header_len: Some(14),
        ip_version: None,
    },
    LinkType {
        datalink: DataLink::RAW,
        names: &["raw"],
        tcpdump_name: "RAW",
        description: "raw IP",
        header_len: Some(0),
        ip_version: None,
    },
    LinkType {
        datalink: DataLink::IPV4,
        names: &["ipv4"],
        tcpdump_name: "IPV4",
        description: "raw IPv4",
        header_len: Some(0),
        ip_version: Some(4),
    },
    LinkType {
        datalink: DataLink::IPV6,
        names: &["ipv6"],
        tcpdump_name: "IPV6",
        description: "raw IPv6",
        header_len: Some(0),
        ip_version: Some(6),
    },
    LinkType {
        datalink: DataLink::LINUX_SLL,
        names: &["sll", "linux_sll"],
        tcpdump_name: "LINUX_SLL",
        description: "Linux cooked (SLL)",
        header_len: Some(sll::HEADER_LEN as u32),
        ip_version: None,
    },
    LinkType {
        datalink: DataLink::LINUX_SLL2,
        names: &["sll2", "linux_sll2"],
        tcpdump_name: "LINUX_SLL2",
        description: "Linux cooked v2 (SLL2)",
        header_len: Some(sll2::HEADER_LEN as u32),
        ip_version: None,
    },
    LinkType {
        datalink: DataLink::NULL,
        names: &["null", "loopback"],
        tcpdump_name: "NULL",
        description: "BSD loopback",
        header_len: Some(4),
        ip_version: None,
    },
    LinkType {
        datalink: DataLink::Unknown(LINKTYPE_DLT_RAW),
        names: &["dlt_raw"],
        tcpdump_name: "RAW",
        description: "raw IP (DLT 12)",
        header_len: Some(0),
        ip_version: None,
    },
];

/// The table entry of `linktype`.
pub fn by_number(linktype: u32) -> Option<&'static LinkType> {
    LINK_TYPES.iter().find(|t| t.number() == linktype)
}

/// Why [`parse`] refused a link type.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseLinkTypeError {
    /// Neither a name of [`LINK_TYPES`] nor a number.
    #[error(
        "unknown link type '{text}': expected {} or a LINKTYPE number",
        canonical_names()
    )]
    Unknown {
        /// The text given.
        text: String,
        /// Why it is not a number.
        #[source]
        source: std::num::ParseIntError,
    },
    /// A number above [`LINKTYPE_MAX_KNOWN`].
    #[error("link type {number} is not one libpcap knows (0 to {LINKTYPE_MAX_KNOWN}): tcpdump would refuse the file")]
    NotKnownToLibpcap {
        /// The number given.
        number: u32,
    },
}

/// The canonical name of every link type of [`LINK_TYPES`], for messages.
fn canonical_names() -> String {
    let names: Vec<&str> = LINK_TYPES.iter().map(|t| t.names[0]).collect();
    names.join(", ")
}

/// Reads a link type given by name (any case) or LINKTYPE number. Numbers tcpdump does not
/// know (above [`LINKTYPE_MAX_KNOWN`]) are refused: it would refuse the file.
pub fn parse(text: &str) -> Result<u32, ParseLinkTypeError> {
    let lower = text.to_ascii_lowercase();
    if let Some(found) = LINK_TYPES
        .iter()
        .find(|t| t.names.contains(&lower.as_str()))
    {
        return Ok(found.number());
    }
    let number: u32 = text.parse().map_err(|source| ParseLinkTypeError::Unknown {
        text: text.to_string(),
        source,
    })?;
    if number > LINKTYPE_MAX_KNOWN {
        return Err(ParseLinkTypeError::NotKnownToLibpcap { number });
    }
    Ok(number)
}

/// The link type whose fixed header before IP is `header_len` bytes long (raw IPv6 for 0 with
/// `inet6`, raw IPv4 for 0 without).
pub fn for_header_len(header_len: u32, inet6: bool) -> Option<u32> {
    if header_len == 0 {
        return Some(if inet6 { LINKTYPE_IPV6 } else { LINKTYPE_IPV4 });
    }
    let candidates = [LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2];
    candidates
        .into_iter()
        .find(|&n| by_number(n).and_then(|t| t.header_len) == Some(header_len))
}

/// Ethertype of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// Ethertype of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;

const VLAN_TAGS: [u16; 3] = [0x8100, 0x88a8, 0x9100];

/// Where the network header of a frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetworkHeader {
    /// Offset of the network header in the frame.
    pub offset: usize,
    /// Its ethertype (0x0800 IPv4, 0x86dd IPv6, ...).
    pub ethertype: u16,
}

/// A captured packet as a program deployed with xt_bpf sees it: the frame without its frame
/// check sequence, the program's offset 0 at the network header, `#len` the wire length from
/// there. The one construction of this view, for `filter --l3` and triage alike. `None` when
/// the frame has no network header this module finds.
pub fn deployed_input<'a>(
    packet: &crate::pcap::Packet<'a>,
) -> Option<(crate::vm::Input<'a>, NetworkHeader)> {
    let frame = &packet.data[..packet.data.len().saturating_sub(packet.fcs_len as usize)];
    let net = network_header(packet.linktype, frame)?;
    let input = crate::vm::Input {
        frame,
        start: net.offset,
        net: Some(net.offset),
        link: Some(0),
        wire_len: packet
            .orig_len
            .saturating_sub(packet.fcs_len)
            .saturating_sub(net.offset as u32),
        ctx: crate::vm::Context {
            protocol: net.ethertype,
            ..crate::vm::Context::default()
        },
    };
    Some((input, net))
}

/// The name of a link type, for messages.
pub fn linktype_name(linktype: u32) -> String {
    match by_number(linktype) {
        Some(t) => t.description.to_string(),
        None => format!("link type {linktype}"),
    }
}

/// True for the link types this module understands.
pub fn is_supported(linktype: u32) -> bool {
    by_number(linktype).is_some()
}

fn ip_version_ethertype(first: Option<&u8>) -> Option<u16> {
    match first? >> 4 {
        4 => Some(ETHERTYPE_IPV4),
        6 => Some(ETHERTYPE_IPV6),
        _ => None,
    }
}

/// Steps over 802.1Q / QinQ tags starting at `offset` while `ethertype` names one.
fn skip_vlan_tags(frame: &[u8], mut offset: usize, mut ethertype: u16) -> Option<NetworkHeader> {
    while VLAN_TAGS.contains(&ethertype) {
        let vlan = SingleVlanSlice::from_slice(frame.get(offset..)?).ok()?;
        ethertype = vlan.ether_type().0;
        offset += vlan.header_len();
    }
    Some(NetworkHeader { offset, ethertype })
}

/// Finds the network header of `frame` captured with `linktype` (behind any VLAN tags);
/// `None` when the frame is too short or the link type is not supported.
#[inline]
pub fn network_header(linktype: u32, frame: &[u8]) -> Option<NetworkHeader> {
    // Untagged Ethernet, by far the most common frame, is found without a call.
    if linktype == LINKTYPE_ETHERNET {
        if let Ok(ethernet) = Ethernet2Slice::from_slice_without_fcs(frame) {
            let ethertype = ethernet.ether_type().0;
            if !VLAN_TAGS.contains(&ethertype) {
                return Some(NetworkHeader {
                    offset: ethernet.header_len(),
                    ethertype,
                });
            }
        }
    }
    any_network_header(linktype, frame)
}

#[inline(never)]
fn any_network_header(linktype: u32, frame: &[u8]) -> Option<NetworkHeader> {
    match linktype {
        LINKTYPE_ETHERNET => {
            let ethernet = Ethernet2Slice::from_slice_without_fcs(frame).ok()?;
            skip_vlan_tags(frame, ethernet.header_len(), ethernet.ether_type().0)
        }
        // Cooked captures keep a VLAN tag in the data when the driver did not strip it.
        LINKTYPE_LINUX_SLL => {
            let header = sll::Header::new_checked(frame)?;
            skip_vlan_tags(frame, sll::HEADER_LEN, header.protocol())
        }
        LINKTYPE_LINUX_SLL2 => {
            let header = sll2::Header::new_checked(frame)?;
            skip_vlan_tags(frame, sll2::HEADER_LEN, header.protocol())
        }
        LINKTYPE_RAW | LINKTYPE_DLT_RAW => Some(NetworkHeader {
            offset: 0,
            ethertype: ip_version_ethertype(frame.first())?,
        }),
        LINKTYPE_IPV4 => Some(NetworkHeader {
            offset: 0,
            ethertype: ETHERTYPE_IPV4,
        }),
        LINKTYPE_IPV6 => Some(NetworkHeader {
            offset: 0,
            ethertype: ETHERTYPE_IPV6,
        }),
        LINKTYPE_NULL => {
            let family = frame.get(..4)?;
            let family = u32::from_le_bytes([family[0], family[1], family[2], family[3]]);
            // Written in the capturing host's byte order: accept both.
            let family = if family > 0xffff {
                family.swap_bytes()
            } else {
                family
            };
            let ethertype = match family {
                2 => ETHERTYPE_IPV4,
                10 | 24 | 28 | 30 => ETHERTYPE_IPV6,
                _ => ip_version_ethertype(frame.get(4))?,
            };
            Some(NetworkHeader {
                offset: 4,
                ethertype,
            })
        }
        _ => None,
    }
}

/// Appends the addresses of an Ethernet header made from a cooked one: a zero destination,
/// and the cooked header's address as the source when it is a MAC address (else zero).
fn ethernet_addresses(address: Option<&[u8]>, out: &mut Vec<u8>) {
    out.extend_from_slice(&[0; 6]);
    out.extend_from_slice(address.unwrap_or(&[0; 6]));
}

/// Appends to `out` the frame as plain Ethernet (see the module docs). Returns false (and
/// appends nothing) when the network header cannot be found.
pub fn to_ethernet(linktype: u32, frame: &[u8], out: &mut Vec<u8>) -> bool {
    let Some(net) = network_header(linktype, frame) else {
        return false;
    };
    match linktype {
        LINKTYPE_ETHERNET => out.extend_from_slice(&frame[..12]),
        LINKTYPE_LINUX_SLL => {
            let header = sll::Header::new_checked(frame);
            let mac = header.as_ref().filter(|h| h.address_len() == 6);
            ethernet_addresses(mac.map(|h| h.address()), out);
        }
        LINKTYPE_LINUX_SLL2 => {
            let header = sll2::Header::new_checked(frame);
            let mac = header.as_ref().filter(|h| h.address_len() == 6);
            ethernet_addresses(mac.map(|h| h.address()), out);
        }
        _ => out.extend_from_slice(&[0; 12]),
    }
    out.extend_from_slice(&net.ethertype.to_be_bytes());
    out.extend_from_slice(&frame[net.offset..]);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_agrees_with_the_named_constants() {
        for (constant, datalink) in [
            (LINKTYPE_NULL, DataLink::NULL),
            (LINKTYPE_ETHERNET, DataLink::ETHERNET),
            (LINKTYPE_RAW, DataLink::RAW),
            (LINKTYPE_LINUX_SLL, DataLink::LINUX_SLL),
            (LINKTYPE_IPV4, DataLink::IPV4),
            (LINKTYPE_IPV6, DataLink::IPV6),
            (LINKTYPE_LINUX_SLL2, DataLink::LINUX_SLL2),
        ] {
            assert_eq!(constant, u32::from(datalink));
            assert!(is_supported(constant));
        }
        assert_eq!(parse("SLL2"), Ok(LINKTYPE_LINUX_SLL2));
        assert_eq!(parse("147"), Ok(147));
        assert!(parse("65536")
            .unwrap_err()
            .to_string()
            .contains("tcpdump would refuse"));
        assert_eq!(
            parse("290"),
            Err(ParseLinkTypeError::NotKnownToLibpcap { number: 290 })
        );
        let unknown = parse("bogus").unwrap_err();
        assert!(unknown.to_string().contains("ether, raw, ipv4"));
        assert!(std::error::Error::source(&unknown).is_some());
        assert_eq!(for_header_len(16, false), Some(LINKTYPE_LINUX_SLL));
        assert_eq!(for_header_len(0, true), Some(LINKTYPE_IPV6));
        assert_eq!(for_header_len(18, false), None);
        let dlt12 = network_header(LINKTYPE_DLT_RAW, &[0x60, 0, 0, 0]).unwrap();
        assert_eq!((dlt12.offset, dlt12.ethertype), (0, ETHERTYPE_IPV6));
    }

    #[test]
    fn finds_network_header_behind_two_vlan_tags() {
        let mut frame = vec![0u8; 12];
        frame.extend_from_slice(&[0x88, 0xa8, 0, 100, 0x81, 0x00, 0, 200, 0x08, 0x00, 0x45]);
        assert_eq!(
            network_header(LINKTYPE_ETHERNET, &frame),
            Some(NetworkHeader {
                offset: 22,
                ethertype: 0x0800
            })
        );
        let mut out = Vec::new();
        assert!(to_ethernet(LINKTYPE_ETHERNET, &frame, &mut out));
        assert_eq!(&out[12..], &[0x08, 0x00, 0x45]);
    }

    #[test]
    fn vlan_tags_behind_cooked_headers_are_skipped() {
        // SLL: 16-byte header whose protocol is 0x8100, a tag (TCI 100, IPv4), then IP.
        let mut sll = vec![0u8; 14];
        sll.extend_from_slice(&[0x81, 0x00, 0x00, 0x64, 0x08, 0x00, 0x45]);
        let net = network_header(LINKTYPE_LINUX_SLL, &sll).unwrap();
        assert_eq!((net.offset, net.ethertype), (20, 0x0800));
        // SLL2: protocol first, 20-byte header, then the tag.
        let mut sll2 = vec![0x81, 0x00];
        sll2.extend_from_slice(&[0u8; 18]);
        sll2.extend_from_slice(&[0x00, 0x64, 0x86, 0xdd, 0x60]);
        let net = network_header(LINKTYPE_LINUX_SLL2, &sll2).unwrap();
        assert_eq!((net.offset, net.ethertype), (24, 0x86dd));
        let mut out = Vec::new();
        assert!(to_ethernet(LINKTYPE_LINUX_SLL2, &sll2, &mut out));
        assert_eq!(&out[12..], &[0x86, 0xdd, 0x60]);
    }

    #[test]
    fn cooked_header_views_read_their_fields() {
        // SLL from a loopback device (hardware type 772), sent by this host, 6-byte address.
        let sll = [
            0, 4, 0x03, 0x04, 0, 6, 1, 2, 3, 4, 5, 6, 0xaa, 0xbb, 0x86, 0xdd,
        ];
        let header = sll::Header::new_checked(&sll[..]).unwrap();
        assert_eq!(header.packet_type(), 4);
        assert_eq!(header.hardware_type(), 772);
        assert_eq!(header.address_len(), 6);
        assert_eq!(header.address(), [1, 2, 3, 4, 5, 6]);
        assert_eq!(header.protocol(), ETHERTYPE_IPV6);
        assert!(sll::Header::new_checked(&sll[..15]).is_none());
        // An address length past the room is cut to the 8 bytes there are.
        let mut long = sll;
        long[5] = 20;
        let mut header = sll::Header::new_checked(&mut long[..]).unwrap();
        assert_eq!(header.address().len(), 8);
        header.address_mut().fill(0);
        assert_eq!(&long[6..16], [0, 0, 0, 0, 0, 0, 0, 0, 0x86, 0xdd]);

        let sll2 = [
            0x08, 0x00, 0, 0, 0, 0, 0x01, 0x02, 0xff, 0xfe, 3, 2, 9, 8, 0, 0, 0, 0, 0, 0,
        ];
        let header = sll2::Header::new_checked(&sll2[..]).unwrap();
        assert_eq!(header.protocol(), ETHERTYPE_IPV4);
        assert_eq!(header.interface_index(), 258);
        assert_eq!(header.hardware_type(), 65534);
        assert_eq!(header.packet_type(), 3);
        assert_eq!(header.address_len(), 2);
        assert_eq!(header.address(), [9, 8]);
        assert!(sll2::Header::new_checked(&sll2[..19]).is_none());
    }

    #[test]
    fn cooked_headers_keep_their_ethertype() {
        let mut sll = vec![0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x86, 0xdd];
        sll.push(0x60);
        let mut out = Vec::new();
        assert!(to_ethernet(LINKTYPE_LINUX_SLL, &sll, &mut out));
        assert_eq!(out, [0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 0x86, 0xdd, 0x60]);
        let mut sll2 = vec![
            0x08, 0x00, 0, 0, 0, 0, 0, 3, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0,
        ];
        sll2.push(0x45);
        out.clear();
        assert!(to_ethernet(LINKTYPE_LINUX_SLL2, &sll2, &mut out));
        assert_eq!(out, [0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 0x08, 0x00, 0x45]);
    }
}
