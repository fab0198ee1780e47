//! Link types: where the network header starts, and normalization to plain Ethernet.
//!
//! Supported: Ethernet (with any number of 802.1Q / 802.1ad / QinQ tags), Linux cooked capture
//! v1 (SLL, 16-byte header) and v2 (SLL2, 20 bytes), raw IP (101, and 228 / 229 for IPv4 /
//! IPv6 only), BSD loopback (0, a 4-byte address family in the capturing host's byte order).
//!
//! Normalization keeps the real ethertype: an SLL or SLL2 frame becomes an Ethernet header
//! (destination 00:00:00:00:00:00, source = the cooked header's link address when it is 6
//! bytes long, ethertype = the cooked header's protocol) followed by the network header; VLAN
//! tags are removed; raw IP and loopback get zero addresses and the ethertype of their IP
//! version.

use etherparse::{Ethernet2Slice, SingleVlanSlice};

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

/// The name of a link type, for messages.
pub fn linktype_name(linktype: u32) -> String {
    match linktype {
        LINKTYPE_NULL => "BSD loopback".into(),
        LINKTYPE_ETHERNET => "Ethernet".into(),
        LINKTYPE_RAW => "raw IP".into(),
        LINKTYPE_LINUX_SLL => "Linux cooked (SLL)".into(),
        LINKTYPE_IPV4 => "raw IPv4".into(),
        LINKTYPE_IPV6 => "raw IPv6".into(),
        LINKTYPE_LINUX_SLL2 => "Linux cooked v2 (SLL2)".into(),
        other => format!("link type {other}"),
    }
}

/// True for the link types this module understands.
pub fn is_supported(linktype: u32) -> bool {
    matches!(
        linktype,
        LINKTYPE_NULL
            | LINKTYPE_ETHERNET
            | LINKTYPE_RAW
            | LINKTYPE_LINUX_SLL
            | LINKTYPE_IPV4
            | LINKTYPE_IPV6
            | LINKTYPE_LINUX_SLL2
    )
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
pub fn network_header(linktype: u32, frame: &[u8]) -> Option<NetworkHeader> {
    match linktype {
        LINKTYPE_ETHERNET => {
            let ethernet = Ethernet2Slice::from_slice_without_fcs(frame).ok()?;
            skip_vlan_tags(frame, ethernet.header_len(), ethernet.ether_type().0)
        }
        // Cooked captures keep a VLAN tag in the data when the driver did not strip it.
        LINKTYPE_LINUX_SLL => {
            let protocol = frame.get(14..16)?;
            skip_vlan_tags(frame, 16, u16::from_be_bytes([protocol[0], protocol[1]]))
        }
        LINKTYPE_LINUX_SLL2 => {
            let protocol = frame.get(0..2)?;
            frame.get(..20)?;
            skip_vlan_tags(frame, 20, u16::from_be_bytes([protocol[0], protocol[1]]))
        }
        LINKTYPE_RAW => Some(NetworkHeader {
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

/// Appends to `out` the frame as plain Ethernet (see the module docs). Returns false (and
/// appends nothing) when the network header cannot be found.
pub fn to_ethernet(linktype: u32, frame: &[u8], out: &mut Vec<u8>) -> bool {
    let Some(net) = network_header(linktype, frame) else {
        return false;
    };
    match linktype {
        LINKTYPE_ETHERNET => out.extend_from_slice(&frame[..12]),
        LINKTYPE_LINUX_SLL => {
            out.extend_from_slice(&[0; 6]);
            let addr_len = u16::from_be_bytes([frame[4], frame[5]]);
            if addr_len == 6 {
                out.extend_from_slice(&frame[6..12]);
            } else {
                out.extend_from_slice(&[0; 6]);
            }
        }
        LINKTYPE_LINUX_SLL2 => {
            out.extend_from_slice(&[0; 6]);
            if frame[11] == 6 {
                out.extend_from_slice(&frame[12..18]);
            } else {
                out.extend_from_slice(&[0; 6]);
            }
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
