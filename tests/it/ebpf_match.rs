//! The native DNS matcher (`bpftools::ebpf::matcher`) against the `dns` generator.
//!
//! The reference for a rule list is what iptables does with one `dns` rule per pattern: the
//! gate of `-p udp --dport 53 -m set --match-set SET dst` (UDP to port 53, not a later
//! fragment, IPv6 extension headers walked as ip6tables walks them, a protected destination),
//! then chain mode (one classic `dns` program per rule, made for the network header and run
//! by the VM at the frame's network header, in order, the first match deciding) for the
//! messages the matcher reads (a whole DNS header, whatever QR and QDCOUNT say, as the
//! programs); anything else passes. The one place the
//! matcher departs from iptables, an IPv6 frame with more extension headers than it walks
//! ([`matcher::GATE_EXT_HEADERS`]), is modelled as the matcher documents it.
//!
//! Without root: the map encoding (keys, ranks, explicit orders, the split of a mixed list,
//! refusals) and the Rust model of the program's decision ([`MapContents::decide`],
//! [`MapContents::first_rank`]) against the VM. Root only, through `bpftools::ebpf::sys`:
//! the program loaded with its maps and run with `BPF_PROG_TEST_RUN` over every packet of
//! testdata/captures, queries built with simple-dns and etherparse, and adversarial frames
//! built byte by byte (extension-header chains, fragments, IPv4 options, compression
//! pointers, cuts); the address gate; the per-rule counters; the tail-call hook.

use std::collections::BTreeMap;

use bpftools::dns::wire::field;
use bpftools::ebpf::compile::{XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX};
use bpftools::ebpf::insn::{AluOp, JmpOp, Operand, Size};
use bpftools::ebpf::matcher::{
    self, action_of, Action, Key, KeyKind, MapContents, MapRole, MatcherOptions, RuleError, Skips,
    Unsupported, Variant, GATE_EXT_HEADERS, SCRATCH_BEST,
};
use bpftools::ebpf::sys::{
    lpm_key, possible_cpus, raise_memlock, Map, MapKind, MapSpec, Program, ProgramKind, Update,
};
use bpftools::ebpf::{Insn, Reg};
use bpftools::gen::{build, DnsSpec, GenOptions, Generator, DEFAULT_EXT_HEADERS};
use bpftools::vm::{Context, Input, Profile, Program as VmProgram};
use etherparse::{Ethernet2HeaderSlice, IpNumber, Ipv4HeaderSlice, SingleVlanHeaderSlice};

use crate::common::require_root;
use crate::ebpf::frames;
use crate::packets::{dns_query, ethernet, labels, udp_packet, Shape};

// --- The reference: what iptables hands the rule's program, and the chain's verdict.

/// Destination prefixes an ipset `hash:net` holds.
#[derive(Debug, Clone, Default)]
pub(crate) struct Protected {
    pub(crate) v4: Vec<(u32, [u8; 4])>,
    pub(crate) v6: Vec<(u32, [u8; 16])>,
}

impl Protected {
    /// `0.0.0.0/0` and `::/0`.
    pub(crate) fn all() -> Protected {
        Protected {
            v4: vec![(0, [0; 4])],
            v6: vec![(0, [0; 16])],
        }
    }

    fn covers(&self, address: &[u8]) -> bool {
        let within = |len: u32, prefix: &[u8]| {
            (0..len as usize).all(|bit| {
                let mask = 0x80 >> (bit % 8);
                prefix[bit / 8] & mask == address[bit / 8] & mask
            })
        };
        match address.len() {
            4 => self.v4.iter().any(|(len, p)| within(*len, p)),
            _ => self.v6.iter().any(|(len, p)| within(*len, p)),
        }
    }
}

/// What the rule sees of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// Not handed to the rule's program.
    Not,
    /// Handed over: the network header's offset, the family, the DNS message's offset.
    Rule { v6: bool, net: usize, dns: usize },
    /// IPv6 behind more extension headers than the matcher walks: taken as handed over.
    Blind,
}

fn be16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

/// The link layer's length and tag count (up to two tags), and the EtherType after them.
pub(crate) fn link_layer(frame: &[u8]) -> Option<(usize, usize, u16)> {
    let eth = Ethernet2HeaderSlice::from_slice(frame).ok()?;
    let mut ether_type = eth.ether_type().0;
    let mut at = eth.slice().len();
    let mut tags = 0;
    while tags < 2 && matches!(ether_type, 0x8100 | 0x88a8 | 0x9100) {
        let tag = SingleVlanHeaderSlice::from_slice(&frame[at..]).ok()?;
        ether_type = tag.ether_type().0;
        at += tag.slice().len();
        tags += 1;
    }
    Some((at, tags, ether_type))
}

/// The gate of `-p udp --dport 53 -m set --match-set SET dst`: IPv4 as ip_tables reads it;
/// IPv6 as ip6_tables' `ipv6_find_hdr` walks it (hop-by-hop, routing, destination options,
/// authentication, fragments: a later one ends the walk unmatched), then `udp_mt` (a whole
/// UDP header, not a later fragment, the port).
fn seen(frame: &[u8], protected: &Protected) -> Seen {
    let Some((net, _, ether_type)) = link_layer(frame) else {
        return Seen::Not;
    };
    let (v6, udp_at, destination) = match ether_type {
        0x0800 => {
            let Ok(ip) = Ipv4HeaderSlice::from_slice(&frame[net..]) else {
                return Seen::Not;
            };
            if ip.protocol() != IpNumber::UDP || ip.fragments_offset().value() != 0 {
                return Seen::Not;
            }
            (false, net + ip.slice().len(), ip.destination().to_vec())
        }
        0x86dd => {
            let Some(fixed) = frame.get(net..net + 40) else {
                return Seen::Not;
            };
            if fixed[0] >> 4 != 6 {
                return Seen::Not;
            }
            let destination = fixed[24..40].to_vec();
            let mut next = fixed[6];
            let mut at = net + 40;
            let mut walked = 0;
            loop {
                match next {
                    17 => break,
                    0 | 43 | 44 | 51 | 60 => {
                        if walked == GATE_EXT_HEADERS {
                            // The matcher's bound: past it, the frame is taken as seen.
                            return if protected.covers(&destination) {
                                Seen::Blind
                            } else {
                                Seen::Not
                            };
                        }
                        // ip6_tables reads 2 bytes (4 of a fragment header) here, then the
                        // next header at its end: for a frame that reaches UDP, reading the 8
                        // bytes every extension header has is the same; past the walk, the
                        // matcher reads them.
                        let Some(&[following, length, ..]) = frame.get(at..at + 8) else {
                            return Seen::Not;
                        };
                        let size = match next {
                            44 => {
                                match be16(frame, at + 2) {
                                    Some(offset) if offset & !7 == 0 => {}
                                    _ => return Seen::Not,
                                }
                                8
                            }
                            51 => (usize::from(length) + 2) * 4,
                            _ => (usize::from(length) + 1) * 8,
                        };
                        next = following;
                        at += size;
                        walked += 1;
                    }
                    _ => return Seen::Not,
                }
            }
            (true, at, destination)
        }
        _ => return Seen::Not,
    };
    if frame.len() < udp_at + 8 || be16(frame, udp_at + 2) != Some(53) {
        return Seen::Not;
    }
    if !protected.covers(&destination) {
        return Seen::Not;
    }
    Seen::Rule {
        v6,
        net,
        dns: udp_at + 8,
    }
}

/// Whether the DNS message at `dns` has a whole header, which is what the matcher reads (as
/// the `dns` programs, whatever QR and QDCOUNT say).
fn is_query(frame: &[u8], dns: usize) -> bool {
    frame.get(dns..dns + field::HEADER_LEN).is_some()
}

/// One rule list (explicit orders, listed in any order) with its reference programs (IPv4,
/// IPv6) per rule.
pub(crate) struct RuleSet {
    pub(crate) name: &'static str,
    pub(crate) options: MatcherOptions,
    /// (order, action, pattern), sorted by order.
    pub(crate) rules: Vec<(u32, Action, &'static str)>,
    /// Whether the orders are 0..n in list order (then [`MapContents::new`] builds the maps).
    consecutive: bool,
    programs: Vec<(VmProgram, VmProgram)>,
}

/// The reference's verdict on one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Expected {
    /// Handed to the rule (the tail call happens).
    pub(crate) gated: bool,
    /// The index (in order) of the rule that decides.
    pub(crate) rule: Option<usize>,
    /// The frame's VLAN tag count.
    pub(crate) tags: usize,
}

impl RuleSet {
    pub(crate) fn new(
        name: &'static str,
        ignore_case: bool,
        rules: Vec<(Action, &'static str)>,
    ) -> RuleSet {
        let ordered = rules
            .into_iter()
            .enumerate()
            .map(|(order, (action, pattern))| (order as u32, action, pattern))
            .collect();
        RuleSet::with_orders(name, ignore_case, ordered, true)
    }

    fn with_orders(
        name: &'static str,
        ignore_case: bool,
        mut rules: Vec<(u32, Action, &'static str)>,
        consecutive: bool,
    ) -> RuleSet {
        rules.sort_by_key(|rule| rule.0);
        let program = |pattern: &str, inet6: bool| {
            let generator = Generator::Dns(DnsSpec {
                patterns: vec![pattern.to_string()],
                ignore_case,
                ext_headers: DEFAULT_EXT_HEADERS,
            });
            let opts = GenOptions {
                inet6,
                negate: false,
                offset: 0,
            };
            let generated = build(&generator, &opts).expect("generator");
            VmProgram::new(&generated.insns, Profile::Socket).expect("valid")
        };
        let programs = rules
            .iter()
            .map(|&(_, _, pattern)| (program(pattern, false), program(pattern, true)))
            .collect();
        RuleSet {
            name,
            options: MatcherOptions { ignore_case },
            rules,
            consecutive,
            programs,
        }
    }

    pub(crate) fn contents(&self) -> MapContents {
        if self.consecutive {
            let listed: Vec<(Action, &str)> = self.rules.iter().map(|r| (r.1, r.2)).collect();
            MapContents::new(&listed, self.options).expect("map contents")
        } else {
            // Given out of order: the ranks come from the orders, not the list.
            let mut shuffled = self.rules.clone();
            shuffled.reverse();
            MapContents::with_orders(&shuffled, self.options).expect("map contents")
        }
    }

    fn rank_of(&self, rule: usize) -> u32 {
        let (order, action, _) = self.rules[rule];
        matcher::rank(order as usize, action).expect("rank")
    }

    pub(crate) fn verdict(&self, expected: Expected) -> u32 {
        match expected.rule {
            Some(rule) => verdict(self.rules[rule].1),
            None => XDP_PASS,
        }
    }

    /// The chain's decision: the first rule whose classic program matches decides.
    pub(crate) fn expected(&self, frame: &[u8], protected: &Protected) -> Expected {
        let tags = link_layer(frame).map_or(0, |(_, tags, _)| tags);
        let (v6, net) = match seen(frame, protected) {
            Seen::Not => {
                return Expected {
                    gated: false,
                    rule: None,
                    tags,
                }
            }
            Seen::Blind => {
                // The first rule decides, unless the programs refuse the headers they walk.
                let rule = match seen_by_programs(frame) {
                    Walk::Refused => None,
                    _ => Some(0),
                };
                return Expected {
                    gated: true,
                    rule,
                    tags,
                };
            }
            Seen::Rule { v6, net, dns } if is_query(frame, dns) => (v6, net),
            Seen::Rule { .. } => {
                return Expected {
                    gated: true,
                    rule: None,
                    tags,
                }
            }
        };
        let input = Input {
            frame,
            start: net,
            net: Some(net),
            link: Some(0),
            wire_len: (frame.len() - net) as u32,
            ctx: Context::default(),
        };
        let rule = self.programs.iter().position(|(v4, v6_program)| {
            let program = if v6 { v6_program } else { v4 };
            program.run_with(&input) != 0
        });
        Expected {
            gated: true,
            rule,
            tags,
        }
    }

    /// The Rust model's verdict on the same frame.
    fn modelled(&self, contents: &MapContents, frame: &[u8]) -> u32 {
        let rank = match seen(frame, &Protected::all()) {
            Seen::Not => 0,
            Seen::Blind => match seen_by_programs(frame) {
                Walk::Refused => 0,
                _ => contents.first_rank(),
            },
            Seen::Rule { dns, .. } if !is_query(frame, dns) => 0,
            Seen::Rule { dns, .. } => {
                let name_at = dns + field::QUESTIONS;
                let end = frame.len().min(name_at + 255);
                let mut name = frame[name_at..end].to_vec();
                if self.options.ignore_case {
                    name.make_ascii_lowercase();
                }
                // The first rank decides a query behind more headers than the programs walk.
                match seen_by_programs(frame) {
                    Walk::Name => contents.decide(&name),
                    Walk::First => contents.first_rank(),
                    Walk::Refused => 0,
                }
            }
        };
        match action_of(rank) {
            Some(action) => verdict(action),
            None => XDP_PASS,
        }
    }
}

/// How the `dns` programs' own IPv6 walk ends (two headers of the kinds 0, 43, 44, 60).
enum Walk {
    /// At UDP: they read the name.
    Name,
    /// On a third extension header: they match whatever the name.
    First,
    /// Elsewhere: they match nothing.
    Refused,
}

fn seen_by_programs(frame: &[u8]) -> Walk {
    let Some((net, _, 0x86dd)) = link_layer(frame) else {
        return Walk::Name;
    };
    let mut next = frame[net + 6];
    let mut at = net + 40;
    for _ in 0..DEFAULT_EXT_HEADERS {
        match next {
            17 => return Walk::Name,
            44 => {
                next = frame[at];
                at += 8;
            }
            0 | 43 | 60 => {
                next = frame[at];
                at += (usize::from(frame[at + 1]) + 1) * 8;
            }
            _ => return Walk::Refused,
        }
    }
    match next {
        17 => Walk::Name,
        0 | 43 | 44 | 60 => Walk::First,
        _ => Walk::Refused,
    }
}

fn verdict(action: Action) -> u32 {
    match action {
        Action::Drop => XDP_DROP,
        Action::Accept => XDP_PASS,
    }
}

pub(crate) fn rule_sets() -> Vec<RuleSet> {
    use Action::{Accept, Drop};
    vec![
        RuleSet::new(
            "flood drop, folded",
            true,
            vec![
                (Accept, "www.example.net"),
                (Drop, "*{8-16}.www.example.net"),
                (Accept, "ok.www.example.net"),
                (Drop, "*.www.example.net"),
                (Drop, "example.net"),
            ],
        ),
        RuleSet::new(
            "case-sensitive, prefixes and accept-all",
            false,
            vec![
                (Accept, "WWW.example.net"),
                (Drop, "*{1-3}.www.example.net"),
                (Drop, "www.example.**"),
                (Accept, "example.**"),
                (Drop, "*.Example.NET"),
                (Drop, "*"),
                (Accept, "**"),
            ],
        ),
        RuleSet::new(
            "drop everything but an accept list, folded",
            true,
            vec![
                (Accept, "example.net"),
                (Accept, "Ok.Example.Net"),
                (Accept, "*{4-5}.example.net"),
                (Drop, "**"),
            ],
        ),
        RuleSet::new(
            "suffix bounds overlapping, first wins",
            true,
            vec![
                (Drop, "*{10-12}.www.example.net"),
                (Accept, "*{8-11}.www.example.net"),
                (Drop, "*{1-63}.www.example.net"),
                (Drop, "com.**"),
            ],
        ),
        RuleSet::with_orders(
            "explicit sparse orders, drop first",
            true,
            vec![
                (70, Drop, "*.example.net"),
                (5, Drop, "*{10-12}.www.example.net"),
                (900, Drop, "**"),
                (40, Accept, "www.example.**"),
                (12, Accept, "ok.example.net"),
            ],
            false,
        ),
    ]
}

// --- Frames.

/// A frame with VLAN tags (outermost first) inserted after the MAC addresses.
pub(crate) fn tagged(frame: &[u8], tpids: &[u16]) -> Vec<u8> {
    let mut out = frame[..12].to_vec();
    for (i, tpid) in tpids.iter().enumerate() {
        out.extend_from_slice(&tpid.to_be_bytes());
        out.extend_from_slice(&(100 + i as u16).to_be_bytes());
    }
    out.extend_from_slice(&frame[12..]);
    out
}

/// Queries built for the cases that matter: names in and out of the rules, across label
/// boundaries, in other cases, tagged, cut short, with compression pointers, responses.
pub(crate) fn built_frames() -> Vec<(String, Vec<u8>)> {
    let long_label = "a".repeat(63);
    let long_name =
        ["abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz1"; 4].join(".");
    let names: Vec<String> = [
        "www.example.net",
        "WWW.example.net",
        "WwW.ExAmPlE.NeT",
        "xwww.example.net",
        "wwwx.example.net",
        "a.www.example.net",
        "ab.www.example.net",
        "abc.www.example.net",
        "abcd.www.example.net",
        "abcdefgh.www.example.net",
        "ABCDEFGHIJK.www.example.net",
        "abcdefghijklmnop.www.example.net",
        "abcdefghijklmnopq.www.example.net",
        "a.b.www.example.net",
        "ok.www.example.net",
        "OK.WWW.EXAMPLE.NET",
        "ok.example.net",
        "okay.example.net",
        "abcde.example.net",
        "abcdef.example.net",
        "a.example.net",
        "A.Example.NET",
        "example.net",
        "example.net.evil",
        "example",
        "Example",
        "www.example.com",
        "com",
        "com.example",
        "net",
        "x",
        "xample.net",
        "www.example.net.example.net",
        "example.netx",
        "%00.www.example.net",
        "a-b_c.www.example.net",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("{long_label}.www.example.net"), long_name])
    .collect();
    let mut out = Vec::new();
    for (index, name) in names.iter().enumerate() {
        let query = dns_query(&labels(name), index as u16);
        for (shape, shape_name) in [
            (Shape::V4, "v4"),
            (Shape::V6, "v6"),
            (
                Shape {
                    ip_options: true,
                    ..Shape::V4
                },
                "v4 options",
            ),
        ] {
            let frame = ethernet(&udp_packet(&query, shape));
            for (tpids, tag_name) in [
                (&[][..], ""),
                (&[0x8100][..], " vlan"),
                (&[0x88a8, 0x8100][..], " qinq"),
                (&[0x9100, 0x8100, 0x8100][..], " three tags"),
            ] {
                out.push((
                    format!("{name} {shape_name}{tag_name}"),
                    tagged(&frame, tpids),
                ));
            }
        }
    }
    // The root name, cut short everywhere in the name, pointers, responses, no question.
    let root = dns_query(&[], 7);
    out.push(("root".into(), ethernet(&udp_packet(&root, Shape::V4))));
    for name in [
        "abcdefghij.www.example.net",
        "www.example.net",
        "com.example",
    ] {
        let query = dns_query(&labels(name), 9);
        let frame = ethernet(&udp_packet(&query, Shape::V4));
        let name_at = frame.len() - query.len() + field::QUESTIONS;
        for cut in name_at..frame.len() {
            out.push((format!("{name} cut at {cut}"), frame[..cut].to_vec()));
        }
        let mut response = query.clone();
        response[field::FLAGS] |= 0x80;
        out.push((
            format!("{name} response"),
            ethernet(&udp_packet(&response, Shape::V4)),
        ));
        let mut empty = query.clone();
        empty[field::QDCOUNT..field::QDCOUNT + 2].copy_from_slice(&[0, 0]);
        out.push((
            format!("{name} no question"),
            ethernet(&udp_packet(&empty, Shape::V6)),
        ));
    }
    out
}

/// An IPv6 extension header to build.
#[derive(Debug, Clone, Copy)]
enum Ext {
    /// Hop-by-hop (0), routing (43) or destination options (60), of (`units` + 1) * 8 bytes.
    Options(u8, u8),
    /// A fragment header: offset in 8-byte units, more fragments.
    Fragment(u16, bool),
    /// Authentication, of (`units` + 2) * 4 bytes.
    Auth(u8),
}

const HOP: Ext = Ext::Options(0, 0);
const ROUTING: Ext = Ext::Options(43, 0);
const DEST: Ext = Ext::Options(60, 0);
const FIRST_FRAGMENT: Ext = Ext::Fragment(0, true);
const LATER_FRAGMENT: Ext = Ext::Fragment(185, true);
const AUTH: Ext = Ext::Auth(4);

impl Ext {
    fn kind(self) -> u8 {
        match self {
            Ext::Options(kind, _) => kind,
            Ext::Fragment(..) => 44,
            Ext::Auth(_) => 51,
        }
    }

    fn bytes(self, next: u8) -> Vec<u8> {
        match self {
            Ext::Options(_, units) => {
                let mut out = vec![0u8; (usize::from(units) + 1) * 8];
                out[0] = next;
                out[1] = units;
                // A PadN option over the rest.
                out[2] = 1;
                out[3] = out.len() as u8 - 4;
                out
            }
            Ext::Fragment(offset, more) => {
                let word = offset << 3 | u16::from(more);
                let [hi, lo] = word.to_be_bytes();
                vec![next, 0, hi, lo, 0, 0, 0, 7]
            }
            Ext::Auth(units) => {
                let mut out = vec![0u8; (usize::from(units) + 2) * 4];
                out[0] = next;
                out[1] = units;
                out
            }
        }
    }
}

/// Where a built frame goes.
#[derive(Debug, Clone, Copy)]
struct To {
    v4: [u8; 4],
    v6: [u8; 16],
    port: u16,
}

const TO: To = To {
    v4: [10, 53, 0, 2],
    v6: [0xfd, 0x53, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
    port: 53,
};

fn udp_header(payload: &[u8], port: u16) -> Vec<u8> {
    let mut out = 40000u16.to_be_bytes().to_vec();
    out.extend_from_slice(&port.to_be_bytes());
    out.extend_from_slice(&((payload.len() + 8) as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(payload);
    out
}

/// An IPv6 frame: extension headers, then `last` (17 = UDP to `to.port` carrying `payload`;
/// another protocol carries the same bytes).
fn v6_frame(exts: &[Ext], last: u8, payload: &[u8], to: To) -> Vec<u8> {
    let mut body = udp_header(payload, to.port);
    for (index, ext) in exts.iter().enumerate().rev() {
        let next = exts.get(index + 1).map_or(last, |e| e.kind());
        let mut header = ext.bytes(next);
        header.extend_from_slice(&body);
        body = header;
    }
    let mut ip = vec![0x60, 0, 0, 0];
    ip.extend_from_slice(&(body.len() as u16).to_be_bytes());
    ip.push(exts.first().map_or(last, |e| e.kind()));
    ip.push(64);
    ip.extend_from_slice(&[0xfd, 0x53, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    ip.extend_from_slice(&to.v6);
    ip.extend_from_slice(&body);
    ethernet(&ip)
}

/// An IPv4 frame with `options_words` words of options (NOPs, then an end), the fragment
/// word `fragment` (flags and offset), `protocol`.
fn v4_frame(options_words: u8, fragment: u16, protocol: u8, payload: &[u8], to: To) -> Vec<u8> {
    let body = udp_header(payload, to.port);
    let header_len = 20 + 4 * usize::from(options_words);
    let mut ip = vec![0x40 | (5 + options_words), 0];
    ip.extend_from_slice(&((header_len + body.len()) as u16).to_be_bytes());
    ip.extend_from_slice(&[0x12, 0x34]);
    ip.extend_from_slice(&fragment.to_be_bytes());
    ip.extend_from_slice(&[64, protocol, 0, 0, 10, 53, 0, 1]);
    ip.extend_from_slice(&to.v4);
    let options = usize::from(options_words) * 4;
    ip.extend((0..options).map(|i| if i + 1 == options { 0 } else { 1 }));
    ip.extend_from_slice(&body);
    ethernet(&ip)
}

/// The DNS message of a query for `name` (dotted, `%XX` escapes).
pub(crate) fn query(name: &str) -> Vec<u8> {
    dns_query(&labels(name), 0x5353)
}

/// Names that the rule sets decide in different ways.
const NAMES: [&str; 6] = [
    "www.example.net",
    "abcdefghij.www.example.net",
    "Ok.Example.Net",
    "com.example",
    "abcde.example.net",
    "nothing.here",
];

/// Frames built byte by byte for the gate's and the parser's corners.
pub(crate) fn adversarial_frames() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    // Extension headers: 1 to 3 of each kind, of two sizes; mixed chains up to and past the
    // matcher's walk; fragments at each position; authentication at each position; another
    // protocol or another port behind them.
    let mut chains: Vec<(String, Vec<Ext>)> = Vec::new();
    for (kind, kind_name) in [(0, "hop-by-hop"), (43, "routing"), (60, "destination")] {
        for units in [0, 2] {
            for count in 1..=3 {
                chains.push((
                    format!("{count} x {kind_name}/{units}"),
                    vec![Ext::Options(kind, units); count],
                ));
            }
        }
    }
    let mixed: [(&str, Vec<Ext>); 22] = [
        ("hop dest", vec![HOP, DEST]),
        ("hop routing dest", vec![HOP, ROUTING, DEST]),
        ("first fragment", vec![FIRST_FRAGMENT]),
        ("first fragment, last", vec![Ext::Fragment(0, false)]),
        ("hop, first fragment", vec![HOP, FIRST_FRAGMENT]),
        ("hop dest, first fragment", vec![HOP, DEST, FIRST_FRAGMENT]),
        ("later fragment", vec![LATER_FRAGMENT]),
        ("fragment offset 1", vec![Ext::Fragment(1, false)]),
        ("hop, later fragment", vec![HOP, LATER_FRAGMENT]),
        ("hop dest, later fragment", vec![HOP, DEST, LATER_FRAGMENT]),
        (
            "3 then later fragment",
            vec![HOP, DEST, ROUTING, LATER_FRAGMENT],
        ),
        ("auth", vec![AUTH]),
        ("hop, auth", vec![HOP, AUTH]),
        ("hop dest, auth", vec![HOP, DEST, AUTH]),
        ("3 then auth", vec![HOP, DEST, ROUTING, AUTH]),
        ("auth then 3", vec![AUTH, HOP, DEST, ROUTING]),
        ("4 then auth", vec![HOP, DEST, ROUTING, DEST, AUTH]),
        ("5", vec![HOP, ROUTING, DEST, FIRST_FRAGMENT, DEST]),
        ("walk - 1", vec![DEST; GATE_EXT_HEADERS - 1]),
        ("walk", vec![DEST; GATE_EXT_HEADERS]),
        ("walk + 1", vec![DEST; GATE_EXT_HEADERS + 1]),
        ("walk + 3", vec![ROUTING; GATE_EXT_HEADERS + 3]),
    ];
    chains.extend(mixed.into_iter().map(|(n, c)| (n.to_string(), c)));
    chains.push(("auth x walk".into(), vec![AUTH; GATE_EXT_HEADERS]));
    chains.push(("walk then later fragment".into(), {
        let mut c = vec![HOP; GATE_EXT_HEADERS - 1];
        c.push(LATER_FRAGMENT);
        c
    }));
    for (chain_name, chain) in &chains {
        for name in NAMES {
            out.push((
                format!("v6 {chain_name}: {name}"),
                v6_frame(chain, 17, &query(name), TO),
            ));
        }
        let payload = query("abcdefghij.www.example.net");
        for port in [52, 54, 5353, 0x3500] {
            let to = To { port, ..TO };
            out.push((
                format!("v6 {chain_name}: port {port}"),
                v6_frame(chain, 17, &payload, to),
            ));
        }
        for (last, last_name) in [(6, "TCP"), (59, "no next header"), (50, "ESP")] {
            out.push((
                format!("v6 {chain_name}: {last_name}"),
                v6_frame(chain, last, &payload, TO),
            ));
        }
        let mut response = payload.clone();
        response[field::FLAGS] |= 0x80;
        out.push((
            format!("v6 {chain_name}: response"),
            v6_frame(chain, 17, &response, TO),
        ));
        for (tpids, tag_name) in [(&[0x8100][..], "vlan"), (&[0x88a8, 0x8100][..], "qinq")] {
            out.push((
                format!("v6 {chain_name}: {tag_name}"),
                tagged(&v6_frame(chain, 17, &payload, TO), tpids),
            ));
        }
    }
    // IPv4: options (IHL 6 to 15), fragments, other protocols and ports.
    for name in NAMES {
        let payload = query(name);
        for words in [1, 5, 10] {
            out.push((
                format!("v4 ihl {}: {name}", 5 + words),
                v4_frame(words, 0, 17, &payload, TO),
            ));
        }
        for (fragment, what) in [
            (0x2000, "first fragment"),
            (0x4000, "don't fragment"),
            (0x0001, "offset 1"),
            (0x20b9, "later fragment"),
            (0x1fff, "last offset"),
            (0x8000, "reserved flag"),
        ] {
            out.push((
                format!("v4 {what}: {name}"),
                v4_frame(0, fragment, 17, &payload, TO),
            ));
            out.push((
                format!("v4 ihl 15 {what}: {name}"),
                v4_frame(10, fragment, 17, &payload, TO),
            ));
        }
        out.push((format!("v4 tcp: {name}"), v4_frame(0, 0, 6, &payload, TO)));
        for port in [52, 5353, 0x3500] {
            let to = To { port, ..TO };
            out.push((
                format!("v4 port {port}: {name}"),
                v4_frame(0, 0, 17, &payload, to),
            ));
        }
        // Case variations.
        for variant in [
            name.to_uppercase(),
            name.to_lowercase(),
            alternate_case(name),
        ] {
            out.push((
                format!("v4 case {variant}"),
                v4_frame(0, 0, 17, &query(&variant), TO),
            ));
            out.push((
                format!("v6 hop dest, case {variant}"),
                v6_frame(&[HOP, DEST], 17, &query(&variant), TO),
            ));
        }
    }
    let mut bad_ihl = v4_frame(0, 0, 17, &query("www.example.net"), TO);
    bad_ihl[14] = 0x44;
    out.push(("v4 ihl 4".into(), bad_ihl));
    // Names crossing label boundaries, labels of every length byte, pointers at each position.
    for name in [
        "wwwexample.net",
        "www.examplenet",
        "w.ww.example.net",
        "www.exa.mple.net",
        "abcdefghij.wwwexample.net",
        "abcdefghijwww.example.net",
        "abcdefghij.www.example.net.",
        "ok.example.netok",
        "okexample.net",
        "com.example.com",
    ] {
        out.push((
            format!("v4 boundary {name}"),
            v4_frame(0, 0, 17, &query(name), TO),
        ));
        out.push((
            format!("v6 3 headers, boundary {name}"),
            v6_frame(&[HOP, DEST, ROUTING], 17, &query(name), TO),
        ));
    }
    for name in [
        "abcdefghij.www.example.net",
        "ok.example.net",
        "com.example",
    ] {
        let message = query(name);
        let wire = &message[field::QUESTIONS..message.len() - 4];
        let mut boundaries = vec![0];
        while wire[*boundaries.last().unwrap()] != 0 {
            let at = *boundaries.last().unwrap();
            boundaries.push(at + 1 + usize::from(wire[at]));
        }
        for &at in &boundaries {
            for (pointer, what) in [
                (&[0xc0, 0x0c][..], "pointer to the name"),
                (&[0xc0, 0x00][..], "pointer to the header"),
                (&[0xff, 0xff][..], "pointer past the end"),
                (&[0x40, 0x03][..], "extended label type"),
                (&[0x80, 0x03][..], "reserved label type"),
                (&[0x3f][..], "label of 63 cut short"),
            ] {
                let mut payload = message[..field::QUESTIONS].to_vec();
                payload.extend_from_slice(&wire[..at]);
                payload.extend_from_slice(pointer);
                payload.extend_from_slice(&[0, 1, 0, 1]);
                out.push((
                    format!("{name}: {what} at {at}"),
                    v4_frame(0, 0, 17, &payload, TO),
                ));
                out.push((
                    format!("{name}: v6 hop, {what} at {at}"),
                    v6_frame(&[HOP], 17, &payload, TO),
                ));
            }
        }
    }
    // Headers: QDCOUNT 0 and 2, responses, other opcodes, a DNS header cut short.
    for name in ["abcdefghij.www.example.net", "www.example.net"] {
        let message = query(name);
        for (edit, what) in [
            ((field::QDCOUNT, [0, 0]), "no question"),
            ((field::QDCOUNT, [0, 2]), "two questions"),
            ((field::QDCOUNT, [0xff, 0xff]), "65535 questions"),
            ((field::FLAGS, [0x80, 0]), "response"),
            ((field::FLAGS, [0x84, 0x03]), "response NXDOMAIN"),
            ((field::FLAGS, [0x28, 0]), "update opcode"),
            ((field::FLAGS, [0x7f, 0xff]), "every flag but QR"),
        ] {
            let mut edited = message.clone();
            edited[edit.0..edit.0 + 2].copy_from_slice(&edit.1);
            out.push((format!("{name}: {what}"), v4_frame(0, 0, 17, &edited, TO)));
            out.push((
                format!("{name}: v6 3 headers, {what}"),
                v6_frame(&[HOP, DEST, ROUTING], 17, &edited, TO),
            ));
        }
    }
    // Cut at every byte: IPv4 with options, IPv6 behind three headers, tagged twice.
    let payload = query("abcdefghij.www.example.net");
    for (what, frame) in [
        ("v4 ihl 7", v4_frame(2, 0, 17, &payload, TO)),
        (
            "v6 3 headers",
            v6_frame(&[HOP, ROUTING, FIRST_FRAGMENT], 17, &payload, TO),
        ),
        (
            "v6 hop qinq",
            tagged(&v6_frame(&[HOP], 17, &payload, TO), &[0x88a8, 0x8100]),
        ),
        (
            "v6 walk + 1",
            v6_frame(&[HOP; GATE_EXT_HEADERS + 1], 17, &payload, TO),
        ),
    ] {
        for cut in 14..frame.len() {
            out.push((format!("{what} cut at {cut}"), frame[..cut].to_vec()));
        }
    }
    out
}

fn alternate_case(name: &str) -> String {
    name.chars()
        .enumerate()
        .map(|(i, c)| {
            if i % 2 == 0 {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

/// Every frame the comparisons run on: the captures', the built and the adversarial ones.
pub(crate) fn all_frames() -> Vec<(String, Vec<u8>)> {
    frames()
        .into_iter()
        .map(|frame| (frame.origin, frame.bytes))
        .chain(built_frames())
        .chain(adversarial_frames())
        .collect()
}

// --- Loading through `bpftools::ebpf::sys`.

fn create_map(role: MapRole, capacity: u32) -> Map {
    let spec = role.spec(capacity);
    let kind = match spec.map_type {
        matcher::BPF_MAP_TYPE_HASH => MapKind::Hash,
        matcher::BPF_MAP_TYPE_ARRAY => MapKind::Array,
        matcher::BPF_MAP_TYPE_PROG_ARRAY => MapKind::ProgArray,
        matcher::BPF_MAP_TYPE_PERCPU_ARRAY => MapKind::PerCpuArray,
        matcher::BPF_MAP_TYPE_LPM_TRIE => MapKind::LpmTrie,
        other => MapKind::Other(other),
    };
    Map::create(&MapSpec {
        name: role.name().to_string(),
        kind,
        key_size: spec.key_size,
        value_size: spec.value_size,
        max_entries: spec.max_entries,
        flags: spec.flags,
    })
    .unwrap_or_else(|e| panic!("{role:?}: {e}"))
}

/// The matcher loaded with its maps filled for one rule list.
pub(crate) struct Loaded {
    pub(crate) program: Program,
    pub(crate) maps: BTreeMap<MapRole, Map>,
}

impl Loaded {
    /// The XDP program.
    fn new(contents: &MapContents, options: MatcherOptions, protected: &Protected) -> Loaded {
        Loaded::variant(Variant::Xdp, contents, options, protected)
    }

    /// The program of `variant`, with the maps it names.
    pub(crate) fn variant(
        variant: Variant,
        contents: &MapContents,
        options: MatcherOptions,
        protected: &Protected,
    ) -> Loaded {
        Loaded::with_skips(variant, contents, &contents.skips(), options, protected)
    }

    /// The program of `variant`, with the maps it names and `skips` as the lengths value.
    fn with_skips(
        variant: Variant,
        contents: &MapContents,
        skips: &Skips,
        options: MatcherOptions,
        protected: &Protected,
    ) -> Loaded {
        let counters = contents
            .names
            .values()
            .chain(contents.suffixes.values().flatten())
            .filter(|&&rank| rank != 0)
            .map(|&rank| matcher::counter_index(rank) + 1)
            .max()
            .unwrap_or(1);
        let maps: BTreeMap<MapRole, Map> = variant
            .roles()
            .iter()
            .map(|&role| {
                let capacity = match role {
                    MapRole::Counters => counters,
                    MapRole::Scratch => 1,
                    _ => 1024,
                };
                (role, create_map(role, capacity))
            })
            .collect();
        for (key, rank) in &contents.names {
            maps[&MapRole::Names]
                .update(&key.0, &rank.to_ne_bytes(), Update::Any)
                .expect("names");
        }
        for (key, ranks) in &contents.suffixes {
            maps[&MapRole::Suffixes]
                .update(&key.0, &matcher::suffix_value_bytes(ranks), Update::Any)
                .expect("suffixes");
        }
        maps[&MapRole::Lengths]
            .update(&0u32.to_ne_bytes(), &skips.0, Update::Any)
            .expect("lengths");
        for (len, prefix) in &protected.v4 {
            maps[&MapRole::Addr4]
                .update(&lpm_key(*len, prefix), &[1], Update::Any)
                .expect("addr4");
        }
        for (len, prefix) in &protected.v6 {
            maps[&MapRole::Addr6]
                .update(&lpm_key(*len, prefix), &[1], Update::Any)
                .expect("addr6");
        }
        let insns = variant
            .program(options)
            .with_map_fds(|role| fd(&maps[&role]));
        let kind = match variant {
            Variant::Xdp => ProgramKind::Xdp,
            Variant::SocketFilter => ProgramKind::SocketFilter,
        };
        let program = Program::load(kind, "dns_matcher", &insns)
            .unwrap_or_else(|e| panic!("{e}\neBPF:\n{}", bpftools::ebpf::disassemble(&insns)));
        Loaded { program, maps }
    }

    pub(crate) fn run(&self, frame: &[u8]) -> bpftools::ebpf::sys::TestRun {
        self.program.test_run(frame, 1).expect("test run")
    }

    /// Packets and bytes of the counter at `index`, summed over the CPUs.
    pub(crate) fn counter(&self, index: u32) -> (u64, u64) {
        let value = self.maps[&MapRole::Counters]
            .lookup(&index.to_ne_bytes())
            .expect("counter")
            .expect("present");
        value
            .chunks(matcher::COUNTER_SIZE as usize)
            .fold((0, 0), |(packets, bytes), cpu| {
                let word = |at: usize| u64::from_ne_bytes(cpu[at..at + 8].try_into().unwrap());
                (packets + word(0), bytes + word(8))
            })
    }
}

pub(crate) fn fd(object: &impl std::os::fd::AsFd) -> i32 {
    use std::os::fd::AsRawFd;
    object.as_fd().as_raw_fd()
}

// --- Tests.

#[test]
fn map_contents_key_names_by_form_and_rank_rules_by_order() {
    let options = MatcherOptions { ignore_case: true };
    let contents = MapContents::new(
        &[
            (Action::Accept, "Ok.Example.net"),
            (Action::Drop, "*{3-5}.example.net"),
            (Action::Drop, "*.example.net"),
            (Action::Drop, "example.**"),
            (Action::Accept, "ok.example.net"),
        ],
        options,
    )
    .unwrap();
    let exact = Key::new(KeyKind::Exact, b"\x02ok\x07example\x03net").unwrap();
    let rank0 = matcher::rank(0, Action::Accept).unwrap();
    // The same name twice: the first rule's rank stays.
    assert_eq!(contents.names.get(&exact), Some(&rank0));
    assert_eq!(exact.kind(), KeyKind::Exact as u8);
    assert_eq!(exact.0[1], 15);
    assert!(exact.0[17..].iter().all(|&b| b == 0));
    let prefix = Key::new(KeyKind::Prefix, b"\x07example").unwrap();
    assert_eq!(
        contents.names.get(&prefix),
        matcher::rank(3, Action::Drop).as_ref()
    );
    // The exact name, the prefix and the first rule's key.
    assert_eq!(contents.names.len(), 3);
    assert_eq!(contents.first_rank(), rank0);
    assert_eq!(
        contents.names.get(&Key::new(KeyKind::First, b"").unwrap()),
        Some(&rank0)
    );
    let suffix = Key::new(KeyKind::Suffix, b"\x07example\x03net").unwrap();
    let ranks = contents.suffixes.get(&suffix).expect("suffix key");
    let (r1, r2) = (
        matcher::rank(1, Action::Drop).unwrap(),
        matcher::rank(2, Action::Drop).unwrap(),
    );
    assert_eq!(ranks[0], 0);
    assert_eq!(&ranks[1..3], &[r2, r2]);
    assert_eq!(&ranks[3..6], &[r1, r1, r1]);
    assert!(ranks[6..].iter().all(|&r| r == r2));
    assert!(r1 > r2 && rank0 > r1);
    assert_eq!(action_of(r1), Some(Action::Drop));
    assert_eq!(action_of(rank0), Some(Action::Accept));
    assert_eq!(action_of(0), None);
    // Counters are indexed by order.
    assert_eq!(matcher::counter_index(r2), 2);
    assert_eq!(matcher::counter_index(rank0), 0);
    // Decisions: the earliest matching rule over the lookups.
    let name = |s: &str| {
        let mut wire: Vec<u8> = labels(s)
            .into_iter()
            .flat_map(|l| std::iter::once(l.len() as u8).chain(l))
            .collect();
        wire.push(0);
        wire
    };
    let decide = |s: &str| action_of(contents.decide(&name(s)));
    assert_eq!(decide("ok.example.net"), Some(Action::Accept));
    assert_eq!(decide("abc.example.net"), Some(Action::Drop));
    assert_eq!(decide("example.org"), Some(Action::Drop));
    assert_eq!(decide("www.example.org"), None);
    assert_eq!(decide("a.b.example.net"), None);
    assert_eq!(decide("xexample.net"), None);
    // Case-sensitive: keys keep the case given.
    let sensitive = MapContents::new(
        &[(Action::Drop, "WWW.example.net")],
        MatcherOptions::default(),
    )
    .unwrap();
    assert!(sensitive
        .names
        .contains_key(&Key::new(KeyKind::Exact, b"\x03WWW\x07example\x03net").unwrap()));
    assert_eq!(MapContents::default().first_rank(), 0);
}

#[test]
fn explicit_orders_give_ranks_that_adding_or_removing_a_rule_leaves_alone() {
    let options = MatcherOptions { ignore_case: true };
    let rules = [
        (30, Action::Drop, "*.example.net"),
        (10, Action::Accept, "ok.example.net"),
        (20, Action::Drop, "www.example.**"),
    ];
    let contents = MapContents::with_orders(&rules, options).unwrap();
    let suffix = Key::new(KeyKind::Suffix, b"\x07example\x03net").unwrap();
    assert_eq!(
        contents.suffixes[&suffix][5],
        matcher::rank(30, Action::Drop).unwrap()
    );
    assert_eq!(
        contents.first_rank(),
        matcher::rank(10, Action::Accept).unwrap()
    );
    assert_eq!(matcher::counter_index(contents.first_rank()), 10);
    // The same rules in another list order: the same maps.
    let mut reversed = rules;
    reversed.reverse();
    assert_eq!(
        MapContents::with_orders(&reversed, options).unwrap(),
        contents
    );
    // One rule added (between two) and one removed: every other key keeps its value.
    let mut changed: Vec<(u32, Action, &str)> = rules.to_vec();
    changed.remove(2);
    changed.push((15, Action::Drop, "abc.example.net"));
    let after = MapContents::with_orders(&changed, options).unwrap();
    let removed = Key::new(KeyKind::Prefix, b"\x03www\x07example").unwrap();
    let added = Key::new(KeyKind::Exact, b"\x03abc\x07example\x03net").unwrap();
    let first = Key::new(KeyKind::First, b"").unwrap();
    for (key, rank) in &contents.names {
        if *key != removed {
            assert_eq!(after.names.get(key), Some(rank), "{key:?}");
        }
    }
    assert!(!after.names.contains_key(&removed));
    assert_eq!(
        after.names.get(&added),
        matcher::rank(15, Action::Drop).as_ref()
    );
    assert_eq!(after.names.len(), contents.names.len());
    assert_eq!(after.suffixes, contents.suffixes);
    // A new first rule moves only the first rule's key.
    changed.push((1, Action::Drop, "zzz.example.org"));
    let moved = MapContents::with_orders(&changed, options).unwrap();
    assert_eq!(moved.names[&first], matcher::rank(1, Action::Drop).unwrap());
    // Orders: each once, below MAX_RULES.
    assert_eq!(
        MapContents::with_orders(
            &[(4, Action::Drop, "a.net"), (4, Action::Drop, "b.net")],
            options
        ),
        Err(RuleError::DuplicateOrder { order: 4 })
    );
    let too_far = matcher::MAX_RULES;
    let err = MapContents::with_orders(&[(too_far, Action::Drop, "a.net")], options).unwrap_err();
    assert_eq!(err, RuleError::OrderTooLarge { order: too_far });
    assert!(err.to_string().contains("orders go from 0 to"), "{err}");
}

#[test]
fn a_mixed_list_splits_between_the_maps_and_classic_rules_by_order() {
    let options = MatcherOptions::default();
    let rules = [
        (7, Action::Drop, "ex?mple.net"),
        (0, Action::Accept, "www.example.net"),
        (3, Action::Drop, "www.*.example.net"),
        (5, Action::Drop, "*.example.net"),
    ];
    let split = MapContents::split(&rules, options).unwrap();
    let native = MapContents::with_orders(
        &[
            (0, Action::Accept, "www.example.net"),
            (5, Action::Drop, "*.example.net"),
        ],
        options,
    )
    .unwrap();
    assert_eq!(split.contents, native);
    let classic: Vec<(u32, u32, &str, Unsupported)> = split
        .classic
        .iter()
        .map(|r| (r.order, r.rank, r.pattern.as_str(), r.why))
        .collect();
    assert_eq!(
        classic,
        [
            (
                3,
                matcher::rank(3, Action::Drop).unwrap(),
                "www.*.example.net",
                Unsupported::WildcardNotFirst
            ),
            (
                7,
                matcher::rank(7, Action::Drop).unwrap(),
                "ex?mple.net",
                Unsupported::AnyCharacter
            ),
        ]
    );
    assert_eq!(split.classic[1].action, Action::Drop);
    // Invalid patterns stay errors; so do more classic rules than tail calls.
    let err = MapContents::split(&[(0, Action::Drop, "a..b")], options).unwrap_err();
    assert!(matches!(err, RuleError::Pattern(_)), "{err:?}");
    let many: Vec<(u32, Action, String)> = (0..=matcher::MAX_CLASSIC_RULES)
        .map(|i| (i, Action::Drop, format!("a?{i}.net")))
        .collect();
    assert_eq!(
        MapContents::split(&many, options).unwrap_err(),
        RuleError::TooManyClassicRules {
            count: matcher::MAX_CLASSIC_RULES as usize + 1
        }
    );
    assert!(MapContents::split(&many[1..], options).is_ok());
}

#[test]
fn patterns_the_maps_cannot_express_are_refused_naming_them() {
    let options = MatcherOptions::default();
    for (pattern, what) in [
        ("ex?mple.net", Unsupported::AnyCharacter),
        ("ex%2Eample.net", Unsupported::Escape),
        ("www.*.example.net", Unsupported::WildcardNotFirst),
        ("*.*.example.net", Unsupported::WildcardNotFirst),
        ("*.example.**", Unsupported::WildcardAndAnySuffix),
    ] {
        let rules = [(Action::Accept, "www.example.net"), (Action::Drop, pattern)];
        let err = MapContents::new(&rules, options).unwrap_err();
        assert_eq!(
            err,
            RuleError::Unsupported {
                pattern: pattern.to_string(),
                what
            },
            "{pattern}"
        );
        let message = err.to_string();
        assert!(
            message.starts_with(&format!("pattern '{pattern}': ")),
            "{message}"
        );
    }
    // Not a pattern at all: the pattern language's own error.
    let err = MapContents::new(&[(Action::Drop, "a..b")], options).unwrap_err();
    assert!(matches!(err, RuleError::Pattern(_)), "{err:?}");
    // Literal `*` inside a label and bounds above 63 are fine.
    assert!(MapContents::new(&[(Action::Drop, "*{4-255}.foo*.net")], options).is_ok());
}

/// The adversarial frames, with how many of them each verdict of the reference has: the
/// cases must reach every branch the gate has.
fn adversarial_with_census() -> Vec<(String, Vec<u8>)> {
    let frames = adversarial_frames();
    let set = &rule_sets()[0];
    let mut census: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, frame) in &frames {
        let what = match seen(frame, &Protected::all()) {
            Seen::Not => "not seen",
            Seen::Blind => "past the walk",
            Seen::Rule { dns, .. } if !is_query(frame, dns) => "no whole DNS header",
            Seen::Rule { .. } => match (
                seen_by_programs(frame),
                set.expected(frame, &Protected::all()).rule,
            ) {
                (Walk::First, _) => "behind 3+ headers",
                (Walk::Refused, _) => "refused by the programs",
                (Walk::Name, Some(_)) => "matched by name",
                (Walk::Name, None) => "no rule matches",
            },
        };
        *census.entry(what).or_default() += 1;
    }
    eprintln!("adversarial frames: {} ({census:?})", frames.len());
    assert!(
        frames.len() > 1000,
        "only {} adversarial frames",
        frames.len()
    );
    for what in [
        "not seen",
        "past the walk",
        "no whole DNS header",
        "behind 3+ headers",
        "refused by the programs",
        "matched by name",
        "no rule matches",
    ] {
        assert!(
            census.get(what).copied().unwrap_or(0) >= 10,
            "{what}: {census:?}"
        );
    }
    frames
}

#[test]
fn the_map_model_decides_as_the_dns_generators_chain_on_every_frame() {
    let adversarial = adversarial_with_census().len();
    let frames = all_frames();
    for set in rule_sets() {
        let contents = set.contents();
        let (mut dropped, mut compared, mut disagreements) = (0, 0, Vec::new());
        for (origin, frame) in &frames {
            let expected = set.verdict(set.expected(frame, &Protected::all()));
            dropped += usize::from(expected == XDP_DROP);
            let got = set.modelled(&contents, frame);
            compared += 1;
            if got != expected && disagreements.len() < 5 {
                disagreements.push(format!("{origin}: model {got}, chain {expected}"));
            }
        }
        eprintln!(
            "{}: {compared} frames ({adversarial} adversarial), {dropped} dropped by the chain",
            set.name,
        );
        assert!(
            disagreements.is_empty(),
            "{}:\n{}",
            set.name,
            disagreements.join("\n")
        );
        assert_eq!(compared, frames.len());
        assert!(dropped > 0, "{}: nothing dropped", set.name);
    }
}

#[test]
#[ignore = "needs root (bpf(2), BPF_PROG_TEST_RUN)"]
fn the_matcher_gives_the_dns_generators_chain_verdicts_on_every_frame() {
    require_root("bpf(2), BPF_PROG_TEST_RUN");
    raise_memlock().expect("memlock");
    let adversarial = adversarial_with_census().len();
    let frames = all_frames();
    assert!(frames.len() > 10_000, "only {} frames", frames.len());
    let insns = matcher::program(MatcherOptions { ignore_case: true })
        .insns
        .len();
    let (mut runs, mut sets, mut gated, mut dropped) = (0, 0, 0, 0);
    for set in rule_sets() {
        let loaded = Loaded::new(&set.contents(), set.options, &Protected::all());
        sets += 1;
        let mut disagreements = Vec::new();
        for (origin, frame) in &frames {
            let expected = set.expected(frame, &Protected::all());
            let want = set.verdict(expected);
            let got = loaded.run(frame).retval;
            runs += 1;
            gated += usize::from(expected.gated);
            dropped += usize::from(want == XDP_DROP);
            if got != want && disagreements.len() < 5 {
                disagreements.push(format!("{origin}: kernel {got}, chain {want}"));
            }
        }
        assert!(
            disagreements.is_empty(),
            "{}:\n{}",
            set.name,
            disagreements.join("\n")
        );
    }
    eprintln!(
        "matcher ({insns} instructions): {sets} rule sets x {} frames ({adversarial} \
         adversarial) = {runs} runs ({gated} through the gate, {dropped} dropped), \
         0 disagreements",
        frames.len()
    );
    assert_eq!(runs, sets * frames.len());
    assert!(dropped > 1000, "too few drops ({dropped}) to say anything");
}

/// A frame of [`address_cases`]: what it is, its bytes, whether its destination is protected.
pub(crate) type AddressFrame = (String, Vec<u8>, bool);

/// The address gate's cases: protected prefixes, a rule list dropping every query under
/// www.example.net, and frames of such a query to addresses in and out of the prefixes
/// (with whether they are in).
pub(crate) fn address_cases() -> (Protected, RuleSet, Vec<AddressFrame>) {
    let v6 = |words: [u16; 8]| {
        let mut out = [0u8; 16];
        for (i, w) in words.iter().enumerate() {
            out[2 * i..2 * i + 2].copy_from_slice(&w.to_be_bytes());
        }
        out
    };
    let protected = Protected {
        v4: vec![(32, [192, 0, 2, 53]), (24, [198, 51, 100, 0])],
        v6: vec![
            (128, v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x53])),
            (64, v6([0x2001, 0xdb8, 1, 2, 0, 0, 0, 0])),
        ],
    };
    let v4_addresses = [
        ([192, 0, 2, 53], true),
        ([192, 0, 2, 52], false),
        ([192, 0, 2, 54], false),
        ([198, 51, 100, 0], true),
        ([198, 51, 100, 7], true),
        ([198, 51, 100, 255], true),
        ([198, 51, 101, 7], false),
        ([198, 51, 99, 255], false),
        ([10, 53, 0, 2], false),
    ];
    let v6_addresses = [
        (v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x53]), true),
        (v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x52]), false),
        (v6([0x2001, 0xdb8, 0, 0, 0, 0, 1, 0x53]), false),
        (v6([0x2001, 0xdb8, 1, 2, 0, 0, 0, 1]), true),
        (
            v6([0x2001, 0xdb8, 1, 2, 0xffff, 0xffff, 0xffff, 0xffff]),
            true,
        ),
        (v6([0x2001, 0xdb8, 1, 3, 0, 0, 0, 0]), false),
        (
            v6([0x2001, 0xdb8, 1, 1, 0xffff, 0xffff, 0xffff, 0xffff]),
            false,
        ),
        (v6([0xfd53, 0, 0, 0, 0, 0, 0, 2]), false),
    ];
    let set = RuleSet::new(
        "drop under www.example.net",
        true,
        vec![(Action::Drop, "*.www.example.net")],
    );
    let payload = query("abcdefghij.www.example.net");
    let mut frames: Vec<AddressFrame> = Vec::new();
    for (address, inside) in v4_addresses {
        let to = To { v4: address, ..TO };
        for words in [0, 3] {
            let frame = v4_frame(words, 0, 17, &payload, to);
            frames.push((
                format!("{address:?} ihl {}", 5 + words),
                frame.clone(),
                inside,
            ));
            frames.push((
                format!("{address:?} vlan"),
                tagged(&frame, &[0x8100]),
                inside,
            ));
        }
    }
    for (address, inside) in v6_addresses {
        let to = To { v6: address, ..TO };
        for chain in [
            vec![],
            vec![HOP, DEST],
            vec![HOP, DEST, ROUTING],
            vec![DEST; GATE_EXT_HEADERS + 1],
        ] {
            let frame = v6_frame(&chain, 17, &payload, to);
            let what = format!("{address:02x?} behind {}", chain.len());
            frames.push((what.clone(), frame.clone(), inside));
            frames.push((
                format!("{what} qinq"),
                tagged(&frame, &[0x88a8, 0x8100]),
                inside,
            ));
        }
    }
    (protected, set, frames)
}

#[test]
#[ignore = "needs root (bpf(2), LPM tries, BPF_PROG_TEST_RUN)"]
fn only_frames_to_a_protected_address_are_matched() {
    require_root("bpf(2), LPM tries, BPF_PROG_TEST_RUN");
    raise_memlock().expect("memlock");
    let (protected, set, frames) = address_cases();
    let loaded = Loaded::new(&set.contents(), set.options, &protected);
    let (mut inside, mut outside) = (0, 0);
    for (what, frame, protected_address) in &frames {
        let expected = set.expected(frame, &protected);
        assert_eq!(expected.gated, *protected_address, "{what}: the reference");
        let got = loaded.run(frame).retval;
        let want = if *protected_address {
            XDP_DROP
        } else {
            XDP_PASS
        };
        assert_eq!(got, want, "{what}");
        assert_eq!(got, set.verdict(expected), "{what}");
        if *protected_address {
            inside += 1;
        } else {
            outside += 1;
        }
    }
    eprintln!(
        "address gate: {inside} frames to protected addresses dropped, {outside} others passed"
    );
    assert!(
        inside >= 20 && outside >= 20,
        "{inside} inside, {outside} outside"
    );
}

#[test]
#[ignore = "needs root (bpf(2), per-CPU arrays, BPF_PROG_TEST_RUN)"]
fn each_rule_counts_the_packets_and_bytes_it_decided() {
    require_root("bpf(2), per-CPU arrays, BPF_PROG_TEST_RUN");
    raise_memlock().expect("memlock");
    let cpus = possible_cpus().expect("possible CPUs");
    let frames: Vec<(String, Vec<u8>)> = built_frames()
        .into_iter()
        .chain(adversarial_frames())
        .collect();
    let (mut checked, mut counted) = (0, 0u64);
    for set in rule_sets() {
        let loaded = Loaded::new(&set.contents(), set.options, &Protected::all());
        let mut want: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
        for (_, frame) in &frames {
            let expected = set.expected(frame, &Protected::all());
            loaded.run(frame);
            if let Some(rule) = expected.rule {
                let slot = want.entry(set.rules[rule].0).or_default();
                slot.0 += 1;
                slot.1 += frame.len() as u64;
            }
        }
        let capacity = loaded.maps[&MapRole::Counters].info().max_entries;
        assert_eq!(
            loaded.maps[&MapRole::Counters].value_len(),
            cpus * matcher::COUNTER_SIZE as usize
        );
        for index in 0..capacity {
            let got = loaded.counter(index);
            let expected = want.get(&index).copied().unwrap_or_default();
            assert_eq!(got, expected, "{}: counter {index}", set.name);
            checked += 1;
            counted += got.0;
        }
        assert!(want.len() >= 2, "{}: {want:?}", set.name);
    }
    eprintln!(
        "counters: {checked} counters over {} frames and {} rule sets, {counted} packets counted",
        frames.len(),
        rule_sets().len()
    );
    assert!(counted > 1000, "only {counted} packets counted");
}

/// An XDP program for a [`MapRole::Programs`] slot: writes the scratch's best rank over the
/// frame's first 4 bytes and `marker` into the fifth, returns `XDP_TX`; `XDP_ABORTED` when it
/// cannot.
fn hook_probe(scratch: &Map, marker: u8) -> Vec<Insn> {
    use bpftools::ebpf::insn::Insn as I;
    let mut code = vec![
        I::mov64_reg(Reg::R6, Reg::R1),
        I::store_imm(Size::W, Reg::FP, -4, 0),
    ];
    code.extend(I::ld_map_fd(Reg::R1, fd(scratch)));
    code.extend([
        I::mov64_reg(Reg::R2, Reg::FP),
        I::alu64(AluOp::Add, Reg::R2, Operand::Imm(-4)),
        I::call(1),
        I::jmp(JmpOp::Jeq, Reg::R0, Operand::Imm(0), 10),
        I::load(Size::W, Reg::R7, Reg::R0, SCRATCH_BEST),
        I::load(Size::W, Reg::R2, Reg::R6, 0),
        I::load(Size::W, Reg::R3, Reg::R6, 4),
        I::mov64_reg(Reg::R4, Reg::R2),
        I::alu64(AluOp::Add, Reg::R4, Operand::Imm(5)),
        I::jmp(JmpOp::Jgt, Reg::R4, Operand::Reg(Reg::R3), 4),
        I::store(Size::W, Reg::R2, 0, Reg::R7),
        I::store_imm(Size::B, Reg::R2, 4, i32::from(marker)),
        I::mov32_imm(Reg::R0, XDP_TX),
        I::exit(),
        I::mov32_imm(Reg::R0, XDP_ABORTED),
        I::exit(),
    ]);
    code
}

#[test]
#[ignore = "needs root (bpf(2), tail calls, BPF_PROG_TEST_RUN)"]
fn the_hook_tail_calls_the_first_classic_slot_with_the_best_rank_for_gated_frames_only() {
    require_root("bpf(2), tail calls, BPF_PROG_TEST_RUN");
    raise_memlock().expect("memlock");
    let frames: Vec<(String, Vec<u8>)> = built_frames()
        .into_iter()
        .chain(adversarial_frames())
        .collect();
    let (mut called, mut passed, mut ranked) = (0, 0, 0);
    for set in rule_sets().iter().take(3) {
        let loaded = Loaded::new(&set.contents(), set.options, &Protected::all());
        let probes: Vec<Program> = (0..matcher::VLAN_DEPTHS)
            .map(|tags| {
                let code = hook_probe(&loaded.maps[&MapRole::Scratch], 0xa0 + tags as u8);
                let probe = Program::load(ProgramKind::Xdp, "hook_probe", &code)
                    .unwrap_or_else(|e| panic!("{e}"));
                loaded.maps[&MapRole::Programs]
                    .set_program(matcher::program_slot(tags, 0), &probe)
                    .expect("program slot");
                probe
            })
            .collect();
        for (origin, frame) in &frames {
            let expected = set.expected(frame, &Protected::all());
            let run = loaded.run(frame);
            if expected.gated {
                let rank = expected.rule.map_or(0, |rule| set.rank_of(rule));
                assert_eq!(run.retval, XDP_TX, "{origin}: not tail-called");
                let carried = u32::from_ne_bytes(run.data_out[..4].try_into().unwrap());
                assert_eq!(carried, rank, "{origin}: best rank");
                assert_eq!(
                    run.data_out[4],
                    0xa0 + expected.tags as u8,
                    "{origin}: slot"
                );
                assert_eq!(&run.data_out[5..], &frame[5..], "{origin}");
                called += 1;
                ranked += usize::from(rank != 0);
            } else {
                assert_eq!(run.retval, XDP_PASS, "{origin}: tail-called");
                assert_eq!(run.data_out, *frame, "{origin}");
                passed += 1;
            }
        }
        drop(probes);
    }
    eprintln!(
        "hook: {called} frames tail-called ({ranked} with a rank), {passed} passed before it"
    );
    assert!(
        called > 1000 && ranked > 500 && passed > 1000,
        "{called} {ranked} {passed}"
    );
}

/// Prefix rules of several lengths (no exact or suffix rule, no `**`): the skips leave the
/// prefix lookups of those lengths only, and skip the exact and suffix lookups.
fn prefix_lengths_set() -> RuleSet {
    use Action::{Accept, Drop};
    RuleSet::new(
        "prefixes of several lengths",
        true,
        vec![
            (Accept, "ok.www.example.**"),
            (Drop, "www.example.**"),
            (Drop, "a.**"),
            (Accept, "example.**"),
            (Drop, "x.y.z.**"),
            (Drop, "xn--bcher-kva.**"),
            (Drop, "com.**"),
        ],
    )
}

#[test]
fn the_skips_follow_the_keys_of_each_kind() {
    let set = prefix_lengths_set();
    let skips = set.contents().skips();
    let looked: Vec<u8> = (0..=255).filter(|&n| !skips.skips_prefix(n)).collect();
    // ok.www.example (3+4+8), www.example (4+8), a (2), example (8), x.y.z (6),
    // xn--bcher-kva (14), com (4).
    assert_eq!(looked, [2, 4, 6, 8, 12, 14, 15]);
    assert!(skips.skips_exact() && skips.skips_suffix());
    let mut compared = 0;
    for set in rule_sets() {
        let contents = set.contents();
        let skips = contents.skips();
        for n in 0..=255u8 {
            let present = contents
                .names
                .keys()
                .any(|k| k.kind() == KeyKind::Prefix as u8 && k.labels().len() == usize::from(n));
            assert_eq!(skips.skips_prefix(n), !present, "{}: length {n}", set.name);
            compared += 1;
        }
        let exact = contents
            .names
            .keys()
            .any(|k| k.kind() == KeyKind::Exact as u8);
        assert_eq!(skips.skips_exact(), !exact, "{}", set.name);
        assert_eq!(
            skips.skips_suffix(),
            contents.suffixes.is_empty(),
            "{}",
            set.name
        );
    }
    assert_eq!(compared, 256 * rule_sets().len());
    // Nothing known, nothing skipped: the value the kernel creates.
    assert_eq!(
        Skips::of(&[], &[]),
        Skips::new(|_| false, false, false),
        "no key: every lookup skipped"
    );
    assert!(!Skips([0; matcher::LENGTHS_SIZE as usize]).skips_exact());
}

#[test]
#[ignore = "needs root (bpf(2), BPF_PROG_TEST_RUN)"]
fn with_prefixes_of_several_lengths_the_skipping_matcher_gives_the_chain_verdicts() {
    require_root("bpf(2), BPF_PROG_TEST_RUN");
    raise_memlock().expect("memlock");
    let frames = all_frames();
    let set = prefix_lengths_set();
    let contents = set.contents();
    // The same rules with nothing skipped (the value the kernel creates), and with every
    // lookup skipped: the program must read the value (only the first rule's key is left).
    let zeros = Skips([0; matcher::LENGTHS_SIZE as usize]);
    let all = Skips([0xff; matcher::LENGTHS_SIZE as usize]);
    let first_only = MapContents {
        names: contents
            .names
            .iter()
            .filter(|(k, _)| k.kind() == KeyKind::First as u8)
            .map(|(k, r)| (k.clone(), *r))
            .collect(),
        ..MapContents::default()
    };
    let (mut runs, mut dropped, mut lost) = (0, 0, 0);
    for variant in [Variant::Xdp, Variant::SocketFilter] {
        let (pass, drop) = variant.verdicts();
        let as_variant = |v: u32| if v == XDP_DROP { drop } else { pass };
        let skipping = Loaded::variant(variant, &contents, set.options, &Protected::all());
        let plain = Loaded::with_skips(variant, &contents, &zeros, set.options, &Protected::all());
        let blind = Loaded::with_skips(variant, &contents, &all, set.options, &Protected::all());
        let reference =
            Loaded::with_skips(variant, &first_only, &zeros, set.options, &Protected::all());
        let mut disagreements = Vec::new();
        for (origin, frame) in &frames {
            // The socket filter's test run starts after the Ethernet header (tagged frames
            // and those whose skb the kernel refuses to build are left to ebpf_skb).
            let run = |loaded: &Loaded| loaded.program.test_run(frame, 1).ok().map(|r| r.retval);
            if variant == Variant::SocketFilter
                && link_layer(frame).is_none_or(|(_, tags, _)| tags > 0)
            {
                continue;
            }
            let (Some(got), Some(had), Some(none), Some(first)) =
                (run(&skipping), run(&plain), run(&blind), run(&reference))
            else {
                assert_eq!(variant, Variant::SocketFilter, "{origin}: test run refused");
                continue;
            };
            let want = as_variant(set.verdict(set.expected(frame, &Protected::all())));
            runs += 4;
            dropped += usize::from(want == drop);
            lost += usize::from(none != got);
            if variant == Variant::Xdp && got != want && disagreements.len() < 5 {
                disagreements.push(format!("{origin}: kernel {got}, chain {want}"));
            }
            if (got != had || none != first) && disagreements.len() < 5 {
                disagreements.push(format!(
                    "{variant:?} {origin}: skipping {got}, not skipping {had}, \
                     all skipped {none}, first rule only {first}"
                ));
            }
        }
        assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
    }
    eprintln!(
        "prefixes of several lengths: {runs} runs over {} frames, {dropped} dropped by the \
         chain, {lost} verdicts change when every lookup is skipped",
        frames.len()
    );
    assert!(dropped > 200, "too few drops ({dropped})");
    assert!(lost > 200, "the skips change too few verdicts ({lost})");
}
