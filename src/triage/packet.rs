//! One packet as triage sees it: where its IP header is, its family and source, and, for DNS
//! over UDP, the header fields and first question that the counters and the detector use.
//!
//! Nothing here allocates: the question name is written, lowercased, into a buffer the caller
//! keeps, in wire form (length-prefixed labels, without the final root byte). A question name
//! that uses a compression pointer, runs past the message or is longer than 255 bytes makes
//! the message malformed for triage's purposes (real queries never compress their question).

use std::net::IpAddr;

use etherparse::{IpNumber, IpSlice, UdpSlice};

use crate::dns::{field, walk_name, Entries, Entry, Packet, Section};
use crate::pcap::link::{self, NetworkHeader};

/// The DNS port.
pub const DNS_PORT: u16 = 53;

/// IP version of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

/// EDNS as a query shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Edns {
    /// No OPT record.
    None,
    /// An OPT record: the UDP payload size and the DO bit.
    Opt {
        /// Advertised UDP payload size.
        size: u16,
        /// DNSSEC OK.
        dnssec_ok: bool,
    },
}

/// The parts of a DNS message triage looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DnsView {
    /// The flags word (QR, opcode, AA, TC, RD, RA, Z, AD, CD, rcode).
    pub flags: u16,
    /// Question count.
    pub qdcount: u16,
    /// Answer count.
    pub ancount: u16,
    /// Authority count.
    pub nscount: u16,
    /// Additional count.
    pub arcount: u16,
    /// Type of the first question.
    pub qtype: u16,
    /// Class of the first question.
    pub qclass: u16,
    /// Whether the first question's name has an upper-case letter.
    pub upper: bool,
    /// EDNS of the message (only looked for in queries).
    pub edns: Edns,
}

impl DnsView {
    /// True for a response (QR set).
    pub fn is_response(&self) -> bool {
        self.flags & 0x8000 != 0
    }

    /// The response code.
    pub fn rcode(&self) -> u16 {
        self.flags & 0x000f
    }
}

/// A packet's IP and UDP facts.
#[derive(Debug, Clone, Copy)]
pub struct IpView<'a> {
    /// Where the IP header starts in the frame, and its ethertype.
    pub net: NetworkHeader,
    /// IPv4 or IPv6.
    pub family: Family,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// UDP ports (source, destination) when the packet is an unfragmented UDP datagram (or
    /// its first fragment).
    pub udp: Option<(u16, u16)>,
    /// The UDP payload.
    pub payload: &'a [u8],
}

/// Finds the IP header of `frame` (any link type the pcap module reads) and, for UDP, the
/// ports and payload. `None` for frames without an IP header triage can read.
pub fn ip_view(linktype: u32, frame: &[u8]) -> Option<IpView<'_>> {
    let net = link::network_header(linktype, frame)?;
    let ip = IpSlice::from_slice(frame.get(net.offset..)?).ok()?;
    let family = match ip {
        IpSlice::Ipv4(_) => Family::V4,
        IpSlice::Ipv6(_) => Family::V6,
    };
    let payload = ip.payload();
    let mut view = IpView {
        net,
        family,
        src: ip.source_addr(),
        dst: ip.destination_addr(),
        udp: None,
        payload: &[],
    };
    // A first fragment carries the UDP header (and the question, in practice): the deployed
    // rule (`-p udp --dport 53`) sees it, so triage counts it; later fragments have no header.
    let first_fragment = match &ip {
        IpSlice::Ipv4(v4) => v4.header().fragments_offset().value() == 0,
        IpSlice::Ipv6(_) => false,
    };
    if payload.ip_number == IpNumber::UDP && (!payload.fragmented || first_fragment) {
        if let Ok(udp) = UdpSlice::from_slice(payload.payload) {
            view.udp = Some((udp.source_port(), udp.destination_port()));
            view.payload = udp.payload();
        } else if let Ok(header) = etherparse::UdpHeaderSlice::from_slice(payload.payload) {
            // A first fragment: the UDP length counts bytes in later fragments.
            view.udp = Some((header.source_port(), header.destination_port()));
            view.payload = &payload.payload[8..];
        }
    }
    Some(view)
}

/// Reads the header and first question of `msg` through the library's DNS view
/// ([`Packet`]), writing the question name (lowercase, wire form without the root byte) into
/// `name`. For queries, also finds the OPT record. `None` when the message is too short or its
/// first question unreadable, compressed, or longer than 255 bytes.
pub fn dns_view(msg: &[u8], name: &mut Vec<u8>) -> Option<DnsView> {
    name.clear();
    let packet = Packet::new_checked(msg).ok()?;
    let mut view = DnsView {
        flags: packet.flags(),
        qdcount: packet.qdcount(),
        ancount: packet.ancount(),
        nscount: packet.nscount(),
        arcount: packet.arcount(),
        qtype: 0,
        qclass: 0,
        upper: false,
        edns: Edns::None,
    };
    if view.qdcount == 0 {
        return None;
    }
    // The first question through the library's name walker, copied as it is walked: written
    // in place (a real query never compresses its question) and at most 255 bytes with its
    // root byte.
    let mut fits = true;
    let end = walk_name(msg, field::QUESTIONS, |label, inline| {
        let len = label.len();
        if !inline || name.len() + 1 + len > 254 {
            fits = false;
        } else if fits {
            name.push(len as u8);
            for &b in &msg[label] {
                view.upper |= b.is_ascii_uppercase();
                name.push(b.to_ascii_lowercase());
            }
        }
    })
    .ok();
    let Some(end) = end.filter(|_| fits) else {
        name.clear();
        return None;
    };
    let fixed = msg.get(end..end + field::question::LEN)?;
    view.qtype = u16::from_be_bytes([
        fixed[field::question::TYPE],
        fixed[field::question::TYPE + 1],
    ]);
    view.qclass = u16::from_be_bytes([
        fixed[field::question::CLASS],
        fixed[field::question::CLASS + 1],
    ]);
    if !view.is_response() && view.arcount > 0 {
        view.edns = find_opt(packet.entries_after_first_question(end + field::question::LEN));
    }
    Some(view)
}

/// The first OPT record (in the additional section) among the entries after the first
/// question; [`Edns::None`] when there is none or the walk fails before it.
fn find_opt(entries: Entries<'_>) -> Edns {
    for entry in entries {
        match entry {
            Ok(Entry::Record(record))
                if record.section == Section::Additional && record.rtype == 41 =>
            {
                return Edns::Opt {
                    size: record.class,
                    dnssec_ok: record.ttl & 0x8000 != 0,
                };
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    Edns::None
}

/// The dotted text of a wire-form name (as [`dns_view`] writes it), `.` for the root. Bytes
/// that are not letters, digits, `-` or `_` are written `%XX`, as the dns generator's patterns
/// read them, so the text is always a valid literal pattern.
pub fn name_text(wire: &[u8]) -> String {
    if wire.is_empty() {
        return ".".into();
    }
    let mut text = String::with_capacity(wire.len());
    for label in labels(wire) {
        if !text.is_empty() {
            text.push('.');
        }
        push_label(&mut text, label);
    }
    text
}

/// Appends one label as pattern-safe text.
pub fn push_label(text: &mut String, label: &[u8]) {
    for &b in label {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            text.push(char::from(b));
        } else {
            text.push_str(&format!("%{b:02X}"));
        }
    }
}

/// The labels of a wire-form name, left to right.
pub fn labels(wire: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        let len = usize::from(*wire.get(pos)?);
        let label = wire.get(pos + 1..pos + 1 + len)?;
        pos += 1 + len;
        Some(label)
    })
}

/// Byte offsets in a wire-form name where each label starts: the name's suffixes are
/// `&wire[offset..]`.
pub fn label_starts(wire: &[u8], out: &mut Vec<usize>) {
    out.clear();
    let mut pos = 0;
    while pos < wire.len() {
        out.push(pos);
        pos += 1 + usize::from(wire[pos]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn question_name_is_lowercased_wire_form_and_opt_is_found() {
        let mut msg = vec![0x12, 0x34, 0x01, 0x40, 0, 1, 0, 0, 0, 0, 0, 1];
        msg.extend_from_slice(b"\x03WwW\x07example\x03net\x00\x00\x01\x00\x01");
        msg.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0x80, 0, 0, 0]);
        let mut name = Vec::new();
        let view = dns_view(&msg, &mut name).unwrap();
        assert_eq!(name, b"\x03www\x07example\x03net");
        assert!(view.upper);
        assert_eq!(view.qtype, 1);
        assert_eq!(
            view.edns,
            Edns::Opt {
                size: 1232,
                dnssec_ok: true
            }
        );
        assert_eq!(name_text(&name), "www.example.net");
        assert_eq!(name_text(b"\x03a.b\x01*"), "a%2Eb.%2A");
    }

    #[test]
    fn compressed_or_cut_questions_are_refused() {
        let mut msg = vec![0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        msg.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        assert!(dns_view(&msg, &mut Vec::new()).is_none());
        let mut msg = vec![0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        msg.extend_from_slice(b"\x03www\x00\x00");
        assert!(dns_view(&msg, &mut Vec::new()).is_none());
    }

    #[test]
    fn a_first_ipv4_fragment_is_udp_to_its_port_and_a_later_one_is_not() {
        let mut msg = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        msg.extend_from_slice(b"\x03www\x07example\x03net\x00\x00\x01\x00\x01");
        let udp_len = 8 + msg.len() as u16 + 1000; // the rest is in later fragments
        let mut packet = vec![
            0x45, 0, 0, 0, 0x12, 0x34, 0x20, 0x00, 64, 17, 0, 0, 192, 0, 2, 1, 192, 0, 2, 53,
        ];
        let total = (20 + 8 + msg.len()) as u16;
        packet[2..4].copy_from_slice(&total.to_be_bytes());
        packet.extend_from_slice(&[0x9c, 0x40, 0, 53]);
        packet.extend_from_slice(&udp_len.to_be_bytes());
        packet.extend_from_slice(&[0, 0]);
        packet.extend_from_slice(&msg);
        let view = ip_view(crate::pcap::link::LINKTYPE_RAW, &packet).unwrap();
        assert_eq!(view.udp, Some((40000, 53)));
        let mut name = Vec::new();
        assert!(dns_view(view.payload, &mut name).is_some());
        assert_eq!(name, b"\x03www\x07example\x03net");
        // Offset 8 (in 8-byte units 1): a later fragment, no UDP header.
        packet[6..8].copy_from_slice(&[0x00, 0x01]);
        assert_eq!(
            ip_view(crate::pcap::link::LINKTYPE_RAW, &packet)
                .unwrap()
                .udp,
            None
        );
    }
}
