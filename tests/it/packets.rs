//! Real DNS query packets for the generator tests, built with simple-dns and etherparse.

use etherparse::{
    IpHeaders, IpNumber, Ipv4Header, Ipv6FragmentHeader, Ipv6Header, Ipv6RawExtHeader,
    PacketBuilder,
};
use simple_dns::{Label, Name, Packet, Question, CLASS, TYPE};

/// IPv6 extension headers to put before UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ext {
    /// None.
    None,
    /// Hop-by-hop options.
    HopByHop,
    /// Destination options.
    DestOpts,
    /// Hop-by-hop, then destination options.
    Both,
    /// A fragment header with this offset (in 8-byte units).
    Fragment(u16),
    /// Hop-by-hop, destination options and a first-fragment header: three headers.
    Three,
}

/// How to build the packet.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// IPv6 instead of IPv4.
    pub v6: bool,
    /// IPv4 options (8 bytes of NOPs and an end), making the header 28 bytes.
    pub ip_options: bool,
    /// IPv6 extension headers.
    pub ext: Ext,
}

impl Shape {
    /// Plain IPv4.
    pub const V4: Shape = Shape {
        v6: false,
        ip_options: false,
        ext: Ext::None,
    };
    /// Plain IPv6.
    pub const V6: Shape = Shape {
        v6: true,
        ip_options: false,
        ext: Ext::None,
    };
}

/// Splits a dotted name into labels; `%XX` inside a label is the byte XX.
pub fn labels(name: &str) -> Vec<Vec<u8>> {
    name.trim_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
        .map(|label| {
            let bytes = label.as_bytes();
            let mut out = Vec::new();
            let mut i = 0;
            while i < bytes.len() {
                if bytes[i] == b'%' && i + 2 < bytes.len() + 1 && i + 3 <= bytes.len() {
                    if let Ok(b) = u8::from_str_radix(&label[i + 1..i + 3], 16) {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                }
                out.push(bytes[i]);
                i += 1;
            }
            out
        })
        .collect()
}

/// A DNS query (A, IN) for the name made of `labels`, built with simple-dns.
pub fn dns_query(labels: &[Vec<u8>], id: u16) -> Vec<u8> {
    let labels: Vec<Label> = labels
        .iter()
        .map(|l| Label::new_unchecked(l.clone()))
        .collect();
    let mut packet = Packet::new_query(id);
    packet.set_flags(simple_dns::PacketFlag::RECURSION_DESIRED);
    packet.questions.push(Question::new(
        Name::new_with_labels(&labels),
        TYPE::A.into(),
        CLASS::IN.into(),
        false,
    ));
    packet.build_bytes_vec().expect("dns query")
}

/// An IP packet (from the IP header) carrying `payload` in UDP to port 53.
pub fn udp_packet(payload: &[u8], shape: Shape) -> Vec<u8> {
    let builder = if shape.v6 {
        let header = Ipv6Header {
            source: [0xfd, 0x53, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            destination: [0xfd, 0x53, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
            hop_limit: 64,
            ..Default::default()
        };
        let mut exts = etherparse::Ipv6Extensions::default();
        let options =
            || Ipv6RawExtHeader::new_raw(IpNumber::UDP, &[1, 4, 0, 0, 0, 0]).expect("ext");
        match shape.ext {
            Ext::None => {}
            Ext::HopByHop => exts.hop_by_hop_options = Some(options()),
            Ext::DestOpts => exts.destination_options = Some(options()),
            Ext::Both => {
                exts.hop_by_hop_options = Some(options());
                exts.destination_options = Some(options());
            }
            Ext::Three => {
                exts.hop_by_hop_options = Some(options());
                exts.destination_options = Some(options());
                exts.fragment = Some(Ipv6FragmentHeader::new(
                    IpNumber::UDP,
                    etherparse::IpFragOffset::try_new(0).expect("offset"),
                    true,
                    7,
                ));
            }
            Ext::Fragment(offset) => {
                exts.fragment = Some(Ipv6FragmentHeader::new(
                    IpNumber::UDP,
                    etherparse::IpFragOffset::try_new(offset).expect("offset"),
                    true,
                    7,
                ))
            }
        }
        PacketBuilder::ip(IpHeaders::Ipv6(header, exts))
    } else {
        let mut header =
            Ipv4Header::new(0, 64, IpNumber::UDP, [10, 53, 0, 1], [10, 53, 0, 2]).expect("ipv4");
        if shape.ip_options {
            header.options = [1u8, 1, 1, 1, 1, 1, 1, 0][..].try_into().expect("options");
        }
        PacketBuilder::ip(IpHeaders::Ipv4(header, Default::default()))
    };
    let builder = builder.udp(40000, 53);
    let mut out = Vec::with_capacity(builder.size(payload.len()));
    builder.write(&mut out, payload).expect("packet");
    out
}

/// An Ethernet frame around an IP packet.
pub fn ethernet(l3: &[u8]) -> Vec<u8> {
    let ethertype: u16 = if l3.first().map(|b| b >> 4) == Some(6) {
        0x86dd
    } else {
        0x0800
    };
    let mut frame = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1];
    frame.extend_from_slice(&ethertype.to_be_bytes());
    frame.extend_from_slice(l3);
    frame
}
