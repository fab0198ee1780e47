//! The dissection of a packet that `parsedns` prints: a typed [`Report`], layer by layer
//! (link, IP, UDP, DNS), of what could be read and the first error, rendered as text
//! ([`fmt::Display`]) or JSON (serde).
//!
//! What it keeps: the reading of one packet whose bytes are all in memory, and its
//! renderings. What it must not do: read input streams, parse arguments or write anywhere
//! (that is the tool's, `parsedns`), nor read a header some other way than the library's own
//! views ([`crate::pcap::link`] for link types and cooked headers, [`crate::dns`] for DNS
//! messages, etherparse for Ethernet, IP and UDP).
//!
//! It never fails and never panics on input: a layer that cannot be read is left out and the
//! report says why ([`Report::error`], [`DnsReport::error`]).

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use etherparse::{EtherType, LaxNetSlice, LaxSlicedPacket, LinkSlice, TransportSlice};
use serde::{Serialize, Serializer};

use crate::dns::{self, class_name, opcode_name, option_name, option_text, rcode_name, type_name};
use crate::pcap::link;

/// Where a packet came from: the first thing its report says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Origin {
    /// A packet of a capture.
    Packet {
        /// Its number in the capture, from 1.
        packet: u64,
        /// Its capture time since the Unix epoch.
        #[serde(serialize_with = "epoch")]
        time: Duration,
    },
    /// A line of hex text.
    Line {
        /// The line number, from 1.
        line: u64,
        /// The line's timestamp column (`pcap2hex --timestamps`), when it has one.
        #[serde(
            serialize_with = "epoch_if_any",
            skip_serializing_if = "Option::is_none"
        )]
        time: Option<Duration>,
    },
    /// A packet given as hex on the command line.
    Argument {
        /// The argument's number, from 1.
        argument: u64,
    },
}

fn epoch_text(time: Duration) -> String {
    format!("{}.{:09}", time.as_secs(), time.subsec_nanos())
}

fn epoch_if_any<S: Serializer>(time: &Option<Duration>, serializer: S) -> Result<S::Ok, S::Error> {
    match time {
        Some(time) => epoch(time, serializer),
        None => serializer.serialize_none(),
    }
}

fn epoch<S: Serializer>(time: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&epoch_text(*time))
}

/// The link layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum LinkLayer {
    /// Ethernet II, with the number of VLAN tags after it.
    Ethernet {
        /// Source MAC address.
        src: String,
        /// Destination MAC address.
        dst: String,
        /// The ethertype (of the header; VLAN tags follow when it names one).
        ethertype: String,
        /// VLAN tags read.
        vlans: usize,
    },
    /// Linux cooked capture v1.
    Sll {
        /// The sender's link-layer address.
        src: String,
        /// The protocol (an ethertype).
        ethertype: String,
        /// Packet type (0 to the host, 4 outgoing, ...).
        packet_type: u16,
        /// VLAN tags read.
        vlans: usize,
    },
    /// Linux cooked capture v2.
    Sll2 {
        /// The sender's link-layer address.
        src: String,
        /// The protocol (an ethertype).
        ethertype: String,
        /// Interface index.
        interface: u32,
        /// Packet type.
        packet_type: u8,
    },
    /// BSD loopback.
    Null {
        /// The address family.
        family: u32,
    },
}

/// The network layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Network {
    /// IPv4.
    Ipv4 {
        /// Source address.
        src: Ipv4Addr,
        /// Destination address.
        dst: Ipv4Addr,
        /// Time to live.
        ttl: u8,
        /// Identification.
        id: u16,
        /// Total length.
        length: u16,
        /// Header length in bytes.
        header_length: usize,
        /// Protocol.
        protocol: u8,
    },
    /// IPv6.
    Ipv6 {
        /// Source address.
        src: Ipv6Addr,
        /// Destination address.
        dst: Ipv6Addr,
        /// Hop limit.
        hop_limit: u8,
        /// Payload length.
        payload_length: u16,
        /// Next header.
        next_header: u8,
    },
}

/// The transport layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Transport {
    /// UDP.
    Udp {
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
        /// Length field.
        length: u16,
    },
}

/// The DNS header counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Questions.
    pub qd: u16,
    /// Answers.
    pub an: u16,
    /// Authority records.
    pub ns: u16,
    /// Additional records.
    pub ar: u16,
}

/// The DNS header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DnsHeader {
    /// Message id.
    pub id: u16,
    /// Single-bit flags set (`qr aa tc rd ra z ad cd`).
    pub flags: Vec<&'static str>,
    /// Opcode name.
    pub opcode: String,
    /// Rcode name.
    pub rcode: String,
    /// Section counts.
    pub counts: Counts,
}

/// A question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuestionReport {
    /// The name, dotted.
    pub name: String,
    /// Type name.
    #[serde(rename = "type")]
    pub qtype: String,
    /// Class name.
    pub class: String,
}

/// An EDNS option.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OptionReport {
    /// Option code.
    pub code: u16,
    /// Its name.
    pub name: String,
    /// Its value, described.
    pub value: String,
}

/// The EDNS data of an OPT record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Edns {
    /// The requester's UDP payload size.
    pub udp_size: u16,
    /// Upper 8 bits of the extended rcode.
    pub extended_rcode: u32,
    /// EDNS version.
    pub version: u32,
    /// DNSSEC OK.
    #[serde(rename = "do")]
    pub dnssec_ok: bool,
    /// Options.
    pub options: Vec<OptionReport>,
}

/// What a record holds: EDNS for OPT, class, TTL and data for the others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum RecordBody {
    /// An OPT record.
    Edns {
        /// Its EDNS data.
        edns: Edns,
    },
    /// Any other record.
    Data {
        /// Class name.
        class: String,
        /// TTL.
        ttl: u32,
        /// The data, as text.
        data: String,
    },
}

/// A resource record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordReport {
    /// `answer`, `authority` or `additional`.
    pub section: String,
    /// Owner name.
    pub name: String,
    /// Type name.
    #[serde(rename = "type")]
    pub rtype: String,
    /// What it holds.
    #[serde(flatten)]
    pub body: RecordBody,
}

/// The DNS layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DnsReport {
    /// The header, when the message has 12 bytes.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub header: Option<DnsHeader>,
    /// Questions read.
    pub questions: Vec<QuestionReport>,
    /// Records read.
    pub records: Vec<RecordReport>,
    /// Where and why reading stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The report of one packet, layer by layer: what could be read, and the first error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Where the packet came from.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
    /// Captured length in bytes.
    pub length: usize,
    /// Link layer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub l2: Option<LinkLayer>,
    /// Network layer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub l3: Option<Network>,
    /// Transport layer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub l4: Option<Transport>,
    /// DNS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns: Option<DnsReport>,
    /// Why a layer could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Whether `ip` starts with an IPv4 or IPv6 header whose length field matches the data:
/// exactly, or (`exact` false) with padding after it as on short Ethernet frames.
fn ip_header_fits(ip: &[u8], exact: bool) -> bool {
    let length = match ip.first().map(|b| b >> 4) {
        Some(4) => match etherparse::Ipv4HeaderSlice::from_slice(ip) {
            Ok(h) => usize::from(h.total_len()),
            Err(_) => return false,
        },
        Some(6) => match etherparse::Ipv6HeaderSlice::from_slice(ip) {
            Ok(h) => etherparse::Ipv6Header::LEN + usize::from(h.payload_length()),
            Err(_) => return false,
        },
        _ => return false,
    };
    if exact {
        length == ip.len()
    } else {
        length <= ip.len()
    }
}

fn mac(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

fn ethertype_text(ethertype: u16) -> String {
    format!("{ethertype:#06x}")
}

/// The link layer of the link types found through [`link::network_header`] (cooked captures
/// and loopback); the header is there, as `network_header` found what follows it.
///
/// Cooked headers are read through [`link::sll`] and [`link::sll2`], which read every
/// hardware type (loopback and tun devices, common in `-i any` captures, included).
fn cooked_link_layer(linktype: u32, frame: &[u8]) -> Option<LinkLayer> {
    match linktype {
        link::LINKTYPE_LINUX_SLL => {
            let header = link::sll::Header::new_checked(frame)?;
            Some(LinkLayer::Sll {
                src: mac(header.address()),
                ethertype: ethertype_text(header.protocol()),
                packet_type: header.packet_type(),
                vlans: 0,
            })
        }
        link::LINKTYPE_LINUX_SLL2 => {
            let header = link::sll2::Header::new_checked(frame)?;
            Some(LinkLayer::Sll2 {
                src: mac(header.address()),
                ethertype: ethertype_text(header.protocol()),
                interface: header.interface_index(),
                packet_type: header.packet_type(),
            })
        }
        // The address family, in the capturing host's byte order.
        link::LINKTYPE_NULL => {
            let family = u32::from_le_bytes([frame[0], frame[1], frame[2], frame[3]]);
            Some(LinkLayer::Null {
                family: if family > 0xffff {
                    family.swap_bytes()
                } else {
                    family
                },
            })
        }
        _ => None,
    }
}

impl Report {
    /// The report of a packet given without its link type, as hex input is: an Ethernet frame
    /// or an IP packet, told apart by their headers.
    pub fn of_unknown_link(packet: &[u8]) -> Report {
        // An IP packet whose source address holds 08 00 or 86 dd at bytes 12-13 looks like an
        // Ethernet frame: when it is also a whole IP packet, read it as Ethernet only when an
        // IP header of the right length follows the Ethernet header.
        let ethertype = (packet.len() >= 14).then(|| u16::from_be_bytes([packet[12], packet[13]]));
        let ethernet_first = match ethertype {
            Some(0x8100 | 0x88a8) => true,
            Some(link::ETHERTYPE_IPV4 | link::ETHERTYPE_IPV6) => {
                !ip_header_fits(packet, true) || ip_header_fits(&packet[14..], false)
            }
            _ => false,
        };
        if ethernet_first || !matches!(packet.first().map(|b| b >> 4), Some(4 | 6)) {
            Report::of_frame(link::LINKTYPE_ETHERNET, packet)
        } else {
            Report::of_frame(link::LINKTYPE_RAW, packet)
        }
    }

    /// The report of a frame captured with `linktype`.
    pub fn of_frame(linktype: u32, frame: &[u8]) -> Report {
        let mut report = Report {
            origin: None,
            length: frame.len(),
            l2: None,
            l3: None,
            l4: None,
            dns: None,
            error: None,
        };
        let sliced = match linktype {
            link::LINKTYPE_ETHERNET => {
                LaxSlicedPacket::from_ethernet(frame).map_err(|e| format!("l2: {e}"))
            }
            link::LINKTYPE_RAW | link::LINKTYPE_IPV4 | link::LINKTYPE_IPV6 => {
                LaxSlicedPacket::from_ip(frame).map_err(|e| format!("l3: {e}"))
            }
            other => match link::network_header(other, frame) {
                Some(net) => {
                    report.l2 = cooked_link_layer(other, frame);
                    if let Some(LinkLayer::Sll { vlans, .. }) = &mut report.l2 {
                        // Tags the driver left in the data, between the header and IP.
                        *vlans = (net.offset - link::sll::HEADER_LEN) / 4;
                    }
                    Ok(LaxSlicedPacket::from_ether_type(
                        EtherType(net.ethertype),
                        &frame[net.offset..],
                    ))
                }
                None if link::is_supported(other) => {
                    Err("l2: frame too short for its link header".to_string())
                }
                None => Err(format!(
                    "l2: {} is not a link type parsedns reads",
                    link::linktype_name(other)
                )),
            },
        };
        let sliced = match sliced {
            Ok(sliced) => sliced,
            Err(e) => {
                report.error = Some(e);
                return report;
            }
        };
        if let Some(LinkSlice::Ethernet2(eth)) = &sliced.link {
            report.l2 = Some(LinkLayer::Ethernet {
                src: mac(&eth.source()),
                dst: mac(&eth.destination()),
                ethertype: ethertype_text(eth.ether_type().0),
                vlans: sliced.link_exts.len(),
            });
        }
        let mut error = None::<String>;
        match &sliced.net {
            Some(LaxNetSlice::Ipv4(ip)) => {
                let h = ip.header();
                report.l3 = Some(Network::Ipv4 {
                    src: h.source_addr(),
                    dst: h.destination_addr(),
                    ttl: h.ttl(),
                    id: h.identification(),
                    length: h.total_len(),
                    header_length: usize::from(h.ihl()) * 4,
                    protocol: h.protocol().0,
                });
            }
            Some(LaxNetSlice::Ipv6(ip)) => {
                let h = ip.header();
                report.l3 = Some(Network::Ipv6 {
                    src: h.source_addr(),
                    dst: h.destination_addr(),
                    hop_limit: h.hop_limit(),
                    payload_length: h.payload_length(),
                    next_header: h.next_header().0,
                });
            }
            Some(LaxNetSlice::Arp(_)) => error = Some("l3: ARP, not IP".into()),
            None => error = Some("l3: no IP header".into()),
        }
        match &sliced.transport {
            Some(TransportSlice::Udp(udp)) => {
                report.l4 = Some(Transport::Udp {
                    src_port: udp.source_port(),
                    dst_port: udp.destination_port(),
                    length: udp.length(),
                });
                report.dns = Some(DnsReport::of_message(udp.payload()));
            }
            Some(_) => error = error.or(Some("l4: not UDP".into())),
            None => {
                if error.is_none() {
                    error = Some(match &sliced.stop_err {
                        Some((e, layer)) => format!("{layer:?}: {e}"),
                        None => "l4: no transport header".into(),
                    });
                }
            }
        }
        report.error = error;
        report
    }
}

impl DnsReport {
    /// The report of a DNS message (a UDP payload).
    pub fn of_message(payload: &[u8]) -> DnsReport {
        let message = dns::parse(payload);
        DnsReport {
            header: message.header.map(|h| DnsHeader {
                id: h.id,
                flags: h.flag_names(),
                opcode: opcode_name(h.opcode()),
                rcode: rcode_name(h.rcode()),
                counts: Counts {
                    qd: h.qdcount,
                    an: h.ancount,
                    ns: h.nscount,
                    ar: h.arcount,
                },
            }),
            questions: message
                .questions
                .into_iter()
                .map(|q| QuestionReport {
                    name: q.name,
                    qtype: type_name(q.qtype),
                    class: class_name(q.qclass),
                })
                .collect(),
            records: message
                .records
                .into_iter()
                .map(|(section, r)| RecordReport {
                    section: section.to_string(),
                    name: r.name,
                    rtype: type_name(r.rtype),
                    body: if r.rtype == dns::rtype::OPT {
                        RecordBody::Edns {
                            edns: Edns {
                                udp_size: r.class,
                                extended_rcode: r.ttl >> 24,
                                version: (r.ttl >> 16) & 0xff,
                                dnssec_ok: r.ttl & 0x8000 != 0,
                                options: r
                                    .options
                                    .iter()
                                    .map(|o| OptionReport {
                                        code: o.code,
                                        name: option_name(o.code),
                                        value: option_text(o),
                                    })
                                    .collect(),
                            },
                        }
                    } else {
                        RecordBody::Data {
                            class: class_name(r.class),
                            ttl: r.ttl,
                            data: r.data,
                        }
                    },
                })
                .collect(),
            error: message.error.map(|e| e.to_string()),
        }
    }
}

impl fmt::Display for Report {
    /// The text rendering: one line per layer and per DNS entry, origin first.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.origin {
            Some(Origin::Packet { packet, time }) => writeln!(
                f,
                "packet {packet} time {} length {}",
                epoch_text(time),
                self.length
            )?,
            Some(Origin::Line { line, time }) => {
                write!(f, "line {line}")?;
                if let Some(time) = time {
                    write!(f, " time {}", epoch_text(time))?;
                }
                writeln!(f, " length {}", self.length)?
            }
            Some(Origin::Argument { argument }) => {
                writeln!(f, "argument {argument} length {}", self.length)?
            }
            None => {}
        }
        match &self.l2 {
            Some(LinkLayer::Ethernet {
                src,
                dst,
                ethertype,
                vlans,
            }) => {
                write!(f, "l2: ethernet {src} -> {dst} type {ethertype}")?;
                if *vlans > 0 {
                    write!(f, " ({vlans} vlan tags)")?;
                }
                writeln!(f)?;
            }
            Some(LinkLayer::Sll {
                src,
                ethertype,
                packet_type,
                vlans,
            }) => {
                write!(
                    f,
                    "l2: linux cooked from {src} type {ethertype} packet type {packet_type}"
                )?;
                if *vlans > 0 {
                    write!(f, " ({vlans} vlan tags)")?;
                }
                writeln!(f)?;
            }
            Some(LinkLayer::Sll2 {
                src,
                ethertype,
                interface,
                packet_type,
            }) => writeln!(
                f,
                "l2: linux cooked v2 from {src} type {ethertype} interface {interface} packet type {packet_type}"
            )?,
            Some(LinkLayer::Null { family }) => writeln!(f, "l2: loopback family {family}")?,
            None => {}
        }
        match &self.l3 {
            Some(Network::Ipv4 {
                src,
                dst,
                ttl,
                id,
                length,
                header_length,
                protocol,
            }) => writeln!(
                f,
                "l3: ipv4 {src} -> {dst} ttl {ttl} id {id} length {length} header {header_length} protocol {protocol}"
            )?,
            Some(Network::Ipv6 {
                src,
                dst,
                hop_limit,
                payload_length,
                next_header,
            }) => writeln!(
                f,
                "l3: ipv6 {src} -> {dst} hop limit {hop_limit} payload {payload_length} next header {next_header}"
            )?,
            None => {}
        }
        if let Some(Transport::Udp {
            src_port,
            dst_port,
            length,
        }) = &self.l4
        {
            writeln!(f, "l4: udp {src_port} -> {dst_port} length {length}")?;
        }
        if let Some(d) = &self.dns {
            write!(f, "{d}")?;
        }
        if let Some(e) = &self.error {
            writeln!(f, "error: {e}")?;
        }
        Ok(())
    }
}

impl fmt::Display for DnsReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(h) = &self.header {
            writeln!(
                f,
                "dns: id {} opcode {} rcode {} flags [{}]",
                h.id,
                h.opcode,
                h.rcode,
                h.flags.join(" ")
            )?;
            let c = &h.counts;
            writeln!(
                f,
                "dns: qdcount {} ancount {} nscount {} arcount {}",
                c.qd, c.an, c.ns, c.ar
            )?;
        }
        for q in &self.questions {
            writeln!(f, "question: {} {} {}", q.name, q.qtype, q.class)?;
        }
        for r in &self.records {
            match &r.body {
                RecordBody::Edns { edns: e } => {
                    writeln!(
                        f,
                        "{}: {} OPT udp size {} version {} do {} extended rcode {}",
                        r.section, r.name, e.udp_size, e.version, e.dnssec_ok, e.extended_rcode
                    )?;
                    for o in &e.options {
                        writeln!(f, "  edns option {} ({}): {}", o.name, o.code, o.value)?;
                    }
                }
                RecordBody::Data { class, ttl, data } => writeln!(
                    f,
                    "{}: {} {} {} ttl {} {}",
                    r.section, r.name, r.rtype, class, ttl, data
                )?,
            }
        }
        if let Some(e) = &self.error {
            writeln!(f, "dns error: {e}")?;
        }
        Ok(())
    }
}

/// The JSON rendering of the report of a packet given without its link type (an Ethernet
/// frame or an IP packet, as hex input is read), without an origin.
pub fn report(packet: &[u8]) -> serde_json::Value {
    serde_json::to_value(Report::of_unknown_link(packet)).unwrap_or_default()
}
