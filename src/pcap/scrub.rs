//! Deterministic anonymization of Ethernet frames (`pcap2hex --scrub`).
//!
//! What changes: MAC addresses (Ethernet), IPv4 / IPv6 addresses (behind any supported link
//! header and VLAN tags), and in DNS messages (UDP port 53) the labels of every question and
//! record name, the addresses of A and AAAA records, the names in NS, CNAME, PTR, MX and SOA
//! data and the addresses of EDNS client-subnet options. What is kept: every length and every
//! other byte, so the frame has the same structure; the IPv4 header checksum and the UDP
//! checksum are recomputed. Other record data (TXT, for example) is left as it is.
//!
//! The mapping is a fixed function of the input: the same address or label always becomes the
//! same replacement, within a capture and across captures. A label keeps its length and the
//! class of each character (lower case, upper case, digit, other bytes unchanged), so a `bpfgen`
//! pattern can be rewritten for scrubbed data label by label (`*.www.example.net` ->
//! `*.` + scrub(www) + `.` + scrub(example) + `.` + scrub(net)) and selects the same packets,
//! with and without `-i`. Multicast / broadcast bits of MAC addresses are kept.

use std::ops::Range;

use crate::dns::{self, rtype};
use crate::pcap::link;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a over `bytes`, seeded with a domain tag so addresses and labels map independently.
fn hash(domain: u8, bytes: &[u8]) -> u64 {
    let mut h = FNV_OFFSET ^ u64::from(domain);
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    // Final mix so nearby inputs spread over all bits.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

/// Pseudo-random bytes derived from `input`, as many as `out` holds.
fn derive(domain: u8, input: &[u8], out: &mut [u8]) {
    let mut counter = 0u8;
    for chunk in out.chunks_mut(8) {
        let mut seed = input.to_vec();
        seed.push(counter);
        let bytes = hash(domain, &seed).to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
        counter = counter.wrapping_add(1);
    }
}

fn scrub_address(domain: u8, address: &mut [u8]) {
    let original = address.to_vec();
    derive(domain, &original, address);
}

fn scrub_mac(mac: &mut [u8]) {
    if mac.iter().all(|&b| b == 0xff) || mac.iter().all(|&b| b == 0) {
        return;
    }
    let group = mac[0] & 0x01;
    scrub_address(1, mac);
    // Keep the group (multicast) bit, mark the result locally administered.
    mac[0] = (mac[0] & 0xfc) | 0x02 | group;
}

/// A link-layer address of any length: a MAC address keeps its group bit.
fn scrub_link_address(address: &mut [u8]) {
    if address.len() == 6 {
        scrub_mac(address);
    } else if address.iter().any(|&b| b != 0) {
        scrub_address(1, address);
    }
}

/// Replaces the characters of a DNS label, keeping length and character classes.
pub fn scrub_label(label: &mut [u8]) {
    let lower: Vec<u8> = label.iter().map(|b| b.to_ascii_lowercase()).collect();
    let mut random = vec![0u8; label.len()];
    derive(4, &lower, &mut random);
    for (byte, r) in label.iter_mut().zip(random) {
        *byte = match *byte {
            b'a'..=b'z' => b'a' + r % 26,
            b'A'..=b'Z' => b'A' + r % 26,
            b'0'..=b'9' => b'0' + r % 10,
            other => other,
        };
    }
}

/// Scrubs a DNS message: the names of questions and records, the addresses of A and AAAA
/// records, the names inside NS, CNAME, PTR, MX and SOA data, and EDNS client-subnet
/// addresses. The message is walked by the DNS view's walker ([`dns::Packet::entries`]); each
/// label is scrubbed where it is written (a compression pointer's target is scrubbed where it
/// stands). Stops at what the walker refuses (what was found before is scrubbed).
fn scrub_dns(msg: &mut [u8]) {
    // Found first on the untouched message, changed after.
    let mut labels: Vec<Range<usize>> = Vec::new();
    let mut addresses: Vec<(u8, Range<usize>)> = Vec::new();
    {
        let Ok(packet) = dns::Packet::new_checked(&*msg) else {
            return;
        };
        let bytes = packet.as_bytes();
        let mut inline_labels = |name: dns::NameRef| {
            let _ = dns::walk_name(bytes, name.start, |label, inline| {
                if inline {
                    labels.push(label);
                }
            });
        };
        for entry in packet.entries() {
            let record = match entry {
                Ok(dns::Entry::Question(question)) => {
                    inline_labels(question.name);
                    continue;
                }
                Ok(dns::Entry::Record(record)) => record,
                Err(_) => break,
            };
            inline_labels(record.name);
            match record.rtype {
                rtype::A if record.rdata.len() == 4 => addresses.push((2, record.rdata)),
                rtype::AAAA if record.rdata.len() == 16 => addresses.push((3, record.rdata)),
                rtype::OPT => {
                    for option in record.options(bytes) {
                        let Ok(option) = option else { break };
                        // A value cut by the end of the record is scrubbed as far as it goes.
                        if option.code == dns::option::CLIENT_SUBNET && option.data.len() > 4 {
                            let family = u16::from_be_bytes([
                                bytes[option.data.start],
                                bytes[option.data.start + 1],
                            ]);
                            let domain = match family {
                                1 => 2,
                                2 => 3,
                                _ => continue,
                            };
                            addresses.push((domain, option.data.start + 4..option.data.end));
                        }
                    }
                }
                _ => match record.rdata_names(bytes) {
                    Ok(names) => names.into_iter().flatten().for_each(&mut inline_labels),
                    Err(_) => break,
                },
            }
        }
    }
    for label in labels {
        scrub_label(&mut msg[label]);
    }
    for (domain, address) in addresses {
        scrub_address(domain, &mut msg[address]);
    }
}

/// Scrubs a frame of any supported link type in place: MAC addresses of Ethernet frames, and
/// behind any link header and VLAN tags the IP addresses and DNS data (see the module docs).
pub fn scrub_frame(linktype: u32, frame: &mut [u8]) {
    use crate::pcap::link::{LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2};
    match linktype {
        LINKTYPE_ETHERNET if frame.len() >= 12 => {
            scrub_mac(&mut frame[0..6]);
            scrub_mac(&mut frame[6..12]);
        }
        // Cooked headers carry the sender's link-layer address (up to 8 bytes), of loopback
        // and tun devices too (which the views read, unlike etherparse's reader).
        LINKTYPE_LINUX_SLL => {
            if let Some(mut header) = link::sll::Header::new_checked(&mut *frame) {
                scrub_link_address(header.address_mut());
            }
        }
        LINKTYPE_LINUX_SLL2 => {
            if let Some(mut header) = link::sll2::Header::new_checked(&mut *frame) {
                scrub_link_address(header.address_mut());
            }
        }
        _ => {}
    }
    if let Some(net) = crate::pcap::link::network_header(linktype, frame) {
        scrub_ip(net.ethertype, &mut frame[net.offset..]);
    }
}

/// Scrubs an Ethernet frame in place (see the module docs).
pub fn scrub_ethernet(frame: &mut [u8]) {
    scrub_frame(crate::pcap::link::LINKTYPE_ETHERNET, frame);
}

/// Scrubs an IP packet (`ethertype` says which version) in place: its addresses, and behind a
/// UDP header directly after the IP header (not in later fragments) the DNS message of port 53.
/// The IPv4 header checksum is recomputed over the header's bytes as they are (reserved bits
/// and options included), the UDP checksum when the packet had one and holds the whole
/// datagram.
fn scrub_ip(ethertype: u16, ip: &mut [u8]) {
    use etherparse::checksum::Sum16BitWords;
    use etherparse::{IpNumber, Ipv4HeaderSlice, Ipv6HeaderSlice, UdpHeaderSlice};
    // Address offsets: IPv4 source 12..16, destination 16..20; IPv6 source 8..24,
    // destination 24..40 (RFC 791, RFC 8200).
    let transport_start = match ethertype {
        link::ETHERTYPE_IPV4 => {
            let Ok(header) = Ipv4HeaderSlice::from_slice(ip) else {
                return;
            };
            let header_len = header.slice().len();
            let udp = header.protocol() == IpNumber::UDP && header.fragments_offset().value() == 0;
            scrub_address(2, &mut ip[12..16]);
            scrub_address(2, &mut ip[16..20]);
            ip[10..12].fill(0);
            let checksum = Sum16BitWords::new()
                .add_slice(&ip[..header_len])
                .ones_complement()
                .to_be();
            ip[10..12].copy_from_slice(&checksum.to_be_bytes());
            if !udp {
                return;
            }
            header_len
        }
        link::ETHERTYPE_IPV6 => {
            let Ok(header) = Ipv6HeaderSlice::from_slice(ip) else {
                return;
            };
            let udp = header.next_header() == IpNumber::UDP;
            scrub_address(3, &mut ip[8..24]);
            scrub_address(3, &mut ip[24..40]);
            if !udp {
                return;
            }
            etherparse::Ipv6Header::LEN
        }
        _ => return,
    };
    let (before, udp) = ip.split_at_mut(transport_start);
    let Ok(header) = UdpHeaderSlice::from_slice(udp) else {
        return;
    };
    let header = header.to_header();
    if header.source_port == 53 || header.destination_port == 53 {
        scrub_dns(&mut udp[etherparse::UdpHeader::LEN..]);
    }
    let udp_len = usize::from(header.length);
    if header.checksum == 0 || udp_len < etherparse::UdpHeader::LEN || udp_len > udp.len() {
        return;
    }
    let payload = &udp[etherparse::UdpHeader::LEN..udp_len];
    let checksum = if ethertype == link::ETHERTYPE_IPV4 {
        let address = |at: usize| -> [u8; 4] { before[at..at + 4].try_into().expect("4 bytes") };
        header.calc_checksum_ipv4_raw(address(12), address(16), payload)
    } else {
        let address = |at: usize| -> [u8; 16] { before[at..at + 16].try_into().expect("16 bytes") };
        header.calc_checksum_ipv6_raw(address(8), address(24), payload)
    };
    if let Ok(checksum) = checksum {
        udp[6..8].copy_from_slice(&checksum.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_keep_length_class_and_identity() {
        let mut a = *b"www";
        let mut b = *b"WWW";
        scrub_label(&mut a);
        scrub_label(&mut b);
        assert_ne!(&a, b"www");
        assert!(a.iter().all(u8::is_ascii_lowercase));
        assert_eq!(
            a.to_ascii_uppercase(),
            b,
            "case-insensitive identity is kept"
        );
        let mut again = *b"www";
        scrub_label(&mut again);
        assert_eq!(a, again);
    }

    /// A response: question `www.example.net`, an answer whose owner is a compression
    /// pointer to it (A 192.0.2.2), an OPT record with a client subnet 10.53.0.0/24.
    fn response() -> Vec<u8> {
        crate::dns::tests::answer_with_pointer_and_opt()
    }

    #[test]
    fn dns_labels_addresses_and_client_subnet_are_scrubbed_once_each() {
        let original = response();
        let mut msg = original.clone();
        scrub_dns(&mut msg);
        assert_eq!(msg.len(), original.len());
        let parsed = crate::dns::parse(&msg);
        assert_eq!(parsed.error, None, "the structure is kept");
        let name = &parsed.questions[0].name;
        assert_ne!(name, "www.example.net.");
        assert_eq!(name.len(), "www.example.net.".len());
        // The pointer is kept, so the answer's owner is the scrubbed question name.
        assert_eq!(&parsed.records[0].1.name, name);
        assert_eq!(&msg[33..35], &[0xc0, 12]);
        // Each label is scrubbed once: scrubbing the labels alone gives the same bytes.
        let mut www = *b"www";
        scrub_label(&mut www);
        assert_eq!(&msg[13..16], &www);
        assert_ne!(&msg[45..49], &[192, 0, 2, 2]);
        assert_ne!(&msg[msg.len() - 3..], &[10, 53, 0]);
        // Everything else is as it was.
        for at in [12, 16, 24, 28]
            .into_iter()
            .chain(0..12)
            .chain(29..45)
            .chain(49..msg.len() - 3)
        {
            assert_eq!(msg[at], original[at], "byte {at}");
        }
    }

    #[test]
    fn malformed_dns_is_scrubbed_up_to_the_damage_without_panic() {
        let original = response();
        for len in 0..original.len() {
            let mut msg = original[..len].to_vec();
            scrub_dns(&mut msg);
        }
        // A question name pointing at itself: nothing is scrubbed, nothing loops.
        let mut looping = vec![0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1];
        let before = looping.clone();
        scrub_dns(&mut looping);
        assert_eq!(looping, before);
    }

    /// Whether the IPv4 header checksum and the UDP checksum of `ip` (no extension headers)
    /// are right, as etherparse computes them.
    fn checksums_hold(ip: &[u8]) -> bool {
        use etherparse::checksum::Sum16BitWords;
        let (udp_at, udp_sum) = if ip[0] >> 4 == 4 {
            let header = etherparse::Ipv4HeaderSlice::from_slice(ip).unwrap();
            let len = header.slice().len();
            // The sum over a header with its checksum is 0xffff: its complement is 0.
            if Sum16BitWords::new().add_slice(&ip[..len]).ones_complement() != 0 {
                return false;
            }
            let udp = etherparse::UdpHeaderSlice::from_slice(&ip[len..]).unwrap();
            let payload = &ip[len + 8..len + usize::from(udp.length())];
            let sum = udp.to_header().calc_checksum_ipv4_raw(
                header.source(),
                header.destination(),
                payload,
            );
            (len, sum.unwrap())
        } else {
            let header = etherparse::Ipv6HeaderSlice::from_slice(ip).unwrap();
            let udp = etherparse::UdpHeaderSlice::from_slice(&ip[40..]).unwrap();
            let payload = &ip[48..40 + usize::from(udp.length())];
            let sum = udp.to_header().calc_checksum_ipv6_raw(
                header.source(),
                header.destination(),
                payload,
            );
            (40, sum.unwrap())
        };
        u16::from_be_bytes([ip[udp_at + 6], ip[udp_at + 7]]) == udp_sum
    }

    #[test]
    fn checksums_are_recomputed_over_the_header_as_it_is() {
        let payload = response();
        // IPv4 with options and the reserved flag bit set, and IPv6.
        let mut v4 = Vec::new();
        let mut header = etherparse::Ipv4Header::new(
            0,
            64,
            etherparse::IpNumber::UDP,
            [10, 53, 0, 1],
            [10, 53, 0, 2],
        )
        .unwrap();
        header.options = [1, 1, 1, 0][..].try_into().unwrap();
        etherparse::PacketBuilder::ip(etherparse::IpHeaders::Ipv4(header, Default::default()))
            .udp(53, 40000)
            .write(&mut v4, &payload)
            .unwrap();
        v4[6] |= 0x80;
        let sum = {
            v4[10..12].fill(0);
            etherparse::checksum::Sum16BitWords::new()
                .add_slice(&v4[..24])
                .ones_complement()
                .to_be()
        };
        v4[10..12].copy_from_slice(&sum.to_be_bytes());
        let mut v6 = Vec::new();
        etherparse::PacketBuilder::ipv6([0xfd; 16], [0xfe; 16], 64)
            .udp(53, 40000)
            .write(&mut v6, &payload)
            .unwrap();
        for (ethertype, ip) in [(0x0800, v4), (0x86dd, v6)] {
            assert!(checksums_hold(&ip), "built right");
            let mut scrubbed = ip.clone();
            scrub_ip(ethertype, &mut scrubbed);
            assert_ne!(scrubbed, ip);
            assert!(
                checksums_hold(&scrubbed),
                "{ethertype:#x}: checksums after scrubbing"
            );
            assert_eq!(scrubbed[6] & 0x80, ip[6] & 0x80, "reserved bit kept");
        }
    }

    #[test]
    fn cooked_loopback_frames_are_scrubbed() {
        // SLL v1 from the loopback device (hardware type 772), which etherparse's SLL reader
        // refuses: the address and the IP packet are scrubbed all the same.
        let mut ip = Vec::new();
        etherparse::PacketBuilder::ipv4([127, 0, 0, 1], [127, 0, 0, 53], 64)
            .udp(40000, 53)
            .write(&mut ip, &response())
            .unwrap();
        let mut frame = vec![0, 0, 3, 4, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x08, 0x00];
        assert!(etherparse::LinuxSllHeaderSlice::from_slice(&frame).is_err());
        frame.extend_from_slice(&ip);
        let original = frame.clone();
        scrub_frame(crate::pcap::link::LINKTYPE_LINUX_SLL, &mut frame);
        let address = link::sll::field::ADDRESS.start..link::sll::field::ADDRESS.start + 6;
        assert_ne!(&frame[address.clone()], &original[address]);
        let ip = link::sll::HEADER_LEN;
        assert_ne!(&frame[ip + 12..ip + 20], &original[ip + 12..ip + 20]);
        assert!(checksums_hold(&frame[ip..]));
    }
}
