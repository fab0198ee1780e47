//! The native DNS matcher as a socket filter (`bpftools::ebpf::matcher::socket_program`), what
//! `iptables -p udp --dport 53 -m bpf --object-pinned PIN -j DROP` runs, against the XDP
//! matcher and the reference of tests/it/ebpf_match.rs (the `dns` generator's chain behind
//! iptables' gate).
//!
//! The kernel's test run of a socket filter (net/bpf/test_run.c, `bpf_prog_test_run_skb`)
//! takes an Ethernet frame, takes its Ethernet header off with `eth_type_trans`
//! (`skb->protocol` = the EtherType) and runs the program on the skb from there; VLAN tags
//! stay in the packet ([`a_socket_filter_test_run_starts_after_the_ethernet_header`] shows
//! it). iptables sees packets with their tags already removed, so each frame is given to the
//! socket filter as that view: up to two tags taken out, as the XDP matcher reads them (the
//! XDP matcher gets the frame as it is). A third tag stays, and both pass the frame.
//!
//! Without root: the program's shape (maps, helpers, verdicts). Root only, through
//! `bpftools::ebpf::sys`: the test run's view; every frame of the matcher's proof (captures,
//! built, adversarial) under every rule set of it, the verdicts and the per-rule counters of
//! the socket filter equal to the XDP matcher's and the reference's; the address gate; and in
//! network namespaces, the program pinned on bpffs behind real `iptables` and `ip6tables`
//! rules (both backends), dropping the queries it matches, long ones included, and counting
//! them.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bpftools::ebpf::compile::{XDP_DROP, XDP_PASS};
use bpftools::ebpf::insn::{AluOp, Insn, JmpOp, Operand, Reg, Size};
use bpftools::ebpf::matcher::{
    self, Action, MapContents, MapRole, MatcherOptions, Variant, MAX_HEADER_OFFSET, PACKET_SIZE,
    SOCKET_MATCH, SOCKET_NO_MATCH,
};
use bpftools::ebpf::sys::{ensure_bpffs, raise_memlock, Program, ProgramKind, BPF_FS_PATH};

use crate::common::{require, require_root};
use crate::ebpf_match::{address_cases, all_frames, link_layer, rule_sets, Loaded, Protected};
use crate::kernel::Netns;
use crate::packets::{dns_query, labels};

/// What iptables would see of `frame`: the frame with up to two VLAN tags taken out (the
/// EtherType after them in their place), and how many were.
fn l3_view(frame: &[u8]) -> (Vec<u8>, usize) {
    match link_layer(frame) {
        Some((net, tags, ether_type)) if tags > 0 => {
            let mut out = frame[..12].to_vec();
            out.extend_from_slice(&ether_type.to_be_bytes());
            out.extend_from_slice(&frame[net..]);
            (out, tags)
        }
        _ => (frame.to_vec(), 0),
    }
}

/// Whether `view`'s network header is cut short (nothing, or less than an IPv4 / IPv6 header
/// for those EtherTypes): the IP layer drops such a packet before iptables.
fn header_cut(view: &[u8]) -> bool {
    let l3 = view.len() - 14;
    match u16::from_be_bytes([view[12], view[13]]) {
        0x0800 => l3 < 20,
        0x86dd => l3 < 40,
        _ => l3 == 0,
    }
}

/// The test run of a socket filter on `view`: its verdict, or `None` when the kernel refuses
/// to build the skb, which it may only do for a header cut short ([`header_cut`]): recent
/// kernels refuse those (EINVAL), older ones run them.
fn run_l3(program: &Program, view: &[u8]) -> Option<u32> {
    match program.test_run(view, 1) {
        Ok(run) => Some(run.retval),
        Err(e) if e.errno() == Some(libc::EINVAL) && header_cut(view) => None,
        Err(e) => panic!("test run of {} bytes: {e}", view.len()),
    }
}

/// The socket filter's verdict for the XDP matcher's.
fn socket_verdict(xdp: u32) -> u32 {
    if xdp == XDP_DROP {
        SOCKET_MATCH
    } else {
        SOCKET_NO_MATCH
    }
}

#[test]
fn the_socket_program_is_the_matcher_without_link_layer_hook_or_tail_call() {
    let mut lengths = Vec::new();
    for ignore_case in [false, true] {
        let options = MatcherOptions { ignore_case };
        let socket = matcher::socket_program(options);
        assert_eq!(Variant::SocketFilter.program(options), socket);
        assert_eq!(Variant::Xdp.program(options), matcher::program(options));
        let roles: BTreeSet<MapRole> = socket.map_slots.iter().map(|&(_, r)| r).collect();
        let wanted: BTreeSet<MapRole> = Variant::SocketFilter.roles().iter().copied().collect();
        assert_eq!(roles, wanted);
        assert!(roles.contains(&MapRole::Packet) && !roles.contains(&MapRole::Programs));
        let xdp_roles: BTreeSet<MapRole> = matcher::program(options)
            .map_slots
            .iter()
            .map(|&(_, r)| r)
            .collect();
        assert_eq!(xdp_roles, MapRole::ALL.into_iter().collect::<BTreeSet<_>>());
        // Helpers: map lookups and one copy of the packet; no tail call.
        let calls: Vec<i32> = socket
            .insns
            .iter()
            .filter(|i| i.code == Insn::call(0).code)
            .map(|i| i.imm)
            .collect();
        assert!(calls.iter().all(|&c| c == 1 || c == 26), "{calls:?}");
        assert_eq!(calls.iter().filter(|&&c| c == 26).count(), 1);
        // Every exit returns SOCKET_MATCH or SOCKET_NO_MATCH, set just before it.
        let mut exits = 0;
        for (at, insn) in socket.insns.iter().enumerate() {
            if *insn == Insn::exit() {
                let set = socket.insns[at - 1];
                assert!(
                    set == Insn::mov32_imm(Reg::R0, SOCKET_MATCH)
                        || set == Insn::mov32_imm(Reg::R0, SOCKET_NO_MATCH),
                    "exit at {at} after {set:?}"
                );
                exits += 1;
            }
        }
        assert_eq!(exits, 3);
        lengths.push((matcher::program(options).insns.len(), socket.insns.len()));
    }
    assert_eq!(
        Variant::SocketFilter.verdicts(),
        (SOCKET_NO_MATCH, SOCKET_MATCH)
    );
    // The copy holds everything the parse reads, and fits a per-CPU value (32 KiB).
    let spec = MapRole::Packet.spec(1000);
    assert_eq!(spec.map_type, matcher::BPF_MAP_TYPE_PERCPU_ARRAY);
    assert_eq!(
        (spec.key_size, spec.value_size, spec.max_entries),
        (4, PACKET_SIZE, 1)
    );
    const { assert!(PACKET_SIZE >= MAX_HEADER_OFFSET + 20 + 255 && PACKET_SIZE <= 32 << 10) };
    assert_eq!(MapRole::Packet.name(), "packet");
    assert!(!MapRole::ALL.contains(&MapRole::Packet));
    eprintln!("instructions (case-sensitive, folded): XDP and socket filter {lengths:?}");
}

// --- Root: the kernel.

/// A socket filter that returns `skb->len`.
fn probe_len() -> Vec<Insn> {
    vec![Insn::load(Size::W, Reg::R0, Reg::R1, 0), Insn::exit()]
}

/// A socket filter that returns `skb->protocol` in host order.
fn probe_protocol() -> Vec<Insn> {
    vec![
        Insn::load(Size::W, Reg::R0, Reg::R1, 16),
        Insn::endian(true, Reg::R0, 16),
        Insn::exit(),
    ]
}

/// A socket filter that returns the packet's byte at `offset` (`bpf_skb_load_bytes`), or
/// `u32::MAX` when the helper cannot read it.
fn probe_byte(offset: i32) -> Vec<Insn> {
    vec![
        Insn::store_imm(Size::DW, Reg::FP, -8, 0),
        Insn::mov32_imm(Reg::R2, offset as u32),
        Insn::mov64_reg(Reg::R3, Reg::FP),
        Insn::alu64(AluOp::Add, Reg::R3, Operand::Imm(-8)),
        Insn::mov32_imm(Reg::R4, 1),
        Insn::call(26),
        Insn::jmp(JmpOp::Jeq, Reg::R0, Operand::Imm(0), 2),
        Insn::mov32_imm(Reg::R0, u32::MAX),
        Insn::exit(),
        Insn::load(Size::B, Reg::R0, Reg::FP, -8),
        Insn::exit(),
    ]
}

fn load_socket(name: &str, insns: &[Insn]) -> Program {
    Program::load(ProgramKind::SocketFilter, name, insns).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
#[ignore = "needs root (bpf(2), BPF_PROG_TEST_RUN)"]
fn a_socket_filter_test_run_starts_after_the_ethernet_header() {
    require_root("bpf(2), BPF_PROG_TEST_RUN");
    raise_memlock().expect("memlock");
    let len = load_socket("probe_len", &probe_len());
    let protocol = load_socket("probe_proto", &probe_protocol());
    let first = load_socket("probe_first", &probe_byte(0));
    let frames: Vec<(String, Vec<u8>)> = crate::ebpf::frames()
        .into_iter()
        .map(|f| (f.origin, f.bytes))
        .chain(crate::ebpf_match::built_frames())
        .collect();
    let (mut checked, mut tagged) = (0, 0);
    for (origin, frame) in &frames {
        let l3 = frame.len() - 14;
        if header_cut(frame) {
            // See below, and run_l3.
            continue;
        }
        assert_eq!(
            len.test_run(frame, 1).unwrap().retval as usize,
            l3,
            "{origin}"
        );
        let ether_type = u16::from_be_bytes([frame[12], frame[13]]);
        if ether_type >= 0x600 {
            // eth_type_trans keeps an EtherType (a length field stands for 802.3).
            assert_eq!(
                protocol.test_run(frame, 1).unwrap().retval,
                u32::from(ether_type),
                "{origin}"
            );
        }
        tagged += usize::from(matches!(ether_type, 0x8100 | 0x88a8 | 0x9100));
        assert_eq!(
            first.test_run(frame, 1).unwrap().retval,
            u32::from(frame[14]),
            "{origin}"
        );
        let last = load_socket("probe_last", &probe_byte(l3 as i32 - 1));
        let past = load_socket("probe_past", &probe_byte(l3 as i32));
        assert_eq!(
            last.test_run(frame, 1).unwrap().retval,
            u32::from(frame[frame.len() - 1]),
            "{origin}"
        );
        assert_eq!(
            past.test_run(frame, 1).unwrap().retval,
            u32::MAX,
            "{origin}"
        );
        checked += 1;
    }
    // A frame of its Ethernet header alone, an empty skb: refused by the test run of recent
    // kernels (EINVAL), else run with a length of 0. iptables never hands one over.
    let header_only = &frames[0].1[..14];
    let empty = match len.test_run(header_only, 1) {
        Err(e) => {
            assert_eq!(e.errno(), Some(libc::EINVAL), "{e}");
            "refused"
        }
        Ok(run) => {
            assert_eq!(run.retval, 0);
            assert_eq!(first.test_run(header_only, 1).unwrap().retval, u32::MAX);
            "run, of length 0"
        }
    };
    eprintln!(
        "test run view: {checked} frames ({tagged} tagged, their tags still in the packet, \
         skb->protocol their TPID); an empty packet {empty}"
    );
    assert!(checked > 1000 && tagged > 100, "{checked} {tagged}");
}

/// Per-rule counters expected from the reference: order -> (packets, bytes).
type Tally = BTreeMap<u32, (u64, u64)>;

#[test]
#[ignore = "needs root (bpf(2), BPF_PROG_TEST_RUN)"]
fn the_socket_filter_gives_the_xdp_matchers_verdicts_and_counts_on_every_frame() {
    require_root("bpf(2), BPF_PROG_TEST_RUN");
    raise_memlock().expect("memlock");
    let frames = all_frames();
    assert!(frames.len() > 10_000, "only {} frames", frames.len());
    let views: Vec<(Vec<u8>, usize)> = frames.iter().map(|(_, f)| l3_view(f)).collect();
    let stripped = views.iter().filter(|(_, tags)| *tags > 0).count();
    let (mut compared, mut sets, mut dropped, mut counters) = (0, 0, 0, 0);
    let (mut tagged_as_is, mut refused) = (0, 0);
    for set in rule_sets() {
        let contents = set.contents();
        let protected = Protected::all();
        let xdp = Loaded::variant(Variant::Xdp, &contents, set.options, &protected);
        let socket = Loaded::variant(Variant::SocketFilter, &contents, set.options, &protected);
        sets += 1;
        let (mut want_xdp, mut want_socket): (Tally, Tally) = Default::default();
        let mut disagreements = Vec::new();
        for ((origin, frame), (view, tags)) in frames.iter().zip(&views) {
            let expected = set.expected(frame, &protected);
            let reference = set.verdict(expected);
            let got_xdp = xdp.run(frame).retval;
            let Some(got_socket) = run_l3(&socket.program, view) else {
                // Cut inside its network header: iptables never sees such a packet (the IP
                // layer drops it first), and this kernel's test run refuses it. The XDP
                // matcher passes it.
                assert_eq!((reference, got_xdp), (XDP_PASS, XDP_PASS), "{origin}");
                assert_eq!(expected.rule, None, "{origin}");
                refused += 1;
                continue;
            };
            compared += 1;
            dropped += usize::from(got_socket == SOCKET_MATCH);
            if (got_xdp, got_socket) != (reference, socket_verdict(reference))
                && disagreements.len() < 5
            {
                disagreements.push(format!(
                    "{origin} ({tags} tags taken out): XDP {got_xdp}, socket filter \
                     {got_socket}, reference {reference}"
                ));
            }
            if *tags > 0 && frame.len() > 14 {
                // As the test run gives it, tags in the packet: not IPv4 or IPv6, no match,
                // nothing counted.
                let as_is = socket.run(frame).retval;
                tagged_as_is += 1;
                if as_is != SOCKET_NO_MATCH && disagreements.len() < 5 {
                    disagreements.push(format!("{origin} with its tags: {as_is}"));
                }
            }
            if let Some(rule) = expected.rule {
                let order = set.rules[rule].0;
                let slot = want_xdp.entry(order).or_default();
                slot.0 += 1;
                slot.1 += frame.len() as u64;
                // skb->len: the packet from its network header.
                let slot = want_socket.entry(order).or_default();
                slot.0 += 1;
                slot.1 += (view.len() - 14) as u64;
            }
        }
        assert!(
            disagreements.is_empty(),
            "{}:\n{}",
            set.name,
            disagreements.join("\n")
        );
        let capacity = socket.maps[&MapRole::Counters].info().max_entries;
        for index in 0..capacity {
            let want = want_socket.get(&index).copied().unwrap_or_default();
            assert_eq!(socket.counter(index), want, "{}: counter {index}", set.name);
            let want = want_xdp.get(&index).copied().unwrap_or_default();
            assert_eq!(
                xdp.counter(index),
                want,
                "{}: XDP counter {index}",
                set.name
            );
            counters += 1;
        }
        assert!(want_socket.len() >= 2, "{}: {want_socket:?}", set.name);
    }
    eprintln!(
        "socket filter: {sets} rule sets x {} frames ({stripped} of them with their tags taken \
         out): {compared} verdicts of the XDP matcher, the socket filter and the reference \
         compared, 0 disagreements, {dropped} matched; {refused} refused by the test run \
         (IP header cut short; passed by the others); {tagged_as_is} tagged frames as the test \
         run gives them, not matched; {counters} counters of each program equal to the \
         reference's",
        frames.len()
    );
    assert_eq!(compared + refused, sets * frames.len());
    assert_eq!(sets, rule_sets().len());
    assert!(dropped > 1000 && stripped > 100, "{dropped} {stripped}");
}

#[test]
#[ignore = "needs root (bpf(2), LPM tries, BPF_PROG_TEST_RUN)"]
fn the_socket_filter_matches_only_queries_to_protected_addresses() {
    require_root("bpf(2), LPM tries, BPF_PROG_TEST_RUN");
    raise_memlock().expect("memlock");
    let (protected, set, frames) = address_cases();
    let contents = set.contents();
    let socket = Loaded::variant(Variant::SocketFilter, &contents, set.options, &protected);
    let (mut inside, mut outside) = (0, 0);
    for (what, frame, protected_address) in &frames {
        let expected = set.verdict(set.expected(frame, &protected));
        let got = socket.run(&l3_view(frame).0).retval;
        let want = if *protected_address {
            SOCKET_MATCH
        } else {
            SOCKET_NO_MATCH
        };
        assert_eq!(got, want, "{what}");
        assert_eq!(got, socket_verdict(expected), "{what}");
        if *protected_address {
            inside += 1;
        } else {
            outside += 1;
        }
    }
    eprintln!("socket filter, address gate: {inside} protected matched, {outside} others not");
    assert!(inside >= 20 && outside >= 20, "{inside} {outside}");
}

// --- Root: behind iptables, in network namespaces.

/// A directory under bpffs removed, with what it holds, when dropped.
struct PinDir(PathBuf);

impl Drop for PinDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `f` on a thread inside `netns`: the sockets it opens belong to that namespace.
fn in_netns<T: Send>(netns: &Netns, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let file = File::open(netns_path(netns)).expect("netns file");
                nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
                f()
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

fn netns_path(netns: &Netns) -> String {
    format!("/var/run/netns/{}", netns.0)
}

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("ip");
    assert!(status.success(), "ip {}", args.join(" "));
}

/// Runs `tool args` in `netns` by `nsenter --net`, which keeps the host's mounts (its bpffs);
/// the output and whether it succeeded.
fn nsenter(netns: &Netns, tool: &str, args: &[&str]) -> (bool, String) {
    let output = Command::new("nsenter")
        .arg(format!("--net={}", netns_path(netns)))
        .arg(tool)
        .args(args)
        .output()
        .expect("nsenter");
    let text = String::from_utf8_lossy(&output.stderr).into_owned()
        + &String::from_utf8_lossy(&output.stdout);
    (output.status.success(), text)
}

const SERVER4: &str = "10.202.0.2";
const CLIENT4: &str = "10.202.0.1";
const SERVER6: &str = "fd53:202::2";
const CLIENT6: &str = "fd53:202::1";

/// A query for `name` with `padding` zero bytes after its question (the matcher reads the
/// first name only), its id `id`.
fn padded_query(name: &str, id: u16, padding: usize) -> Vec<u8> {
    let mut message = dns_query(&labels(name), id);
    message.resize(message.len() + padding, 0);
    message
}

/// The ids of `queries` (sent from `sender` to `to`, port 53) that reach `listener`: a last
/// query (`sentinel.invalid`, id 0xffff) that must arrive marks the end; what arrives in the
/// next 300 ms is counted too (a reassembled datagram may come late).
fn delivered(
    sender: &UdpSocket,
    listener: &UdpSocket,
    to: &str,
    queries: &[Vec<u8>],
) -> BTreeSet<u16> {
    for query in queries {
        sender.send_to(query, to).expect("send");
    }
    sender
        .send_to(&dns_query(&labels("sentinel.invalid"), 0xffff), to)
        .expect("send");
    let mut out = BTreeSet::new();
    let mut deadline = Instant::now() + Duration::from_secs(5);
    let mut sentinel = false;
    let mut buf = vec![0u8; 65536];
    while Instant::now() < deadline {
        let Ok(len) = listener.recv(&mut buf) else {
            continue;
        };
        let id = u16::from_be_bytes([buf[0], buf[1]]);
        if id == 0xffff && !sentinel {
            sentinel = true;
            deadline = Instant::now() + Duration::from_millis(300);
            continue;
        }
        let sent = queries
            .iter()
            .find(|q| u16::from_be_bytes([q[0], q[1]]) == id)
            .expect("a query sent");
        assert_eq!(len, sent.len(), "query {id} arrived whole");
        out.insert(id);
    }
    assert!(sentinel, "the sentinel never arrived");
    out
}

/// The rules behind iptables: (order, action, pattern).
const RULES: [(Action, &str); 4] = [
    (Action::Accept, "ok.www.example.net"),
    (Action::Drop, "*.www.example.net"),
    (Action::Drop, "example.org"),
    (Action::Drop, "*.big.example.net"),
];

/// The queries sent, each (name, padding, the rule order that decides, dropped).
const QUERIES: [(&str, usize, Option<u32>, bool); 9] = [
    ("ok.www.example.net", 0, Some(0), false),
    ("abc.www.example.net", 0, Some(1), true),
    ("ABC.WWW.Example.NET", 0, Some(1), true),
    ("www.example.net", 0, None, false),
    ("example.org", 0, Some(2), true),
    ("www.example.org", 0, None, false),
    ("a.b.example.org", 0, None, false),
    // Longer than the socket filter's copy (IPv4 reassembles it before INPUT).
    ("x.big.example.net", 20_000, Some(3), true),
    ("big.example.net", 20_000, None, false),
];

/// One run behind `tool` (`iptables-nft` or `iptables-legacy`, and its ip6tables): the pinned
/// socket filter at INPUT of a server namespace, queries from a client namespace over a veth.
/// How many queries were sent and how many dropped.
fn behind_iptables(backend: &str, pin: &Path, program: &Loaded) -> (usize, usize) {
    let pid = std::process::id();
    let server = Netns::new(&format!("bpftools-skb-srv-{pid}"));
    let client = Netns::new(&format!("bpftools-skb-cli-{pid}"));
    ip(&[
        "link", "add", "skb-cli", "netns", &client.0, "type", "veth", "peer", "name", "skb-srv",
        "netns", &server.0,
    ]);
    for (ns, dev, v4, v6) in [
        (&server, "skb-srv", SERVER4, SERVER6),
        (&client, "skb-cli", CLIENT4, CLIENT6),
    ] {
        ip(&["-n", &ns.0, "addr", "add", &format!("{v4}/24"), "dev", dev]);
        ip(&[
            "-n",
            &ns.0,
            "addr",
            "add",
            &format!("{v6}/64"),
            "dev",
            dev,
            "nodad",
        ]);
        ip(&["-n", &ns.0, "link", "set", dev, "up"]);
    }
    let pin_text = pin.to_str().expect("pin path");
    for tool in [
        format!("iptables-{backend}"),
        format!("ip6tables-{backend}"),
    ] {
        let rule = [
            "-w",
            "-A",
            "INPUT",
            "-p",
            "udp",
            "--dport",
            "53",
            "-m",
            "bpf",
            "--object-pinned",
            pin_text,
            "-j",
            "DROP",
        ];
        // `ip netns exec` mounts a /sys of the namespace's own: the pin is not there.
        let exec = Command::new("ip")
            .args(["netns", "exec", &server.0, &tool])
            .args(rule)
            .output()
            .expect("ip netns exec");
        let refusal = String::from_utf8_lossy(&exec.stderr);
        assert!(
            !exec.status.success() && refusal.contains("failed to get bpf object"),
            "{tool} under ip netns exec: {refusal}"
        );
        let (ok, text) = nsenter(&server, &tool, &rule);
        assert!(ok, "{tool}: {text}");
        let (ok, listing) = nsenter(&server, &tool, &["-w", "-S", "INPUT"]);
        assert!(ok && listing.contains(pin_text), "{tool}: {listing}");
    }
    let (mut sent, mut dropped) = (0, 0);
    for (listen, from) in [(SERVER4, CLIENT4), (SERVER6, CLIENT6)] {
        let v6 = listen.contains(':');
        let bracket = |a: &str| if v6 { format!("[{a}]") } else { a.to_string() };
        let listener = in_netns(&server, || {
            UdpSocket::bind(format!("{}:53", bracket(listen))).expect("bind")
        });
        listener
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let sender = in_netns(&client, || {
            UdpSocket::bind(format!("{}:0", bracket(from))).expect("bind")
        });
        let queries: Vec<Vec<u8>> = QUERIES
            .iter()
            .enumerate()
            .map(|(id, (name, padding, _, _))| padded_query(name, id as u16, *padding))
            .collect();
        let got = delivered(
            &sender,
            &listener,
            &format!("{}:53", bracket(listen)),
            &queries,
        );
        let want: BTreeSet<u16> = QUERIES
            .iter()
            .enumerate()
            .filter(|(_, q)| !q.3)
            .map(|(id, _)| id as u16)
            .collect();
        assert_eq!(got, want, "{backend}, to {listen}: the queries received");
        sent += queries.len();
        dropped += queries.len() - got.len();
    }
    // Every query went through the rule (the sentinel too, which no rule decides): counted
    // by the rule that decided, with skb->len (the IP packet; IPv6 hands the first fragment
    // of a fragmented query, IPv4 the reassembled one).
    let header = |v6: bool| if v6 { 48 } else { 28 };
    for (order, _) in RULES.iter().enumerate() {
        let (packets, bytes) = program.counter(order as u32);
        let decided: Vec<(usize, usize)> = QUERIES
            .iter()
            .enumerate()
            .filter(|(_, q)| q.2 == Some(order as u32))
            .map(|(id, (name, padding, _, _))| (id, padded_query(name, id as u16, *padding).len()))
            .collect();
        assert_eq!(
            packets,
            2 * decided.len() as u64,
            "{backend}: rule {order} packets"
        );
        let small: u64 = decided
            .iter()
            .filter(|(id, _)| QUERIES[*id].1 == 0)
            .map(|(_, len)| (2 * len + header(false) + header(true)) as u64)
            .sum();
        if decided.iter().all(|(id, _)| QUERIES[*id].1 == 0) {
            assert_eq!(bytes, small, "{backend}: rule {order} bytes");
        } else {
            // One long query: whole over IPv4, its first fragment over IPv6 (at most 1500
            // bytes on this veth).
            let (_, long) = decided.iter().find(|(id, _)| QUERIES[*id].1 > 0).unwrap();
            let first_fragment = bytes - (long + header(false)) as u64;
            assert!(
                (1280..=1500).contains(&first_fragment),
                "{backend}: rule {order} bytes {bytes}"
            );
        }
    }
    drop(server);
    drop(client);
    (sent, dropped)
}

#[test]
#[ignore = "needs root (bpf(2), bpffs, network namespaces, iptables)"]
fn iptables_drops_the_queries_the_pinned_socket_filter_matches() {
    require_root("bpf(2), bpffs, network namespaces, iptables");
    for tool in [
        "iptables-nft",
        "ip6tables-nft",
        "iptables-legacy",
        "ip6tables-legacy",
    ] {
        require(tool, "iptables");
    }
    require("nsenter", "util-linux");
    require("ip", "iproute2");
    raise_memlock().expect("memlock");
    ensure_bpffs(BPF_FS_PATH).unwrap_or_else(|e| panic!("{e}"));
    let options = MatcherOptions { ignore_case: true };
    let contents = MapContents::new(&RULES, options).expect("rules");
    let address = |text: &str| -> Vec<u8> {
        match text.parse::<std::net::IpAddr>().expect("address") {
            std::net::IpAddr::V4(a) => a.octets().to_vec(),
            std::net::IpAddr::V6(a) => a.octets().to_vec(),
        }
    };
    let protected = Protected {
        v4: vec![(32, address(SERVER4).try_into().unwrap())],
        v6: vec![(128, address(SERVER6).try_into().unwrap())],
    };
    let dir = PinDir(Path::new(BPF_FS_PATH).join(format!("bpftools-skb-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).expect("pin directory");
    let (mut sent, mut dropped) = (0, 0);
    for backend in ["nft", "legacy"] {
        // A fresh program and maps per backend: the counters start at 0.
        let program = Loaded::variant(Variant::SocketFilter, &contents, options, &protected);
        let pin = dir.0.join(format!("match-{backend}"));
        program.program.pin(&pin).expect("pin");
        let (s, d) = behind_iptables(backend, &pin, &program);
        sent += s;
        dropped += d;
    }
    eprintln!(
        "behind iptables-nft and iptables-legacy (and ip6tables): {sent} queries sent, \
         {dropped} dropped by the pinned socket filter, the others received"
    );
    assert!(dropped >= 16 && sent - dropped >= 20, "{sent} {dropped}");
}
