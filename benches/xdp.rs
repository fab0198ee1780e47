//! The XDP mitigation's cost per packet against today's deployment, measured by the kernel
//! with `BPF_PROG_TEST_RUN` (the mean time of a run over `repeat` runs).
//!
//! - The native matcher (`ebpf::matcher`, ignoring case): the one XDP program, every map of
//!   `MapRole::ALL` created (the address tries hold `0.0.0.0/0` and `::/0`), with
//!   1, 200, 10,000 and 100,000 drop patterns (`*.hostN.example.org`, the flood's
//!   `*.www.example.net` last), and with a triage-style plan of 1, 200, 10,000 and
//!   100,000 accepted names (`userN.www.example.net`) before the drop rule
//!   `*.www.example.net`; the drop plans also with the matcher as a socket filter (what
//!   `iptables -m bpf --object-pinned` runs). Beside them, what one hash map lookup costs by
//!   key size (the matcher's keys are 256 bytes).
//! - Today's deployment: the programs of `iptables-bpf -i 10.53.1.2 dns -- -i P1 ... P200`
//!   (the 200 patterns of `scripts/e2e-scale.sh`), read from the script `gen::iptables`
//!   renders, each compiled for a socket filter (what xt_bpf runs: the packet from its network
//!   header) and run one after the other as iptables walks the rules: a packet's cost is the
//!   sum over the rules it reaches (a dropped packet stops at the rule that matches it, a
//!   legitimate one walks them all). The same programs compiled for XDP, run in sequence, are
//!   measured too (the 200 patterns as one classic program need 4,819 instructions, more than
//!   the 4,096 a classic program may have).
//!
//! Packets (Ethernet, IPv4, UDP to port 53 unless said): a flood query for a random name
//! under `www.example.net` (it matches the last pattern of the 200), floods matching the
//! first and the 100th pattern, a legitimate query (`www.example.net`, matched by no rule), an
//! accepted name, and a non-DNS packet (TCP to port 443).
//!
//! Every run's verdict is checked: the matcher's against its Rust model
//! (`MapContents::decide`) and the scenario (floods dropped, the rest passed), each
//! deployed program's against the classic VM (`bpftools::vm`) on the same packet; the
//! number of verdicts compared is printed, and a disagreement ends the run with exit 1.
//!
//! Run (root: `BPF_PROG_TEST_RUN` and map creation need CAP_BPF / CAP_SYS_ADMIN):
//! `cargo bench --bench xdp`. Environment: `XDP_BENCH_REPEAT` (runs per measurement,
//! 1,000,000), `XDP_BENCH_ROUNDS` (measurements per figure, the median kept: 3),
//! `XDP_BENCH_SIZES` (rule counts, `1,200,10000,100000`).
//!
//! Without root, `cargo bench --bench xdp` says it needs root and exits 2: a benchmark asked
//! for and not run is an error. `cargo test --all-targets` also runs this file once (without
//! `--bench`): then it checks the verdicts with small sizes and few repeats (rule counts 1 and
//! 200, 1,000 runs, 1 round); without root it prints the line `test benches/xdp.rs ...
//! ignored, needs root (...)` that `scripts/test-all.sh` lists under NOT RUN, and exits 0,
//! unless `CI=true`, where it fails like the root-only tests.

use std::error::Error;
use std::os::fd::{AsFd, AsRawFd};
use std::process::ExitCode;
use std::time::Instant;

use bpftools::asm::parse_bytecode;
use bpftools::ebpf::compile::{XDP_DROP, XDP_PASS};
use bpftools::ebpf::insn::{AluOp, Operand, Size};
use bpftools::ebpf::matcher::{
    action_of, suffix_value_bytes, Action, MapContents, MapRole, MatcherOptions, Variant,
    BPF_F_NO_PREALLOC, BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_LPM_TRIE,
    BPF_MAP_TYPE_PERCPU_ARRAY, BPF_MAP_TYPE_PROG_ARRAY, KEY_SIZE,
};
use bpftools::ebpf::sys::{
    lpm_key, raise_memlock, Map, MapKind, MapSpec, Program, ProgramKind, Update,
};
use bpftools::ebpf::{compile, Insn, Reg, Target, Verdicts, XdpLayout};
use bpftools::gen::iptables::{render, Spec};
use bpftools::gen::{DnsSpec, Generator, DEFAULT_EXT_HEADERS};
use bpftools::insn::RawInsn;
use bpftools::vm::{self, Input, Profile};
use etherparse::PacketBuilder;
use simple_dns::{Name, Packet, Question, CLASS, TYPE};

type Fallible<T> = Result<T, Box<dyn Error + Send + Sync>>;

/// The protected server (the address `scripts/e2e-netns.bash` gives it).
const SERVER: [u8; 4] = [10, 53, 1, 2];
const CLIENT: [u8; 4] = [10, 53, 1, 1];
/// The flood's parent; its drop pattern comes last in every drop plan.
const FLOOD_ZONE: &str = "www.example.net";

/// The deployment's patterns: those of `scripts/e2e-scale.sh` (199 others, the flood's last).
fn deployment_patterns() -> Vec<String> {
    drop_patterns(200)
}

/// `count` drop patterns: `*.hostN.example.org` for N = 2..=count, then `*.www.example.net`.
fn drop_patterns(count: usize) -> Vec<String> {
    let mut patterns: Vec<String> = (2..=count)
        .map(|n| format!("*.host{n}.example.org"))
        .collect();
    patterns.push(format!("*.{FLOOD_ZONE}"));
    patterns
}

/// The drop plan of `count` patterns ([`drop_patterns`]).
fn drop_rules(count: usize) -> Vec<(Action, String)> {
    drop_patterns(count)
        .into_iter()
        .map(|p| (Action::Drop, p))
        .collect()
}

/// A DNS query (RD set) for `name`, type A.
fn dns_query(name: &str, id: u16) -> Fallible<Vec<u8>> {
    let mut packet = Packet::new_query(id);
    packet.set_flags(simple_dns::PacketFlag::RECURSION_DESIRED);
    packet.questions.push(Question::new(
        Name::new(name)?,
        TYPE::A.into(),
        CLASS::IN.into(),
        false,
    ));
    Ok(packet.build_bytes_vec()?)
}

fn frame_of(
    builder: etherparse::PacketBuilderStep<etherparse::UdpHeader>,
    payload: &[u8],
) -> Fallible<Vec<u8>> {
    let mut out = Vec::with_capacity(builder.size(payload.len()));
    builder.write(&mut out, payload)?;
    Ok(out)
}

fn ethernet_ipv4() -> etherparse::PacketBuilderStep<etherparse::IpHeaders> {
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]).ipv4(CLIENT, SERVER, 64)
}

/// An Ethernet frame: IPv4, UDP from port 40000 to 53, a query for `name`.
fn query_frame(name: &str) -> Fallible<Vec<u8>> {
    frame_of(ethernet_ipv4().udp(40000, 53), &dns_query(name, 0x4242)?)
}

/// An Ethernet frame: IPv4, a TCP SYN to port 443.
fn tcp_frame() -> Fallible<Vec<u8>> {
    let builder = ethernet_ipv4().tcp(40000, 443, 1, 65535).syn();
    let mut out = Vec::with_capacity(builder.size(0));
    builder.write(&mut out, &[])?;
    Ok(out)
}

/// The name's wire form as the matcher keys it: labels folded to lower case, with the root.
fn wire_name(name: &str) -> Vec<u8> {
    let mut wire = Vec::new();
    for label in name.split('.').filter(|l| !l.is_empty()) {
        wire.push(label.len() as u8);
        wire.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
    }
    wire.push(0);
    wire
}

/// One packet of the benchmark.
struct Frame {
    what: &'static str,
    /// The queried name (`None`: not DNS).
    name: Option<String>,
    bytes: Vec<u8>,
}

impl Frame {
    fn query(what: &'static str, name: String) -> Fallible<Frame> {
        Ok(Frame {
            what,
            bytes: query_frame(&name)?,
            name: Some(name),
        })
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// What a run is measured with, and the verdicts compared so far.
struct Bench {
    repeat: u32,
    rounds: usize,
    compared: u64,
    runs: u64,
}

impl Bench {
    /// Runs `program` on `frame` `rounds` times `repeat` runs, every round's return value
    /// checked against `expected`; the median of the kernel's mean ns per run.
    fn measure(&mut self, program: &Program, frame: &[u8], expected: u32) -> Fallible<f64> {
        let mut kernel = Vec::with_capacity(self.rounds);
        for _ in 0..self.rounds {
            let run = program.test_run(frame, self.repeat)?;
            self.compared += 1;
            self.runs += u64::from(self.repeat);
            if run.retval != expected {
                return Err(format!(
                    "the program returned {} where {expected} was expected",
                    run.retval
                )
                .into());
            }
            kernel.push(f64::from(run.duration_ns));
        }
        Ok(median(&mut kernel))
    }
}

const OPTIONS: MatcherOptions = MatcherOptions { ignore_case: true };

/// A loaded matcher and its maps.
struct Loaded {
    variant: Variant,
    program: Program,
    contents: MapContents,
    _maps: Vec<(MapRole, Map)>,
}

/// The kernel's map type for a matcher map's `BPF_MAP_TYPE_*` number.
fn map_kind(map_type: u32) -> MapKind {
    match map_type {
        BPF_MAP_TYPE_HASH => MapKind::Hash,
        BPF_MAP_TYPE_ARRAY => MapKind::Array,
        BPF_MAP_TYPE_PROG_ARRAY => MapKind::ProgArray,
        BPF_MAP_TYPE_PERCPU_ARRAY => MapKind::PerCpuArray,
        BPF_MAP_TYPE_LPM_TRIE => MapKind::LpmTrie,
        other => MapKind::Other(other),
    }
}

/// Loads the matcher of `variant` for `rules` (in order, the first match decides) as a
/// deployment does: every map the variant uses (`Variant::roles`: for XDP, `MapRole::ALL`)
/// created with `MapRole::spec`, the lookup maps filled from `MapContents`, the address tries
/// holding `0.0.0.0/0` and `::/0` (every destination protected), the program given every
/// map's descriptor.
fn load_matcher(variant: Variant, rules: &[(Action, String)]) -> Fallible<Loaded> {
    let contents = MapContents::new(rules, OPTIONS)?;
    let capacity = u32::try_from(rules.len().max(16))?;
    let mut maps = Vec::new();
    for &role in variant.roles() {
        let spec = role.spec(capacity);
        let map = Map::create(&MapSpec {
            name: role.name().to_string(),
            kind: map_kind(spec.map_type),
            key_size: spec.key_size,
            value_size: spec.value_size,
            max_entries: spec.max_entries,
            flags: spec.flags,
        })
        .map_err(|e| format!("map {}: {e}", role.name()))?;
        maps.push((role, map));
    }
    let map = |role: MapRole| {
        &maps
            .iter()
            .find(|(r, _)| *r == role)
            .expect("every role has its map")
            .1
    };
    for (key, rank) in &contents.names {
        map(MapRole::Names).update(&key.0, &rank.to_ne_bytes(), Update::NoExist)?;
    }
    for (key, ranks) in &contents.suffixes {
        map(MapRole::Suffixes).update(&key.0, &suffix_value_bytes(ranks), Update::NoExist)?;
    }
    map(MapRole::Lengths).update(&0u32.to_ne_bytes(), &contents.skips().0, Update::Any)?;
    map(MapRole::Addr4).update(&lpm_key(0, &[0; 4]), &[1], Update::Any)?;
    map(MapRole::Addr6).update(&lpm_key(0, &[0; 16]), &[1], Update::Any)?;
    let insns = variant
        .program(OPTIONS)
        .with_map_fds(|role| map(role).as_fd().as_raw_fd());
    let kind = match variant {
        Variant::Xdp => ProgramKind::Xdp,
        Variant::SocketFilter => ProgramKind::SocketFilter,
    };
    let program = Program::load(kind, "bench_matcher", &insns)?;
    Ok(Loaded {
        variant,
        program,
        contents,
        _maps: maps,
    })
}

/// The verdict the matcher's model gives `frame`, as `loaded`'s variant returns it.
fn expected(loaded: &Loaded, frame: &Frame) -> u32 {
    let (pass, drop) = loaded.variant.verdicts();
    let Some(name) = &frame.name else {
        return pass;
    };
    match action_of(loaded.contents.decide(&wire_name(name))) {
        Some(Action::Drop) => drop,
        _ => pass,
    }
}

/// A random-looking label (a flood's), from a small generator seeded by `seed`.
fn random_label(seed: u64) -> String {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..12)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from(b'a' + (state % 26) as u8)
        })
        .collect()
}

/// The programs of today's deployment, in order: the rules' bytecode in the script
/// `iptables-bpf -i 10.53.1.2 dns -- [-i] PATTERNS` writes (`gen::iptables::render`).
fn deployed_programs(patterns: &[String], ignore_case: bool) -> Fallible<Vec<Vec<RawInsn>>> {
    let spec = Spec {
        generator: Some(Generator::Dns(DnsSpec {
            patterns: patterns.to_vec(),
            ignore_case,
            ext_headers: DEFAULT_EXT_HEADERS,
        })),
        addresses: vec!["10.53.1.2".into()],
        command: "iptables-bpf -i 10.53.1.2 dns -- PATTERNS".into(),
        ..Spec::default()
    };
    let script = render(&spec)?;
    let bytecode: Vec<&str> = script
        .text
        .lines()
        .skip_while(|line| *line != "BYTECODE=(")
        .skip(1)
        .take_while(|line| *line != ")")
        .collect();
    let targets: Vec<&str> = script
        .text
        .lines()
        .find_map(|line| line.strip_prefix("TARGETS=("))
        .and_then(|rest| rest.strip_suffix(')'))
        .ok_or("the script has no TARGETS line")?
        .split_whitespace()
        .collect();
    if bytecode.is_empty()
        || bytecode.len() != targets.len()
        || targets.iter().any(|t| *t != "DROP")
    {
        return Err(format!(
            "the script's rules are not {} DROP rules: targets {targets:?}",
            bytecode.len()
        )
        .into());
    }
    bytecode
        .iter()
        .map(|line| Ok(parse_bytecode(line.trim().trim_matches('\''))?))
        .collect()
}

/// One rule of the deployment: its classic program (run by the VM for the expected verdict)
/// and the program compiled for each target.
struct Rule {
    classic: vm::Program,
    socket: Program,
    xdp: Program,
    /// Classic instructions.
    length: usize,
}

impl Rule {
    /// The classic verdict on `frame` as xt_bpf runs the program (from the network header).
    fn matches(&self, frame: &[u8]) -> bool {
        self.classic.run_with(&Input::l3(&frame[14..])) != 0
    }
}

/// What walking the rules as iptables does costs a packet: up to the first rule that matches.
struct Walk {
    /// Rules reached (the last one matched when `dropped`).
    rules: usize,
    dropped: bool,
    /// The sum over those rules of the socket filters' cost.
    socket: f64,
    /// The same for the programs compiled for XDP.
    xdp: f64,
}

fn walk(bench: &mut Bench, rules: &[Rule], frame: &[u8]) -> Fallible<Walk> {
    let mut out = Walk {
        rules: 0,
        dropped: false,
        socket: 0.0,
        xdp: 0.0,
    };
    for rule in rules {
        let matched = rule.matches(frame);
        // A socket filter returns the classic verdict (65535 or 0).
        out.socket += bench.measure(&rule.socket, frame, if matched { 65535 } else { 0 })?;
        out.xdp += bench.measure(&rule.xdp, frame, if matched { XDP_DROP } else { XDP_PASS })?;
        out.rules += 1;
        if matched {
            out.dropped = true;
            break;
        }
    }
    Ok(out)
}

/// The rules of a deployment, loaded for both targets.
fn load_rules(patterns: &[String], ignore_case: bool) -> Fallible<Vec<Rule>> {
    let mut rules = Vec::new();
    for (index, classic) in deployed_programs(patterns, ignore_case)?
        .into_iter()
        .enumerate()
    {
        let socket = compile(&classic, Target::SocketFilter, Verdicts::Value)?;
        let xdp = compile(
            &classic,
            Target::Xdp(XdpLayout::ethernet(14)),
            Verdicts::XDP_DROP_MATCHED,
        )?;
        let name = format!("rule{index}");
        rules.push(Rule {
            classic: vm::Program::new(&classic, Profile::XtBpf)?,
            socket: Program::load(ProgramKind::SocketFilter, &name, &socket.insns)?,
            xdp: Program::load(ProgramKind::Xdp, &name, &xdp.insns)?,
            length: classic.len(),
        });
    }
    Ok(rules)
}

fn env_number(name: &str, default: u64) -> Fallible<u64> {
    match std::env::var(name) {
        Ok(text) => Ok(text
            .replace('_', "")
            .parse()
            .map_err(|_| format!("{name}={text}: expected a number"))?),
        Err(_) => Ok(default),
    }
}

fn main() -> ExitCode {
    let full = std::env::args().any(|a| a == "--bench");
    if !nix::unistd::Uid::effective().is_root() {
        let why = "BPF_PROG_TEST_RUN and bpf(2) maps";
        if full {
            eprintln!("xdp bench: needs root ({why}): run `cargo bench --bench xdp` as root");
            return ExitCode::from(2);
        }
        println!("test benches/xdp.rs ... ignored, needs root ({why})");
        if std::env::var("CI").as_deref() == Ok("true") {
            eprintln!("xdp bench: CI=true and not root: the verdict checks cannot run");
            return ExitCode::FAILURE;
        }
        return ExitCode::SUCCESS;
    }
    match run(full) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xdp bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Whether the scenario wants `frame` dropped (floods) or passed (the rest).
fn dropped(frame: &Frame) -> bool {
    frame.what.starts_with("flood")
}

/// Loads the matcher for `rules` and measures it on `frames`; prints one row.
fn matcher_row(
    bench: &mut Bench,
    variant: Variant,
    label: usize,
    rules: &[(Action, String)],
    frames: &[&Frame],
) -> Fallible<Vec<f64>> {
    let load_started = Instant::now();
    let matcher = load_matcher(variant, rules)?;
    let load_s = load_started.elapsed().as_secs_f64();
    let (pass, drop) = variant.verdicts();
    let mut row = Vec::new();
    for frame in frames {
        let expected = expected(&matcher, frame);
        if expected != if dropped(frame) { drop } else { pass } {
            return Err(format!(
                "{} rules: the matcher's model gives {expected} for {}",
                rules.len(),
                frame.what
            )
            .into());
        }
        row.push(bench.measure(&matcher.program, &frame.bytes, expected)?);
    }
    let cells: String = row.iter().map(|ns| format!(" {ns:>12.0}")).collect();
    println!("{label:>8}{cells} {load_s:>10.2}");
    Ok(row)
}

fn header(first: &str, columns: &[&str], last: &str) {
    let cells: String = columns.iter().map(|c| format!(" {c:>12}")).collect();
    println!("{first:>8}{cells} {last:>10}");
}

/// `b / a` for the ratio lines.
fn ratio(a: f64, b: f64) -> String {
    let r = b / a;
    if r < 1.0 {
        format!("{r:.2}x")
    } else {
        format!("{r:.1}x")
    }
}

/// An XDP program making `lookups` lookups of a zeroed `key_size`-byte key (on the stack) in
/// `map`, then returning `XDP_PASS`.
fn lookup_program(map: &Map, key_size: u32, lookups: usize) -> Fallible<Program> {
    let key_at = -i16::try_from(key_size)?;
    let mut insns = Vec::new();
    for off in (0..key_size as i16).step_by(8) {
        insns.push(Insn::store_imm(Size::DW, Reg::FP, key_at + off, 0));
    }
    for _ in 0..lookups {
        insns.extend(Insn::ld_map_fd(Reg::R1, map.as_fd().as_raw_fd()));
        insns.push(Insn::mov64_reg(Reg::R2, Reg::FP));
        insns.push(Insn::alu64(
            AluOp::Add,
            Reg::R2,
            Operand::Imm(i32::from(key_at)),
        ));
        insns.push(Insn::call(BPF_FUNC_MAP_LOOKUP_ELEM));
    }
    insns.push(Insn::mov32_imm(Reg::R0, XDP_PASS));
    insns.push(Insn::exit());
    Ok(Program::load(ProgramKind::Xdp, "lookups", &insns)?)
}

/// The helper `bpf_map_lookup_elem`.
const BPF_FUNC_MAP_LOOKUP_ELEM: i32 = 1;

/// What one hash map lookup (a miss) costs by key size: (8 lookups - none) / 8.
fn lookup_costs(bench: &mut Bench, frame: &[u8]) -> Fallible<Vec<(u32, f64)>> {
    const LOOKUPS: usize = 8;
    let mut costs = Vec::new();
    for key_size in [16, 64, KEY_SIZE as u32] {
        let map = Map::create(&MapSpec {
            name: "lookup_cost".into(),
            kind: MapKind::Hash,
            key_size,
            value_size: 4,
            max_entries: 1024,
            flags: BPF_F_NO_PREALLOC,
        })?;
        let none = bench.measure(&lookup_program(&map, key_size, 0)?, frame, XDP_PASS)?;
        let some = bench.measure(&lookup_program(&map, key_size, LOOKUPS)?, frame, XDP_PASS)?;
        costs.push((key_size, (some - none) / LOOKUPS as f64));
    }
    Ok(costs)
}

fn run(full: bool) -> Fallible<()> {
    raise_memlock()?;
    let mut bench = Bench {
        repeat: u32::try_from(env_number(
            "XDP_BENCH_REPEAT",
            if full { 1_000_000 } else { 1_000 },
        )?)?,
        rounds: usize::try_from(env_number("XDP_BENCH_ROUNDS", if full { 3 } else { 1 })?)?.max(1),
        compared: 0,
        runs: 0,
    };
    let sizes: Vec<usize> = match std::env::var("XDP_BENCH_SIZES") {
        Ok(text) => text
            .split(',')
            .map(|s| s.trim().replace('_', "").parse::<usize>())
            .collect::<Result<Vec<_>, _>>()
            .ok()
            .filter(|sizes| !sizes.is_empty() && sizes.iter().all(|&n| n > 0))
            .ok_or_else(|| {
                format!("XDP_BENCH_SIZES={text}: expected rule counts (> 0) separated by commas")
            })?,
        Err(_) if full => vec![1, 200, 10_000, 100_000],
        Err(_) => vec![1, 200],
    };
    let started = Instant::now();
    println!(
        "xdp bench: BPF_PROG_TEST_RUN, {} runs per measurement, median of {} rounds: ns per \
         packet as the kernel reports it (its mean over the runs, in whole ns)",
        bench.repeat, bench.rounds
    );

    let flood = Frame::query(
        "flood, last pattern",
        format!("{}.{FLOOD_ZONE}", random_label(1)),
    )?;
    let legit = Frame::query("legitimate, no rule", FLOOD_ZONE.to_string())?;
    let accepted = Frame::query("legitimate, accepted", format!("user1.{FLOOD_ZONE}"))?;
    let non_dns = Frame {
        what: "non-DNS (TCP 443)",
        name: None,
        bytes: tcp_frame()?,
    };

    // What a run costs beyond the program: programs that only return.
    let empty_xdp = Program::load(
        ProgramKind::Xdp,
        "empty_xdp",
        &[Insn::mov32_imm(Reg::R0, XDP_PASS), Insn::exit()],
    )?;
    let empty_socket = Program::load(
        ProgramKind::SocketFilter,
        "empty_socket",
        &[Insn::mov32_imm(Reg::R0, 0), Insn::exit()],
    )?;
    let floor_xdp = bench.measure(&empty_xdp, &legit.bytes, XDP_PASS)?;
    let floor_socket = bench.measure(&empty_socket, &legit.bytes, 0)?;
    println!(
        "\nfloor (a program that only returns, the run's own cost, in every figure): \
         XDP {floor_xdp:.0}, socket filter {floor_socket:.0}"
    );

    // --- The native matcher.
    println!("\nnative matcher (XDP, ignoring case), drop plan: N drop patterns *.hostK.example.org, *.{FLOOD_ZONE} last");
    header("N", &["flood", "legitimate", "non-DNS"], "load s");
    let mut drop_rows = Vec::new();
    for &n in &sizes {
        let rules = drop_rules(n);
        drop_rows.push((
            n,
            matcher_row(
                &mut bench,
                Variant::Xdp,
                n,
                &rules,
                &[&flood, &legit, &non_dns],
            )?,
        ));
    }
    println!(
        "\nnative matcher, triage plan: N accepted names userK.{FLOOD_ZONE}, then drop *.{FLOOD_ZONE}"
    );
    header(
        "N",
        &["flood", "accepted", "legitimate", "non-DNS"],
        "load s",
    );
    let mut accept_rows = Vec::new();
    for &n in &sizes {
        let mut rules: Vec<(Action, String)> = (1..=n)
            .map(|k| (Action::Accept, format!("user{k}.{FLOOD_ZONE}")))
            .collect();
        rules.push((Action::Drop, format!("*.{FLOOD_ZONE}")));
        accept_rows.push((
            n,
            matcher_row(
                &mut bench,
                Variant::Xdp,
                n,
                &rules,
                &[&flood, &accepted, &legit, &non_dns],
            )?,
        ));
    }
    println!(
        "\nthe matcher as a socket filter (iptables -m bpf --object-pinned; the packet from its \
         network header), drop plan"
    );
    header("N", &["flood", "legitimate", "non-DNS"], "load s");
    let mut socket_rows = Vec::new();
    for &n in &sizes {
        socket_rows.push((
            n,
            matcher_row(
                &mut bench,
                Variant::SocketFilter,
                n,
                &drop_rules(n),
                &[&flood, &legit, &non_dns],
            )?,
        ));
    }

    // --- Where the matcher's time goes.
    let costs = lookup_costs(&mut bench, &legit.bytes)?;
    let text: Vec<String> = costs
        .iter()
        .map(|(size, ns)| format!("{size}-byte key {ns:.0}"))
        .collect();
    // One lookup at each label boundary (the root's included), the whole name, the suffix.
    let lookups = |frame: &Frame| frame.name.as_ref().map_or(0, |n| n.split('.').count() + 3);
    println!(
        "\na hash map lookup (a miss, in an empty map), ns: {}; the matcher's keys are {KEY_SIZE} \
         bytes, and it makes {} lookups for the flood's name, {} for {FLOOD_ZONE}",
        text.join(", "),
        lookups(&flood),
        lookups(&legit)
    );

    // --- Today's deployment.
    let patterns = deployment_patterns();
    let middle = patterns.len() / 2;
    let flood_at = |what: &'static str, index: usize, seed: u64| {
        Frame::query(
            what,
            format!(
                "{}.{}",
                random_label(seed),
                patterns[index].trim_start_matches("*.")
            ),
        )
    };
    let walked = [
        flood_at("flood, pattern 1", 0, 2)?,
        flood_at("flood, pattern 100", middle - 1, 3)?,
        flood,
        Frame::query("legitimate, no rule", FLOOD_ZONE.to_string())?,
    ];
    let mut walks = Vec::new();
    for ignore_case in [true, false] {
        let rules = load_rules(&patterns, ignore_case)?;
        let lengths = rules.iter().map(|r| r.length);
        println!(
            "\ntoday's deployment: iptables-bpf -i 10.53.1.2 dns -- {}P1 ... P{}: {} rules of \
             {} to {} instructions, each program run as xt_bpf runs it (a socket filter, from \
             the network header) and compiled for XDP, in order until one matches: the sum",
            if ignore_case { "-i " } else { "" },
            patterns.len(),
            rules.len(),
            lengths.clone().min().unwrap_or(0),
            lengths.max().unwrap_or(0),
        );
        println!(
            "{:<22} {:>6} {:>14} {:>14} {:>14}",
            "packet", "rules", "socket filter", "(programs)", "XDP"
        );
        for frame in &walked {
            let w = walk(&mut bench, &rules, &frame.bytes)?;
            if w.dropped != dropped(frame) {
                return Err(format!(
                    "the deployment's rules do not decide '{}' as expected",
                    frame.what
                )
                .into());
            }
            println!(
                "{:<22} {:>6} {:>14.0} {:>14.0} {:>14.0}",
                frame.what,
                w.rules,
                w.socket,
                w.socket - w.rules as f64 * floor_socket,
                w.xdp
            );
            if ignore_case {
                walks.push((frame.what, w));
            }
        }
        println!(
            "{:<22} {:>6}  (iptables' -p udp --dport 53 keeps them from the programs)",
            non_dns.what, 0
        );
    }

    // --- Ratios and the goals.
    println!("\nratios");
    let spread = |rows: &[(usize, Vec<f64>)], column: usize| {
        rows.first()
            .zip(rows.last())
            .map(|((_, a), (_, b))| b[column] / a[column])
            .unwrap_or(f64::NAN)
    };
    let (smallest, largest) = (sizes[0], sizes[sizes.len() - 1]);
    let (flood_spread, legit_spread) = (spread(&drop_rows, 0), spread(&drop_rows, 1));
    println!(
        "  matcher, {largest} vs {smallest} drop patterns: flood {flood_spread:.2}x, legitimate \
         {legit_spread:.2}x (goal: at most 1.5x: {})",
        if flood_spread <= 1.5 && legit_spread <= 1.5 {
            "met"
        } else {
            "NOT met"
        }
    );
    println!(
        "  matcher, {largest} vs {smallest} accepted names: flood {:.2}x, accepted {:.2}x, legitimate {:.2}x",
        spread(&accept_rows, 0),
        spread(&accept_rows, 1),
        spread(&accept_rows, 2)
    );
    let at_200 = |rows: &[(usize, Vec<f64>)]| {
        rows.iter()
            .find(|(n, _)| *n == 200)
            .map(|(_, row)| row.clone())
    };
    if let (Some(row), Some(socket_row)) = (at_200(&drop_rows), at_200(&socket_rows)) {
        println!(
            "  today's deployment (-i) against the matcher with the same 200 patterns, per packet \
             (socket filters, floor included; programs alone against the matcher less its floor; \
             the XDP-compiled programs; against the matcher as a socket filter):"
        );
        for (what, w) in &walks {
            let column = if w.dropped { 0 } else { 1 };
            let matcher = row[column];
            let whole = w.socket / matcher;
            let goal = if w.dropped {
                format!(
                    " (goal at least 10x: {})",
                    if whole >= 10.0 { "met" } else { "NOT met" }
                )
            } else {
                String::new()
            };
            println!(
                "    {what:<22} {} rules: {}{goal}; programs alone {}; XDP-compiled {}; \
                 socket-filter matcher {}",
                w.rules,
                ratio(matcher, w.socket),
                ratio(
                    matcher - floor_xdp,
                    w.socket - w.rules as f64 * floor_socket
                ),
                ratio(matcher, w.xdp),
                ratio(socket_row[column], w.socket),
            );
        }
    }
    // Every figure above is a measurement; fewer than the tables hold means one was skipped.
    let expected_at_least = 2 + sizes.len() * 10 + 6;
    if bench.compared < (expected_at_least * bench.rounds) as u64 {
        return Err(format!(
            "only {} measurements were made, at least {} expected",
            bench.compared,
            expected_at_least * bench.rounds
        )
        .into());
    }
    println!(
        "\nverdicts checked: {} measurements ({} runs), all as expected; {:.1} s",
        bench.compared,
        bench.runs,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
