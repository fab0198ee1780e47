//! The native DNS matcher (`bpftools::ebpf::matcher`) against the `dns` generator.
//!
//! The reference for a rule list is chain mode: one classic `dns` program per rule (made for
//! the network header, run by the VM at the frame's network header), in order, the first
//! match deciding; the matcher reads only UDP queries to port 53 (QR = 0, QDCOUNT >= 1, IPv4
//! not a later fragment, IPv6 with UDP right after the fixed header), the packets such a rule
//! is given (`-p udp --dport 53`), so anything else must pass.
//!
//! Without root: the map encoding (keys, ranks, refusals) and the Rust model of the
//! program's decision ([`MapContents::decide`]) against the VM. Root only: the program loaded
//! with its maps (`BPF_MAP_CREATE`, `BPF_MAP_UPDATE_ELEM`, `lddw` of map file descriptors,
//! `BPF_PROG_LOAD`) and run with `BPF_PROG_TEST_RUN` over every packet of
//! testdata/captures and over queries built with simple-dns and etherparse.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use bpftools::dns::wire::{field, flags};
use bpftools::ebpf::compile::{XDP_DROP, XDP_PASS};
use bpftools::ebpf::matcher::{
    self, action_of, Action, Key, KeyKind, MapContents, MapRole, MatcherOptions, RuleError,
    Unsupported,
};
use bpftools::gen::{build, DnsSpec, GenOptions, Generator, DEFAULT_EXT_HEADERS};
use bpftools::vm::{Context, Input, Profile, Program};
use etherparse::{
    Ethernet2HeaderSlice, IpNumber, Ipv4HeaderSlice, Ipv6HeaderSlice, SingleVlanHeaderSlice,
    UdpHeaderSlice,
};

use crate::common::require_root;
use crate::ebpf::{frames, load, raise_memlock, sys_bpf, test_run, BPF_PROG_TYPE_XDP};
use crate::packets::{dns_query, ethernet, labels, udp_packet, Shape};

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;

/// `union bpf_attr` for `BPF_MAP_CREATE`, up to `map_flags`.
#[repr(C)]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
}

/// `union bpf_attr` for `BPF_MAP_UPDATE_ELEM`.
#[repr(C)]
#[derive(Default)]
struct MapUpdateAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

fn map_create(role: MapRole, capacity: u32) -> OwnedFd {
    let spec = role.spec(capacity);
    let mut attr = MapCreateAttr {
        map_type: spec.map_type,
        key_size: spec.key_size,
        value_size: spec.value_size,
        max_entries: spec.max_entries,
        map_flags: 0,
    };
    let fd = sys_bpf(BPF_MAP_CREATE, &mut attr);
    assert!(
        fd >= 0,
        "BPF_MAP_CREATE {spec:?}: {}",
        io::Error::last_os_error()
    );
    // SAFETY: the kernel returned a new file descriptor that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

fn map_update(map: &OwnedFd, key: &[u8], value: &[u8]) {
    let mut attr = MapUpdateAttr {
        map_fd: map.as_raw_fd() as u32,
        key: key.as_ptr() as u64,
        value: value.as_ptr() as u64,
        ..MapUpdateAttr::default()
    };
    let rc = sys_bpf(BPF_MAP_UPDATE_ELEM, &mut attr);
    assert_eq!(rc, 0, "BPF_MAP_UPDATE_ELEM: {}", io::Error::last_os_error());
}

/// The matcher loaded with its maps filled for one rule list.
struct Loaded {
    prog: OwnedFd,
    _maps: Vec<OwnedFd>,
}

fn load_matcher(contents: &MapContents, options: MatcherOptions) -> Loaded {
    let names = map_create(MapRole::Names, 1024);
    let suffixes = map_create(MapRole::Suffixes, 1024);
    let scratch = map_create(MapRole::Scratch, 1);
    for (key, rank) in &contents.names {
        map_update(&names, &key.0, &rank.to_ne_bytes());
    }
    for (key, ranks) in &contents.suffixes {
        map_update(&suffixes, &key.0, &matcher::suffix_value_bytes(ranks));
    }
    let program = matcher::program(options);
    let insns = program.with_map_fds(|role| match role {
        MapRole::Names => names.as_raw_fd(),
        MapRole::Suffixes => suffixes.as_raw_fd(),
        MapRole::Scratch => scratch.as_raw_fd(),
        other => panic!("this version of the matcher has no {other:?} map"),
    });
    let prog = load(BPF_PROG_TYPE_XDP, &insns).unwrap_or_else(|refusal| {
        let log = &refusal.log;
        panic!(
            "verifier refused ({}):\n{}\neBPF:\n{}",
            refusal.error,
            &log[log.len().saturating_sub(6000)..],
            bpftools::ebpf::disassemble(&insns)
        )
    });
    Loaded {
        prog,
        _maps: vec![names, suffixes, scratch],
    }
}

/// Where a frame's query is, when it is one the matcher reads: (IPv6, network header offset,
/// name offset).
fn query_at(frame: &[u8]) -> Option<(bool, usize, usize)> {
    let eth = Ethernet2HeaderSlice::from_slice(frame).ok()?;
    let mut ether_type = eth.ether_type().0;
    let mut at = eth.slice().len();
    for _ in 0..2 {
        if matches!(ether_type, 0x8100 | 0x88a8 | 0x9100) {
            let tag = SingleVlanHeaderSlice::from_slice(&frame[at..]).ok()?;
            ether_type = tag.ether_type().0;
            at += tag.slice().len();
        }
    }
    let (v6, udp_at) = match ether_type {
        0x0800 => {
            let ip = Ipv4HeaderSlice::from_slice(&frame[at..]).ok()?;
            if ip.protocol() != IpNumber::UDP || ip.fragments_offset().value() != 0 {
                return None;
            }
            (false, at + ip.slice().len())
        }
        0x86dd => {
            let ip = Ipv6HeaderSlice::from_slice(&frame[at..]).ok()?;
            if ip.next_header() != IpNumber::UDP {
                return None;
            }
            (true, at + ip.slice().len())
        }
        _ => return None,
    };
    let udp = UdpHeaderSlice::from_slice(&frame[udp_at..]).ok()?;
    if udp.destination_port() != 53 {
        return None;
    }
    let dns_at = udp_at + udp.slice().len();
    let header = frame.get(dns_at..dns_at + field::HEADER_LEN)?;
    let word = |at: usize| u16::from_be_bytes([header[at], header[at + 1]]);
    if word(field::FLAGS) & flags::QR != 0 || word(field::QDCOUNT) == 0 {
        return None;
    }
    Some((v6, at, dns_at + field::QUESTIONS))
}

/// One rule list with its reference programs (IPv4, IPv6) per rule.
struct RuleSet {
    name: &'static str,
    options: MatcherOptions,
    rules: Vec<(Action, &'static str)>,
    programs: Vec<(Action, Program, Program)>,
}

impl RuleSet {
    fn new(name: &'static str, ignore_case: bool, rules: Vec<(Action, &'static str)>) -> RuleSet {
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
            Program::new(&generated.insns, Profile::Socket).expect("valid")
        };
        let programs = rules
            .iter()
            .map(|&(action, pattern)| (action, program(pattern, false), program(pattern, true)))
            .collect();
        RuleSet {
            name,
            options: MatcherOptions { ignore_case },
            rules,
            programs,
        }
    }

    fn contents(&self) -> MapContents {
        MapContents::new(&self.rules, self.options).expect("map contents")
    }

    /// The chain's verdict: the first rule whose classic program matches decides.
    fn expected(&self, frame: &[u8]) -> u32 {
        let Some((v6, net, _)) = query_at(frame) else {
            return XDP_PASS;
        };
        let input = Input {
            frame,
            start: net,
            net: Some(net),
            link: Some(0),
            wire_len: (frame.len() - net) as u32,
            ctx: Context::default(),
        };
        for (action, v4, v6_program) in &self.programs {
            let program = if v6 { v6_program } else { v4 };
            if program.run_with(&input) != 0 {
                return verdict(*action);
            }
        }
        XDP_PASS
    }

    /// The Rust model's verdict on the same frame.
    fn modelled(&self, contents: &MapContents, frame: &[u8]) -> u32 {
        let Some((_, _, name_at)) = query_at(frame) else {
            return XDP_PASS;
        };
        let end = frame.len().min(name_at + 255);
        let mut name = frame[name_at..end].to_vec();
        if self.options.ignore_case {
            name.make_ascii_lowercase();
        }
        match action_of(contents.decide(&name)) {
            Some(action) => verdict(action),
            None => XDP_PASS,
        }
    }
}

fn verdict(action: Action) -> u32 {
    match action {
        Action::Drop => XDP_DROP,
        Action::Accept => XDP_PASS,
    }
}

fn rule_sets() -> Vec<RuleSet> {
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
    ]
}

/// A frame with VLAN tags (outermost first) inserted after the MAC addresses.
fn tagged(frame: &[u8], tpids: &[u16]) -> Vec<u8> {
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
fn built_frames() -> Vec<(String, Vec<u8>)> {
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
        for kept in 0..3 {
            // The first `kept` labels, then a pointer to the header (a loop).
            let mut payload = query[..field::QUESTIONS].to_vec();
            let wire = &query[field::QUESTIONS..query.len() - 4];
            let mut at = 0;
            for _ in 0..kept {
                at += 1 + usize::from(wire[at]);
            }
            payload.extend_from_slice(&wire[..at]);
            payload.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]);
            let frame = ethernet(&udp_packet(&payload, Shape::V4));
            let what = format!("pointer after {kept} labels");
            out.push((format!("{name} {what}"), frame));
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

/// Every frame the comparisons run on: the captures' and the built ones.
fn all_frames() -> Vec<(String, Vec<u8>)> {
    frames()
        .into_iter()
        .map(|frame| (frame.origin, frame.bytes))
        .chain(built_frames())
        .collect()
}

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
    assert_eq!(contents.names.len(), 2);
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

#[test]
fn the_map_model_decides_as_the_dns_generators_chain_on_every_frame() {
    let frames = all_frames();
    for set in rule_sets() {
        let contents = set.contents();
        let (mut dropped, mut disagreements) = (0, Vec::new());
        for (origin, frame) in &frames {
            let expected = set.expected(frame);
            dropped += usize::from(expected == XDP_DROP);
            let got = set.modelled(&contents, frame);
            if got != expected && disagreements.len() < 5 {
                disagreements.push(format!("{origin}: model {got}, chain {expected}"));
            }
        }
        eprintln!(
            "{}: {} frames, {dropped} dropped by the chain",
            set.name,
            frames.len()
        );
        assert!(
            disagreements.is_empty(),
            "{}:\n{}",
            set.name,
            disagreements.join("\n")
        );
        assert!(dropped > 0, "{}: nothing dropped", set.name);
    }
}

#[test]
#[ignore = "needs root (bpf(2), BPF_PROG_TEST_RUN)"]
fn the_matcher_gives_the_dns_generators_chain_verdicts_on_every_frame() {
    require_root("bpf(2), BPF_PROG_TEST_RUN");
    raise_memlock();
    let frames = all_frames();
    assert!(frames.len() > 10_000, "only {} frames", frames.len());
    let (mut runs, mut queries, mut dropped) = (0, 0, 0);
    for set in rule_sets() {
        let loaded = load_matcher(&set.contents(), set.options);
        let mut disagreements = Vec::new();
        for (origin, frame) in &frames {
            let expected = set.expected(frame);
            let got = test_run(&loaded.prog, frame).expect("test run");
            runs += 1;
            queries += usize::from(query_at(frame).is_some());
            dropped += usize::from(expected == XDP_DROP);
            if got != expected && disagreements.len() < 5 {
                disagreements.push(format!("{origin}: kernel {got}, chain {expected}"));
            }
        }
        assert!(
            disagreements.is_empty(),
            "{}:\n{}",
            set.name,
            disagreements.join("\n")
        );
    }
    eprintln!("matcher: {runs} runs ({queries} queries read, {dropped} dropped), 0 disagreements");
    assert!(dropped > 1000, "too few drops ({dropped}) to say anything");
}
