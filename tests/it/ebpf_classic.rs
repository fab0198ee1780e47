//! Classic rules at XDP (`bpftools::ebpf::classic`): compiled classic programs chained by tail
//! calls after the native matcher, against the VM running the same rules in chain mode.
//!
//! The matcher's side of the contract (write its best native rank at `SCRATCH_BEST`, tail-call
//! `program_slot(vlan_tags, 0)`) is played here by a small entry program built in the test
//! ([`entry_program`]): it counts the frame's VLAN tags (0 to 2, TPIDs 0x8100, 0x88a8,
//! 0x9100, as the matcher reads them), writes the native rank it was given, tail-calls the
//! first rule and passes when that falls through. It has no gate: every frame goes down the
//! chain. The real matcher replaces it in a deployment (and gates: only UDP queries to port
//! 53 of protected addresses reach the classic rules).
//!
//! The reference is chain mode run by the VM (`bpftools::vm`): the rules in order, each
//! classic rule's program for the frame's family (by the ethertype after the tags) run on the
//! frame from its network header, the first match deciding (drop -> `XDP_DROP`, accept or no
//! match -> `XDP_PASS`); the native rank given to the entry program stands for a native rule
//! at that order that matches every frame. Classic rules sit at odd orders, so the native
//! rule is put above, between and below them without renumbering them.
//!
//! Without root: the refusals (typed, naming the rule) and the programs' shape. Root only:
//! everything loaded through `bpftools::ebpf::sys` and run with `BPF_PROG_TEST_RUN` on every
//! frame of testdata/captures and on built frames with 0 to 3 VLAN tags; the per-CPU counters
//! summed against the reference's decisions; a chain of `MAX_CLASSIC_RULES` rules, and the
//! kernel's tail-call limit reached when the entry is itself reached by tail calls.

use std::collections::BTreeMap;

use bpftools::asm::assemble;
use bpftools::ebpf::classic::{layout, rule_program, ClassicError, ClassicRule, RuleProgram};
use bpftools::ebpf::compile::{XDP_DROP, XDP_PASS, XDP_TX};
use bpftools::ebpf::insn::{AluOp, Insn, JmpOp, Operand, Reg, Size};
use bpftools::ebpf::matcher::{
    program_slot, rank, Action, MapRole, BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_LPM_TRIE,
    BPF_MAP_TYPE_PERCPU_ARRAY, BPF_MAP_TYPE_PROG_ARRAY, COUNTER_SIZE, MAX_CLASSIC_RULES,
    SCRATCH_BEST, VLAN_DEPTHS,
};
use bpftools::ebpf::sys::{self, Map, MapKind, Program, ProgramKind, Update};
use bpftools::ebpf::{compile, Target, Verdicts};
use bpftools::gen::{
    DnsSpec, DnsValidateSpec, Generator, P0fSpec, SuffixSpec, TcpdumpSpec, DEFAULT_EXT_HEADERS,
};
use bpftools::pcap::link::LINKTYPE_ETHERNET;
use bpftools::vm::{Context, Input, Profile};

use crate::common::{capture, require, require_root};
use crate::ebpf::frames;
use crate::packets::{dns_query, ethernet, labels, udp_packet, Shape};

const BPF_FUNC_MAP_LOOKUP_ELEM: i32 = 1;
const BPF_FUNC_TAIL_CALL: i32 = 12;
const TPIDS: [u16; 3] = [0x8100, 0x88a8, 0x9100];

// --- Rules and the reference.

fn dns(patterns: &[&str], ignore_case: bool) -> Generator {
    Generator::Dns(DnsSpec {
        patterns: patterns.iter().map(|p| p.to_string()).collect(),
        ignore_case,
        ext_headers: DEFAULT_EXT_HEADERS,
    })
}

fn dns_validate(strict: bool) -> Generator {
    Generator::DnsValidate(DnsValidateSpec {
        strict,
        ext_headers: DEFAULT_EXT_HEADERS,
    })
}

fn suffix(bytes: &[u8]) -> Generator {
    Generator::Suffix(SuffixSpec {
        bytes: bytes.to_vec(),
    })
}

fn tcpdump(expr: &str) -> Generator {
    Generator::Tcpdump(TcpdumpSpec {
        expr: expr.to_string(),
    })
}

fn p0f(signature: &str) -> Generator {
    Generator::P0f(signature.parse::<P0fSpec>().expect("p0f signature"))
}

/// A classic rule with its VM programs (the reference's).
struct Classic {
    action: Action,
    rule: ClassicRule,
    ipv4: Option<bpftools::vm::Program>,
    ipv6: Option<bpftools::vm::Program>,
}

impl Classic {
    fn new(action: Action, generator: &Generator) -> Classic {
        let rule = ClassicRule::from_generator(generator, false).expect("rule");
        let vm = |prog: &Option<Vec<bpftools::insn::RawInsn>>| {
            prog.as_ref()
                .map(|p| bpftools::vm::Program::new(p, Profile::Socket).expect("valid"))
        };
        Classic {
            action,
            ipv4: vm(&rule.ipv4),
            ipv6: vm(&rule.ipv6),
            rule,
        }
    }

    /// Whether the rule matches a frame whose network header is at `base` after `ethertype`.
    fn matches(&self, frame: &[u8], base: usize, ethertype: u16) -> bool {
        let program = match ethertype {
            0x0800 => &self.ipv4,
            0x86dd => &self.ipv6,
            _ => return false,
        };
        let Some(program) = program else {
            return false;
        };
        let input = Input {
            frame,
            start: base,
            net: Some(base),
            link: Some(0),
            wire_len: (frame.len() - base) as u32,
            ctx: Context::default(),
        };
        program.run_with(&input) != 0
    }
}

/// The order of classic rule `index`: odd, so a native rule fits at any even order.
fn classic_order(index: usize) -> usize {
    2 * index + 1
}

/// A native rule standing in for the matcher's lookups: at `order`, matching every frame.
#[derive(Debug, Clone, Copy)]
struct Native {
    order: usize,
    action: Action,
}

impl Native {
    fn rank(&self) -> u32 {
        rank(self.order, self.action).expect("rank")
    }
}

/// How the entry program sees a frame: its tag count, network header and ethertype; `None`
/// when a tag is cut short or the frame is shorter than an Ethernet header (it passes
/// without a tail call).
fn entry_view(frame: &[u8]) -> Option<(u32, usize, u16)> {
    let word = |at: usize| u16::from_be_bytes([frame[at], frame[at + 1]]);
    if frame.len() < 14 {
        return None;
    }
    let mut ethertype = word(12);
    let mut tags = 0;
    while tags < 2 && TPIDS.contains(&ethertype) {
        let end = 14 + 4 * (tags + 1);
        if frame.len() < end {
            return None;
        }
        ethertype = word(end - 2);
        tags += 1;
    }
    Some((tags as u32, 14 + 4 * tags, ethertype))
}

/// The chain's decision: the order and action of the first rule that matches.
fn decide(classics: &[Classic], native: Option<Native>, frame: &[u8]) -> Option<(usize, Action)> {
    let (_, base, ethertype) = entry_view(frame)?;
    let mut rules: Vec<(usize, Option<&Classic>, Action)> = classics
        .iter()
        .enumerate()
        .map(|(index, c)| (classic_order(index), Some(c), c.action))
        .collect();
    if let Some(native) = native {
        rules.push((native.order, None, native.action));
    }
    rules.sort_by_key(|rule| rule.0);
    rules.into_iter().find_map(|(order, classic, action)| {
        let matched = classic.is_none_or(|c| c.matches(frame, base, ethertype));
        matched.then_some((order, action))
    })
}

fn verdict(decision: Option<(usize, Action)>) -> u32 {
    match decision {
        Some((_, Action::Drop)) => XDP_DROP,
        _ => XDP_PASS,
    }
}

// --- Programs and maps through bpftools::ebpf::sys.

/// A map of the matcher's deployment, as its role describes it.
fn create_map(role: MapRole, capacity: u32) -> Map {
    let spec = role.spec(capacity);
    let kind = match spec.map_type {
        BPF_MAP_TYPE_HASH => MapKind::Hash,
        BPF_MAP_TYPE_PROG_ARRAY => MapKind::ProgArray,
        BPF_MAP_TYPE_PERCPU_ARRAY => MapKind::PerCpuArray,
        BPF_MAP_TYPE_LPM_TRIE => MapKind::LpmTrie,
        other => MapKind::Other(other),
    };
    Map::create(&sys::MapSpec {
        name: role.name().to_string(),
        kind,
        key_size: spec.key_size,
        value_size: spec.value_size,
        max_entries: spec.max_entries,
        flags: spec.flags,
    })
    .unwrap_or_else(|e| panic!("{}: {e}", role.name()))
}

fn load(name: &str, insns: &[Insn]) -> Program {
    Program::load(ProgramKind::Xdp, name, insns)
        .unwrap_or_else(|e| panic!("{name}: {e}\neBPF:\n{}", bpftools::ebpf::disassemble(insns)))
}

/// The maps the rule programs use.
struct Maps {
    scratch: Map,
    counters: Map,
    programs: Map,
}

impl Maps {
    fn new(counter_slots: u32) -> Maps {
        Maps {
            scratch: create_map(MapRole::Scratch, 1),
            counters: create_map(MapRole::Counters, counter_slots),
            programs: create_map(MapRole::Programs, 0),
        }
    }

    fn fd(&self, role: MapRole) -> i32 {
        use std::os::fd::{AsFd, AsRawFd};
        match role {
            MapRole::Scratch => self.scratch.as_fd().as_raw_fd(),
            MapRole::Counters => self.counters.as_fd().as_raw_fd(),
            MapRole::Programs => self.programs.as_fd().as_raw_fd(),
            other => panic!("the rule programs use no {other:?} map"),
        }
    }

    /// Every counter set to zero.
    fn reset_counters(&self) {
        let zeros = vec![0u8; self.counters.value_len()];
        for index in 0..self.counters.info().max_entries {
            self.counters
                .update(&index.to_ne_bytes(), &zeros, Update::Any)
                .expect("reset counter");
        }
    }

    /// (packets, bytes) of counter `index`, summed over the CPUs.
    fn counter(&self, index: u32) -> (u64, u64) {
        let value = self
            .counters
            .lookup(&index.to_ne_bytes())
            .expect("lookup")
            .expect("an array has every index");
        let slot = (COUNTER_SIZE as usize).next_multiple_of(8);
        value.chunks(slot).fold((0, 0), |(packets, bytes), cpu| {
            let word = |at: usize| u64::from_ne_bytes(cpu[at..at + 8].try_into().unwrap());
            (packets + word(0), bytes + word(8))
        })
    }
}

/// The entry program standing in for the matcher (see the module docs): tags counted, the
/// native rank written at `SCRATCH_BEST`, a tail call to `program_slot(tags, 0)`, a pass
/// when it falls through.
fn entry_program(native_rank: u32) -> RuleProgram {
    let mut insns = Vec::new();
    let mut map_slots = Vec::new();
    let mut pass_jumps = Vec::new();
    let mut load_map = |insns: &mut Vec<Insn>, dst: Reg, role: MapRole| {
        map_slots.push((insns.len(), role));
        insns.extend(Insn::ld_map_fd(dst, -1));
    };
    // r6 = ctx, r2 = data, r3 = data_end, w7 = tags, r4 = the ethertype.
    insns.push(Insn::mov64_reg(Reg::R6, Reg::R1));
    insns.push(Insn::load(Size::W, Reg::R2, Reg::R6, 0));
    insns.push(Insn::load(Size::W, Reg::R3, Reg::R6, 4));
    insns.push(Insn::mov32_imm(Reg::R7, 0));
    insns.push(Insn::mov64_reg(Reg::R4, Reg::R2));
    insns.push(Insn::alu64(AluOp::Add, Reg::R4, Operand::Imm(14)));
    pass_jumps.push(insns.len());
    insns.push(Insn::jmp(JmpOp::Jgt, Reg::R4, Operand::Reg(Reg::R3), 0));
    insns.push(Insn::load(Size::H, Reg::R4, Reg::R2, 12));
    insns.push(Insn::endian(true, Reg::R4, 16));
    let mut done_jumps = Vec::new();
    for tag in 0..2i16 {
        // Three tests: a TPID goes on to the tag (3 - i instructions on), else done.
        for (i, tpid) in TPIDS.iter().enumerate() {
            let last = i == TPIDS.len() - 1;
            if last {
                done_jumps.push(insns.len());
                insns.push(Insn::jmp(
                    JmpOp::Jne,
                    Reg::R4,
                    Operand::Imm(i32::from(*tpid)),
                    0,
                ));
            } else {
                let to_tag = (TPIDS.len() - 1 - i) as i16;
                insns.push(Insn::jmp(
                    JmpOp::Jeq,
                    Reg::R4,
                    Operand::Imm(i32::from(*tpid)),
                    to_tag,
                ));
            }
        }
        let end = 14 + 4 * (tag + 1);
        insns.push(Insn::mov64_reg(Reg::R5, Reg::R2));
        insns.push(Insn::alu64(
            AluOp::Add,
            Reg::R5,
            Operand::Imm(i32::from(end)),
        ));
        pass_jumps.push(insns.len());
        insns.push(Insn::jmp(JmpOp::Jgt, Reg::R5, Operand::Reg(Reg::R3), 0));
        insns.push(Insn::load(Size::H, Reg::R4, Reg::R5, -2));
        insns.push(Insn::endian(true, Reg::R4, 16));
        insns.push(Insn::mov32_imm(Reg::R7, (tag + 1) as u32));
    }
    let done = insns.len();
    insns.push(Insn::store_imm(Size::W, Reg::FP, -4, 0));
    load_map(&mut insns, Reg::R1, MapRole::Scratch);
    insns.push(Insn::mov64_reg(Reg::R2, Reg::FP));
    insns.push(Insn::alu64(AluOp::Add, Reg::R2, Operand::Imm(-4)));
    insns.push(Insn::call(BPF_FUNC_MAP_LOOKUP_ELEM));
    pass_jumps.push(insns.len());
    insns.push(Insn::jmp(JmpOp::Jeq, Reg::R0, Operand::Imm(0), 0));
    insns.push(Insn::store_imm(
        Size::W,
        Reg::R0,
        SCRATCH_BEST,
        native_rank as i32,
    ));
    insns.push(Insn::mov64_reg(Reg::R1, Reg::R6));
    load_map(&mut insns, Reg::R2, MapRole::Programs);
    // program_slot(tags, 0) = tags * MAX_CLASSIC_RULES.
    assert_eq!(program_slot(2, 0), 2 * MAX_CLASSIC_RULES);
    insns.push(Insn::alu32(AluOp::Mov, Reg::R3, Operand::Reg(Reg::R7)));
    insns.push(Insn::alu32(
        AluOp::Mul,
        Reg::R3,
        Operand::Imm(MAX_CLASSIC_RULES as i32),
    ));
    insns.push(Insn::call(BPF_FUNC_TAIL_CALL));
    let pass = insns.len();
    insns.push(Insn::mov32_imm(Reg::R0, XDP_PASS));
    insns.push(Insn::exit());
    for at in pass_jumps {
        insns[at].off = (pass - at - 1) as i16;
    }
    for at in done_jumps {
        insns[at].off = (done - at - 1) as i16;
    }
    RuleProgram { insns, map_slots }
}

/// A rule list loaded: every classic rule's program for each tag count in the program array.
struct Chain {
    maps: Maps,
    _rules: Vec<Program>,
}

impl Chain {
    fn load(classics: &[Classic], counter_slots: u32) -> Chain {
        let maps = Maps::new(counter_slots);
        let mut rules = Vec::new();
        for (index, classic) in classics.iter().enumerate() {
            let rank = rank(classic_order(index), classic.action).expect("rank");
            for tags in 0..VLAN_DEPTHS {
                let program = rule_program(&classic.rule, rank, tags, index as u32)
                    .unwrap_or_else(|e| panic!("{e}"));
                let insns = program.with_map_fds(|role| maps.fd(role));
                let loaded = load(&format!("classic_{index}_{tags}"), &insns);
                let slot = program_slot(tags, index as u32);
                maps.programs
                    .set_program(slot, &loaded)
                    .expect("program array");
                rules.push(loaded);
            }
        }
        Chain {
            maps,
            _rules: rules,
        }
    }

    fn entry(&self, native_rank: u32) -> Program {
        let insns = entry_program(native_rank).with_map_fds(|role| self.maps.fd(role));
        load("classic_entry", &insns)
    }
}

// --- Frames.

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

const TAGS: [&[u16]; 5] = [
    &[],
    &[0x8100],
    &[0x88a8, 0x8100],
    &[0x9100, 0x9100],
    &[0x8100, 0x8100, 0x8100],
];

/// Queries and other frames for the rules below, with 0 to 3 VLAN tags.
fn built_frames() -> Vec<(String, Vec<u8>)> {
    let names = [
        "abcdefgh.www.example.net",
        "ABCDEFGH.WWW.EXAMPLE.NET",
        "abcdefghi.www.example.net",
        "abcdefghijklmnop.www.example.net",
        "www.example.net",
        "wxw.example.net",
        "WAW.example.net",
        "waw.example.net",
        "ok1.example.net",
        "okk.example.net",
        "ok.example.net",
        "abcdefgh.www.exbmple.net",
        "example.net",
        "www.example.com",
        "%00.www.example.net",
    ];
    let mut l3 = Vec::new();
    for (id, name) in names.iter().enumerate() {
        let query = dns_query(&labels(name), id as u16);
        for (shape, family) in [(Shape::V4, "v4"), (Shape::V6, "v6")] {
            l3.push((format!("{name} {family}"), udp_packet(&query, shape)));
        }
        // Malformed for dns_validate: a response, no question, two questions, cut short.
        let mut response = query.clone();
        response[2] |= 0x80;
        l3.push((format!("{name} response"), udp_packet(&response, Shape::V4)));
        let mut empty = query.clone();
        empty[4..6].copy_from_slice(&[0, 0]);
        l3.push((format!("{name} no question"), udp_packet(&empty, Shape::V6)));
        let mut two = query.clone();
        two[4..6].copy_from_slice(&[0, 2]);
        l3.push((format!("{name} two questions"), udp_packet(&two, Shape::V4)));
        let cut = &query[..query.len() - 3];
        l3.push((format!("{name} cut"), udp_packet(cut, Shape::V6)));
    }
    let mut out = Vec::new();
    for (name, packet) in &l3 {
        let frame = ethernet(packet);
        for tpids in TAGS {
            out.push((format!("{name} tags {tpids:x?}"), tagged(&frame, tpids)));
        }
        // Cut inside the headers.
        out.push((format!("{name} first 30 bytes"), frame[..30].to_vec()));
    }
    // Not IP after the tags; a tag cut short.
    let mut arp = vec![0xff; 12];
    arp.extend_from_slice(&[0x08, 0x06]);
    arp.extend_from_slice(&[0u8; 28]);
    for tpids in TAGS {
        out.push((format!("arp tags {tpids:x?}"), tagged(&arp, tpids)));
    }
    out.push((
        "tag cut short".into(),
        tagged(&arp, &[0x8100])[..16].to_vec(),
    ));
    out.push((
        "second tag cut short".into(),
        tagged(&arp, &[0x8100, 0x8100])[..20].to_vec(),
    ));
    out
}

/// Real frames with their tags: eth-vlan.pcap as captured (one 802.1Q tag; the shared
/// reader of the captures normalizes it away), and eth-flood-v6.pcap's frames with two tags
/// (802.1ad then 802.1Q) put in.
fn tagged_capture_frames() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (name, tpids) in [
        ("eth-vlan.pcap", &[][..]),
        ("eth-flood-v6.pcap", &[0x88a8, 0x8100][..]),
    ] {
        let file = std::fs::File::open(capture(name)).expect("capture");
        let mut reader = bpftools::pcap::Reader::new(file).expect("reader");
        while let Some(packet) = reader.next_packet().expect("packet") {
            assert_eq!(packet.linktype, LINKTYPE_ETHERNET, "{name}");
            let data = &packet.data[..packet.data.len() - packet.fcs_len as usize];
            if data.len() >= 14 {
                let origin = format!("{name} #{} tags {tpids:x?}", packet.number);
                out.push((origin, tagged(data, tpids)));
            }
        }
    }
    out
}

/// The frames of testdata/captures (as the other eBPF tests read them), the same with their
/// tags ([`tagged_capture_frames`]) and the built ones.
fn all_frames() -> Vec<(String, Vec<u8>)> {
    frames()
        .into_iter()
        .map(|frame| (frame.origin, frame.bytes))
        .chain(tagged_capture_frames())
        .chain(built_frames())
        .collect()
}

/// The rule lists compared: accept and drop classic rules of every kind.
fn rule_lists() -> Vec<(&'static str, Vec<Classic>)> {
    use Action::{Accept, Drop};
    vec![
        (
            "wildcards and escapes",
            vec![
                Classic::new(Accept, &dns(&["????????.WWW.example.net"], true)),
                Classic::new(Drop, &dns(&["*.www.ex%61mple.net"], false)),
                Classic::new(Accept, &dns(&["w?w.example.net", "ok?.example.net"], true)),
                Classic::new(Drop, &dns_validate(false)),
                Classic::new(Drop, &suffix(&[0x00, 0x01, 0x00, 0x01])),
            ],
        ),
        (
            "validation first, tcpdump",
            vec![
                Classic::new(Drop, &dns_validate(true)),
                Classic::new(Accept, &tcpdump("udp and greater 100")),
                Classic::new(Drop, &dns(&["?????????.www.example.net"], false)),
                Classic::new(Accept, &suffix(b"\x03net\x00\x00\x01\x00\x01")),
                Classic::new(Drop, &dns(&["*.www.example.net"], true)),
            ],
        ),
        (
            "tcpdump, p0f, escapes",
            vec![
                Classic::new(Drop, &tcpdump("udp dst port 53 and less 80")),
                Classic::new(Accept, &dns(&["%00.www.example.net"], false)),
                Classic::new(Drop, &p0f("4:64:0:*:mss*20,7:mss,sok,ts,nop,ws:df,id+:0")),
                Classic::new(Drop, &dns(&["W?W.Example.NET", "ok?.**"], true)),
                Classic::new(Accept, &dns_validate(false)),
                Classic::new(Drop, &tcpdump("ip6 or udp src port 53")),
            ],
        ),
    ]
}

/// The native rules tried with each list: none, above every classic rule, between them,
/// below them all; drop and accept.
fn natives(classic_count: usize) -> Vec<Option<Native>> {
    let mut out = vec![None];
    for (order, action) in [
        (0, Action::Drop),
        (0, Action::Accept),
        (4, Action::Drop),
        (2, Action::Accept),
        (2 * classic_count, Action::Drop),
        (2 * classic_count, Action::Accept),
    ] {
        out.push(Some(Native { order, action }));
    }
    out
}

// --- Tests without root.

#[test]
fn refusals_are_typed_and_name_the_rule() {
    require("tcpdump", "tcpdump");
    let rule = ClassicRule::from_generator(&dns(&["ex?mple.net"], false), false).unwrap();
    assert_eq!(rule.name, "dns -- ex?mple.net");
    let r = rank(3, Action::Drop).unwrap();
    let err = rule_program(&rule, r, 0, MAX_CLASSIC_RULES).unwrap_err();
    assert!(
        matches!(err, ClassicError::TooManyRules { index, .. } if index == MAX_CLASSIC_RULES),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "rule 'dns -- ex?mple.net' is classic rule number 33 (counting from 1): at most 32 \
         classic rules fit the kernel's 33 tail calls per packet"
    );
    let err = rule_program(&rule, r, VLAN_DEPTHS, 0).unwrap_err();
    assert!(
        matches!(err, ClassicError::VlanTags { vlan_tags: 3, .. }),
        "{err:?}"
    );
    let err = rule_program(&rule, 0, 0, 0).unwrap_err();
    assert!(matches!(err, ClassicError::Rank { .. }), "{err:?}");
    assert!(err.to_string().starts_with("rule 'dns -- ex?mple.net': "));
    // A program the compiler refuses (an ancillary load), named with its family.
    let by_hand = ClassicRule {
        name: "by hand".into(),
        ipv4: None,
        ipv6: Some(assemble("ld #proto\nret a").unwrap()),
    };
    let err = rule_program(&by_hand, r, 0, 0).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("rule 'by hand' (IPv6 program): instruction 0 (`ld #proto`)"),
        "{err}"
    );
    let empty = ClassicRule {
        name: "nothing".into(),
        ipv4: None,
        ipv6: None,
    };
    assert!(matches!(
        rule_program(&empty, r, 0, 0),
        Err(ClassicError::NoProgram { .. })
    ));
    // The generator's own refusals, naming the rule.
    let err = ClassicRule::from_generator(&dns(&["a..b"], false), false).unwrap_err();
    assert!(matches!(err, ClassicError::Generate { .. }), "{err:?}");
    assert!(err.to_string().starts_with("rule 'dns -- a..b': "), "{err}");
    let err = ClassicRule::from_generator(&tcpdump("no such primitive"), false).unwrap_err();
    assert!(err
        .to_string()
        .starts_with("rule 'tcpdump -- no such primitive': "));
    // A p0f signature of one version has that family's program only.
    let v4 = ClassicRule::from_generator(&p0f("4:64:0:*:*,*::df:0"), false).unwrap();
    assert!(v4.ipv4.is_some() && v4.ipv6.is_none());
    let any = ClassicRule::from_generator(&p0f("*:64:0:*:*,*::df:0"), false).unwrap();
    assert!(any.ipv4.is_some() && any.ipv6.is_some());
}

/// Instruction counts of typical rule programs, and their shape: the bodies' exits all
/// became jumps (the program has its own two), the maps are marked, the last possible rule
/// makes no tail call.
#[test]
fn rule_programs_wrap_the_compiled_bodies_and_end_the_chain_at_the_limit() {
    require("tcpdump", "tcpdump");
    let generators = [
        dns(&["ex?mple.net"], false),
        dns(&["????????.www.example.net"], true),
        dns(&["*.www.ex%61mple.net"], false),
        dns_validate(false),
        dns_validate(true),
        suffix(&[0, 1, 0, 1]),
        tcpdump("udp dst port 53 and less 80"),
        p0f("*:64:0:*:mss*20,7:mss,sok,ts,nop,ws:df,id+:0"),
    ];
    let r = rank(1, Action::Drop).unwrap();
    let mut overheads = Vec::new();
    for generator in &generators {
        let rule = ClassicRule::from_generator(generator, false).unwrap();
        let mut line = format!("{:<45}", rule.name);
        for tags in 0..VLAN_DEPTHS {
            let program = rule_program(&rule, r, tags, 0).unwrap();
            let bodies: usize = [&rule.ipv4, &rule.ipv6]
                .into_iter()
                .flatten()
                .map(|prog| {
                    compile(prog, Target::Xdp(layout(tags)), Verdicts::Value)
                        .unwrap()
                        .insns
                        .len()
                })
                .sum();
            let exits = program
                .insns
                .iter()
                .filter(|insn| **insn == Insn::exit())
                .count();
            assert_eq!(exits, 2, "{}", rule.name);
            let roles: Vec<MapRole> = program.map_slots.iter().map(|s| s.1).collect();
            assert_eq!(
                roles,
                [MapRole::Scratch, MapRole::Programs, MapRole::Counters]
            );
            overheads.push(program.insns.len() - bodies);
            line.push_str(&format!(
                " {tags} tags: {} ({} compiled);",
                program.insns.len(),
                bodies
            ));
        }
        eprintln!("{line}");
    }
    // The wrapper costs the same whatever the rule (one or two bodies: one more entry
    // test and one more context reload for the second).
    overheads.sort_unstable();
    overheads.dedup();
    assert!(overheads.len() <= 2, "{overheads:?}");
    eprintln!("wrapper: {overheads:?} instructions");
    // The last possible rule decides without a call.
    let rule = ClassicRule::from_generator(&suffix(&[1]), false).unwrap();
    let last = rule_program(&rule, r, 2, MAX_CLASSIC_RULES - 1).unwrap();
    let roles: Vec<MapRole> = last.map_slots.iter().map(|s| s.1).collect();
    assert_eq!(roles, [MapRole::Scratch, MapRole::Counters]);
    let first = rule_program(&rule, r, 2, 0).unwrap();
    assert_eq!(first.insns.len(), last.insns.len() + 5);
    // The map file descriptors go where the lddw are.
    let insns = first.with_map_fds(|role| 100 + role as i32);
    for &(slot, role) in &first.map_slots {
        assert!(insns[slot].is_lddw());
        assert_eq!(insns[slot].imm, 100 + role as i32);
    }
}

// --- Tests with root.

#[test]
#[ignore = "needs root (bpf(2), BPF_PROG_TEST_RUN, tail calls)"]
fn classic_rules_chained_by_tail_calls_give_the_chains_verdicts_and_counts() {
    require_root("bpf(2), BPF_PROG_TEST_RUN, tail calls");
    require("tcpdump", "tcpdump");
    sys::raise_memlock().expect("memlock");
    let frames = all_frames();
    let built = built_frames().len();
    let captured = frames.len() - built;
    assert!(captured > 20_000, "only {captured} captured frames");
    let started = std::time::Instant::now();
    let (mut compared, mut configurations, mut counters_compared) = (0usize, 0usize, 0usize);
    let mut decided: BTreeMap<&str, usize> = BTreeMap::new();
    let mut tags_seen = [0usize; 3];
    for (_, frame) in &frames {
        if let Some((tags, _, _)) = entry_view(frame) {
            tags_seen[tags as usize] += 1;
        }
    }
    for (name, classics) in rule_lists() {
        let slots = (2 * classics.len() + 1) as u32;
        let chain = Chain::load(&classics, slots);
        for native in natives(classics.len()) {
            configurations += 1;
            let entry = chain.entry(native.map_or(0, |n| n.rank()));
            chain.maps.reset_counters();
            let mut expected_counts = vec![(0u64, 0u64); slots as usize];
            let mut disagreements = Vec::new();
            for (origin, frame) in &frames {
                let decision = decide(&classics, native, frame);
                let expected = verdict(decision);
                let got = entry.test_run(frame, 1).expect("test run").retval;
                compared += 1;
                if let Some((order, action)) = decision {
                    let count = &mut expected_counts[order];
                    count.0 += 1;
                    count.1 += frame.len() as u64;
                    let by = match (order % 2 == 1, action) {
                        (true, Action::Drop) => "classic drop",
                        (true, Action::Accept) => "classic accept",
                        (false, Action::Drop) => "native drop",
                        (false, Action::Accept) => "native accept",
                    };
                    *decided.entry(by).or_default() += 1;
                }
                if got != expected && disagreements.len() < 5 {
                    disagreements.push(format!(
                        "{origin}: kernel {got}, chain {expected} ({decision:?})"
                    ));
                }
            }
            assert!(
                disagreements.is_empty(),
                "{name}, native {native:?}:\n{}",
                disagreements.join("\n")
            );
            for (order, expected) in expected_counts.iter().enumerate() {
                let got = chain.maps.counter(order as u32);
                assert_eq!(
                    got, *expected,
                    "{name}, native {native:?}: counter of order {order} (packets, bytes)"
                );
                counters_compared += 1;
            }
        }
    }
    eprintln!(
        "classic chains: {configurations} configurations (rule lists x native ranks), \
         {} frames each ({built} built), {compared} verdicts compared, {counters_compared} \
         counters, decided {decided:?}, frames by tag count {tags_seen:?}, {:.1} s",
        frames.len(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(configurations, 3 * 7);
    assert_eq!(compared, configurations * frames.len());
    for by in [
        "classic drop",
        "classic accept",
        "native drop",
        "native accept",
    ] {
        assert!(
            decided.get(by).is_some_and(|&n| n > 10_000),
            "{by}: {decided:?}"
        );
    }
    assert!(
        tags_seen.iter().all(|&n| n > 1000),
        "frames by tag count {tags_seen:?}"
    );
}

/// A program that tail-calls slot `next` of `hops` (a stand-in for a dispatcher before the
/// matcher, spending tail calls), returning `XDP_TX` when the call falls through.
fn hop_program(next: u32) -> RuleProgram {
    let mut insns = vec![];
    let map_slots = vec![(0, MapRole::Programs)];
    insns.extend(Insn::ld_map_fd(Reg::R2, -1));
    insns.push(Insn::mov32_imm(Reg::R3, next));
    insns.push(Insn::call(BPF_FUNC_TAIL_CALL));
    insns.push(Insn::mov32_imm(Reg::R0, XDP_TX));
    insns.push(Insn::exit());
    RuleProgram { insns, map_slots }
}

/// `MAX_CLASSIC_RULES` classic rules: each decides the frames only it matches, at every tag
/// count; reached after `k` more tail calls, the chain stops where the kernel's 33 calls run
/// out, and the program whose call failed decides with the best rank so far.
#[test]
#[ignore = "needs root (bpf(2), BPF_PROG_TEST_RUN, tail calls)"]
fn a_chain_of_max_classic_rules_works_and_the_tail_call_limit_cuts_it_short() {
    require_root("bpf(2), BPF_PROG_TEST_RUN, tail calls");
    sys::raise_memlock().expect("memlock");
    let count = MAX_CLASSIC_RULES as usize;
    let classics: Vec<Classic> = (0..count)
        .map(|i| {
            Classic::new(
                Action::Drop,
                &dns(&[&format!("rule{i:02}?.example.net")], false),
            )
        })
        .collect();
    let slots = (2 * count + 1) as u32;
    let chain = Chain::load(&classics, slots);
    let frame_for = |i: usize, tpids: &[u16]| {
        let query = dns_query(&labels(&format!("rule{i:02}x.example.net")), i as u16);
        tagged(&ethernet(&udp_packet(&query, Shape::V4)), tpids)
    };
    let mut runs = 0;
    // Without a dispatcher: every rule decides its frames, at every tag count.
    let entry = chain.entry(0);
    chain.maps.reset_counters();
    let mut bytes = vec![0u64; count];
    for (i, bytes) in bytes.iter_mut().enumerate() {
        for tpids in &TAGS[..3] {
            let frame = frame_for(i, tpids);
            assert_eq!(
                decide(&classics, None, &frame),
                Some((classic_order(i), Action::Drop))
            );
            let got = entry.test_run(&frame, 1).expect("test run").retval;
            assert_eq!(got, XDP_DROP, "rule {i}, tags {tpids:x?}");
            *bytes += frame.len() as u64;
            runs += 1;
        }
    }
    for (i, bytes) in bytes.iter().enumerate() {
        assert_eq!(
            chain.maps.counter(classic_order(i) as u32),
            (3, *bytes),
            "rule {i}"
        );
    }
    // With `k` hops before the entry: 33 calls in all, k + 1 spent before rule 0 runs, so
    // rules 0 ..= 32 - k run.
    let hops_map = Map::create(&sys::MapSpec {
        name: "hops".into(),
        kind: MapKind::ProgArray,
        key_size: 4,
        value_size: 4,
        max_entries: 8,
        flags: 0,
    })
    .expect("hops map");
    use std::os::fd::{AsFd, AsRawFd};
    let hops_fd = hops_map.as_fd().as_raw_fd();
    let hops: Vec<Program> = (0..4)
        .map(|j| {
            load(
                &format!("hop_{j}"),
                &hop_program(j + 1).with_map_fds(|_| hops_fd),
            )
        })
        .collect();
    let mut cut = 0;
    for k in 1..=4usize {
        hops_map.set_program(k as u32, &entry).expect("hops");
        for (j, hop) in hops.iter().enumerate().take(k) {
            hops_map.set_program(j as u32, hop).expect("hops");
        }
        let first: &Program = &hops[0];
        let last_run = count.min(33 - k) - 1;
        for i in [0, count - 4, count - 3, count - 2, count - 1] {
            let frame = frame_for(i, &[]);
            let got = first.test_run(&frame, 1).expect("test run").retval;
            let expected = if i <= last_run { XDP_DROP } else { XDP_PASS };
            cut += usize::from(expected == XDP_PASS);
            assert_eq!(
                got, expected,
                "{k} hops, rule {i} (rules 0..={last_run} run)"
            );
            runs += 1;
        }
        let _ = hops_map.delete(&(k as u32).to_ne_bytes());
    }
    eprintln!("{count} classic rules: {runs} runs, {cut} frames past the tail-call limit");
    assert_eq!(cut, 1 + 2 + 3);
}
