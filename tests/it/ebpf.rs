//! The cBPF -> eBPF compiler proven equal to the kernel's own classic BPF and to the VM.
//!
//! Root only (ignored unless asked for, failing without root), two proofs: every program the
//! generators make for the testdata inputs, on every frame of testdata/captures, and 10,000
//! random valid classic programs (tests/it/randprog.rs), each on a seeded sample of those
//! frames (some cut short). Each program is run by three oracles on the same bytes seen the
//! same way, and every run must agree:
//! - the kernel's classic BPF: the program attached with `SO_ATTACH_FILTER` to AF_PACKET
//!   sockets on a veth in a namespace made for the test, the frame sent out of it
//!   ([`ClassicTap`]); the socket gets min(verdict, length) bytes, or nothing for verdict 0;
//! - the VM ([`bpftools::vm`]), which gives the verdict itself;
//! - the compiled program, loaded with [`bpftools::ebpf::sys`] and run with
//!   `BPF_PROG_TEST_RUN`: at XDP both with the verdict itself ([`Verdicts::Value`]) and with
//!   a drop/pass mapping (non-zero -> `XDP_DROP` or `XDP_TX`, 0 -> `XDP_PASS`); as a socket
//!   filter, the verdict itself.
//!
//! The views (the link-layer header is at the frame's first byte in all of them; N is where
//! the kernel put the network header, which the tap's socket keeping every frame reports: 14, or 18
//! past an 802.1Q tag; it must be the capture's own for every whole frame):
//! - from the network header: offset 0 and `SKF_NET_OFF` at N, `#len` = length - N. The
//!   kernel's `SOCK_DGRAM` socket (the frame sent with protocol 0, so that the kernel reads
//!   the Ethernet type and skips VLAN tags, as xt_bpf's view has no tag), the XDP layout
//!   `{base: N, network: N, link: 0}`, the VM's input built the same way;
//! - from the link-layer header: offset 0 at 0, `SKF_NET_OFF` at N, `#len` = length. The
//!   kernel's `SOCK_RAW` socket, XDP `{base: 0, network: N, link: 0}`;
//! - a socket filter's test run: the kernel takes 14 bytes off (`eth_type_trans`) and puts the
//!   network header there, tag or not: offset 0 and `SKF_NET_OFF` at 14. The kernel's
//!   `SOCK_DGRAM` socket again: the same as the first view for an untagged frame; a tagged one
//!   is sent a second time with its protocol given, so that the kernel leaves the tag in.
//!
//! Each random program is also compiled at XDP for one layout no socket gives (offset 0 at
//! 0, 14, 18 or 42, the network or link-layer header missing), compared with the VM alone.
//!
//! Without root: the compiler's refusals and shape.

use std::collections::HashMap;
use std::fs::File;
use std::time::Instant;

use bpftools::ebpf::compile::{XDP_DROP, XDP_PASS, XDP_TX};
use bpftools::ebpf::sys::{self, ProgramKind};
use bpftools::ebpf::{self, compile, CompileError, Target, Verdicts, XdpLayout};
use bpftools::gen::{
    build, DnsSpec, DnsValidateSpec, GenOptions, Generator, SuffixSpec, DEFAULT_EXT_HEADERS,
};
use bpftools::insn::RawInsn;
use bpftools::pcap::link::{network_header, to_ethernet, LINKTYPE_ETHERNET};
use bpftools::vm::{self, validate, Context, Input, Profile};

use crate::common::{capture, require_root, CAPTURES};
use crate::kernel::{in_veth_namespace, ClassicRun, ClassicTap, Header};
use crate::randprog::{program, Mix};
use crate::rng::Rng;

/// One real packet as plain Ethernet and where its network header is.
pub(crate) struct Frame {
    pub(crate) origin: String,
    pub(crate) bytes: Vec<u8>,
    pub(crate) network: u32,
}

/// Every packet of every capture, as Ethernet (cooked captures through the one conversion,
/// which also takes VLAN tags off), without frame check sequences; those XDP's test run
/// cannot take (under 14 bytes, over 3000) are left out.
pub(crate) fn frames() -> Vec<Frame> {
    read_frames(false)
}

/// Like [`frames`], but the frames of Ethernet captures are kept as they are, VLAN tags
/// included.
fn captured_frames() -> Vec<Frame> {
    read_frames(true)
}

fn read_frames(keep_ethernet: bool) -> Vec<Frame> {
    let mut out = Vec::new();
    for name in CAPTURES {
        let file = File::open(capture(name)).expect("capture");
        let mut reader = bpftools::pcap::Reader::new(file).expect("reader");
        while let Some(packet) = reader.next_packet().expect("packet") {
            let data = &packet.data[..packet.data.len() - packet.fcs_len as usize];
            let mut bytes = Vec::new();
            if keep_ethernet && packet.linktype == LINKTYPE_ETHERNET {
                bytes.extend_from_slice(data);
            } else if !to_ethernet(packet.linktype, data, &mut bytes) {
                continue;
            }
            let Some(net) = network_header(LINKTYPE_ETHERNET, &bytes) else {
                continue;
            };
            if bytes.len() < 14 || bytes.len() > 3000 {
                continue;
            }
            out.push(Frame {
                origin: format!("{name} #{}", packet.number),
                bytes,
                network: net.offset as u32,
            });
        }
    }
    out
}

/// Where a program's offset 0 and the network header are in a frame; the link-layer header
/// is at its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct View {
    start: u32,
    network: u32,
}

impl View {
    /// A socket filter's test run: offset 0 and the network header after 14 bytes.
    const SOCKET_TEST_RUN: View = View {
        start: 14,
        network: 14,
    };

    fn layout(self) -> XdpLayout {
        XdpLayout {
            base: self.start,
            network: Some(self.network),
            link: Some(0),
        }
    }

    fn input(self, bytes: &[u8]) -> Input<'_> {
        vm_input(bytes, self.layout())
    }
}

/// The VM's input for a frame seen through `layout`: `#len` is the length from offset 0, as
/// the kernel's `skb->len` and what XDP sees from the base.
fn vm_input(bytes: &[u8], layout: XdpLayout) -> Input<'_> {
    Input {
        frame: bytes,
        start: layout.base as usize,
        net: layout.network.map(|n| n as usize),
        link: layout.link.map(|l| l as usize),
        wire_len: (bytes.len() as u32).saturating_sub(layout.base),
        ctx: Context::default(),
    }
}

/// What a compiled program's return value is called in a report.
fn verdicts_name(verdicts: Verdicts) -> &'static str {
    match verdicts {
        Verdicts::Value => "XDP (verdict)",
        Verdicts::Map {
            matched: XDP_DROP,
            unmatched: XDP_PASS,
        } => "XDP (drop/pass)",
        Verdicts::Map {
            matched: XDP_TX,
            unmatched: XDP_PASS,
        } => "XDP (tx/pass)",
        Verdicts::Map { .. } => "XDP (mapped)",
    }
}

/// Compiles and loads; a refusal by the verifier fails the test with the listings and log.
fn load_compiled(prog: &[RawInsn], target: Target, verdicts: Verdicts) -> sys::Program {
    let compiled = compile(prog, target, verdicts)
        .unwrap_or_else(|e| panic!("{e}\n{}", bpftools::asm::disassemble(prog)));
    let kind = match target {
        Target::Xdp(_) => ProgramKind::Xdp,
        Target::SocketFilter => ProgramKind::SocketFilter,
    };
    sys::Program::load(kind, "bpfcmp", &compiled.insns).unwrap_or_else(|refusal| {
        panic!(
            "{refusal}\nclassic:\n{}\neBPF:\n{}",
            bpftools::asm::disassemble(prog),
            ebpf::disassemble(&compiled.insns)
        )
    })
}

/// Counts of a comparison, and the first disagreements in full.
#[derive(Default)]
struct Tally {
    programs: usize,
    /// Valid programs the compiler refuses (ancillary loads), not compared.
    refused: usize,
    /// Frames (whole or cut) sent through the kernel, each to both of its sockets.
    sent: usize,
    /// Of those, the ones whose network header the kernel put after a VLAN tag (sent a second
    /// time for the socket filter's view).
    tagged: usize,
    kernel_runs: usize,
    vm_runs: usize,
    xdp_runs: usize,
    /// XDP runs on a layout no kernel socket gives, against the VM only.
    xdp_runs_without_socket: usize,
    socket_runs: usize,
    /// Cut frames a socket filter's test run does not take (an IP header cut short).
    socket_untestable: usize,
    /// Runs the kernel's program kept (non-zero verdict) and dropped.
    kept: usize,
    dropped: usize,
    disagreements: usize,
    reports: Vec<String>,
}

impl Tally {
    fn summary(&self, name: &str, started: Instant) -> String {
        format!(
            "{name}: {} programs compared ({} refused for ancillary loads), {} frames sent \
             ({} tagged, sent twice); runs: kernel cBPF {}, VM {}, XDP {} (and {} on layouts no \
             socket gives, against the VM alone), socket filter {} ({} cut frames its test \
             run refuses); kernel kept {} and dropped {}; {} disagreements; {:.1} s",
            self.programs,
            self.refused,
            self.sent,
            self.tagged,
            self.kernel_runs,
            self.vm_runs,
            self.xdp_runs,
            self.xdp_runs_without_socket,
            self.socket_runs,
            self.socket_untestable,
            self.kept,
            self.dropped,
            self.disagreements,
            started.elapsed().as_secs_f64()
        )
    }

    fn assert_clean(&self, name: &str, started: Instant) {
        let summary = self.summary(name, started);
        eprintln!("{summary}");
        assert!(
            self.disagreements == 0,
            "{summary}\n\n{}",
            self.reports.join("\n\n")
        );
    }
}

/// A classic program under test: the VM's copy, the kernel's (attached to the tap), and its
/// compilations, loaded the first time a view needs them.
struct Subject<'p> {
    name: String,
    prog: &'p [RawInsn],
    vm: vm::Program,
    socket: sys::Program,
    xdp_verdicts: Vec<Verdicts>,
    xdp: HashMap<View, Vec<sys::Program>>,
    /// A layout no kernel socket gives (a header missing, offset 0 past the network header),
    /// compiled for XDP and compared with the VM only.
    without_socket: Option<(XdpLayout, Verdicts, sys::Program)>,
}

/// A packet as a report shows it.
struct Packet<'a> {
    origin: &'a str,
    bytes: &'a [u8],
    whole: usize,
}

impl<'p> Subject<'p> {
    /// `Err` when the compiler refuses the program (for a socket filter; XDP is asked later).
    fn new(
        name: String,
        prog: &'p [RawInsn],
        xdp_verdicts: Vec<Verdicts>,
        tap: &ClassicTap,
    ) -> Result<Subject<'p>, CompileError> {
        compile(prog, Target::SocketFilter, Verdicts::Value)?;
        let vm = vm::Program::new(prog, Profile::Socket).expect("a valid program");
        tap.attach(prog).unwrap_or_else(|e| {
            panic!(
                "SO_ATTACH_FILTER refuses a program the validator accepts ({e}):\n{}",
                bpftools::asm::disassemble(prog)
            )
        });
        Ok(Subject {
            name,
            prog,
            vm,
            socket: load_compiled(prog, Target::SocketFilter, Verdicts::Value),
            xdp_verdicts,
            xdp: HashMap::new(),
            without_socket: None,
        })
    }

    /// Also compiles the program at XDP for `layout`, which no kernel socket gives, to be
    /// compared with the VM alone.
    fn with_layout_without_socket(mut self, layout: XdpLayout, verdicts: Verdicts) -> Self {
        let program = load_compiled(self.prog, Target::Xdp(layout), verdicts);
        self.without_socket = Some((layout, verdicts, program));
        self
    }

    /// Runs `packet` through the kernel's classic program, the VM and the compiled programs,
    /// in every view; `network` is where its network header must be (a whole frame).
    fn check(
        &mut self,
        tap: &mut ClassicTap,
        packet: &Packet<'_>,
        network: Option<u32>,
        tally: &mut Tally,
    ) {
        let run = send(tap, packet, Header::Parsed, tally);
        if let Some(network) = network {
            assert_eq!(
                run.network, network as usize,
                "{}: the kernel's network header is not the capture's",
                packet.origin
            );
        }
        let n = run.network as u32;
        for (view, kernel) in [
            (
                View {
                    start: n,
                    network: n,
                },
                run.network_view,
            ),
            (
                View {
                    start: 0,
                    network: n,
                },
                run.link_view,
            ),
        ] {
            let verdict = self.vm.run_with(&view.input(packet.bytes));
            tally.vm_runs += 1;
            let (prog, verdicts) = (self.prog, &self.xdp_verdicts);
            let programs = self.xdp.entry(view).or_insert_with(|| {
                verdicts
                    .iter()
                    .map(|&v| load_compiled(prog, Target::Xdp(view.layout()), v))
                    .collect()
            });
            let compiled: Vec<(&str, u32, u32)> = verdicts
                .iter()
                .zip(programs.iter())
                .map(|(&v, program)| {
                    let got = program
                        .test_run(packet.bytes, 1)
                        .unwrap_or_else(|e| panic!("XDP test run, {}: {e}", packet.origin))
                        .retval;
                    (verdicts_name(v), got, v.of(verdict))
                })
                .collect();
            tally.xdp_runs += compiled.len();
            self.judge(
                tally,
                packet,
                view.layout(),
                verdict,
                Some(kernel),
                &compiled,
            );
        }
        // A socket filter's test run: the kernel's view from 14 bytes on.
        let kernel = if n == 14 {
            run.network_view
        } else {
            let ethertype =
                u16::from_be_bytes([packet.bytes[n as usize - 2], packet.bytes[n as usize - 1]]);
            tally.tagged += 1;
            let again = send(tap, packet, Header::AfterEthernet(ethertype), tally);
            assert_eq!(
                again.network, 14,
                "{}: sent with protocol {ethertype:#06x}, the network header is not after \
                 the Ethernet header",
                packet.origin
            );
            again.network_view
        };
        let view = View::SOCKET_TEST_RUN;
        let verdict = self.vm.run_with(&view.input(packet.bytes));
        tally.vm_runs += 1;
        match self.socket.test_run(packet.bytes, 1) {
            Ok(run) => {
                tally.socket_runs += 1;
                let compiled = [("socket filter", run.retval, verdict)];
                self.judge(
                    tally,
                    packet,
                    view.layout(),
                    verdict,
                    Some(kernel),
                    &compiled,
                );
            }
            // The kernel checks an IP header before running the program: a cut one can be
            // refused. The kernel's socket still ran the classic program.
            Err(e) if e.errno() == Some(libc::EINVAL) && packet.bytes.len() < packet.whole => {
                tally.socket_untestable += 1;
                self.judge(tally, packet, view.layout(), verdict, Some(kernel), &[]);
            }
            Err(e) => panic!("socket filter test run, {}: {e}", packet.origin),
        }
        if let Some((layout, verdicts, program)) = &self.without_socket {
            let verdict = self.vm.run_with(&vm_input(packet.bytes, *layout));
            tally.vm_runs += 1;
            let got = program
                .test_run(packet.bytes, 1)
                .unwrap_or_else(|e| panic!("XDP test run, {}: {e}", packet.origin))
                .retval;
            tally.xdp_runs_without_socket += 1;
            let compiled = [(verdicts_name(*verdicts), got, verdicts.of(verdict))];
            self.judge(tally, packet, *layout, verdict, None, &compiled);
        }
    }

    /// Counts one view of one packet; a disagreement is reported with the program, the packet
    /// and every verdict.
    /// `kernel`: what the kernel's socket kept (`None` inside: it dropped the packet), `None`
    /// for a layout no socket gives.
    fn judge(
        &self,
        tally: &mut Tally,
        packet: &Packet<'_>,
        layout: XdpLayout,
        verdict: u32,
        kernel: Option<Option<usize>>,
        compiled: &[(&str, u32, u32)],
    ) {
        let length = packet.bytes.len().saturating_sub(layout.base as usize);
        let kernel_expected = (verdict != 0).then(|| (verdict as usize).min(length));
        if let Some(kept) = kernel {
            tally.kernel_runs += 1;
            match kept {
                Some(_) => tally.kept += 1,
                None => tally.dropped += 1,
            }
        }
        if kernel.is_none_or(|kept| kept == kernel_expected)
            && compiled.iter().all(|(_, got, want)| got == want)
        {
            return;
        }
        tally.disagreements += 1;
        if tally.reports.len() >= 5 {
            return;
        }
        let kernel_text = match kernel {
            Some(Some(kept)) => format!("the kernel's cBPF kept {kept} of {length} bytes"),
            Some(None) => format!("the kernel's cBPF dropped the {length} bytes"),
            None => "no kernel socket has this view".to_string(),
        };
        let compiled_text: Vec<String> = compiled
            .iter()
            .map(|(what, got, want)| {
                format!(
                    "{what} returned {got}{}",
                    if got == want {
                        String::new()
                    } else {
                        format!(" (the VM's verdict gives {want})")
                    }
                )
            })
            .collect();
        tally.reports.push(format!(
            "program {}:\n{}packet {} ({} of {} bytes), offset 0 at byte {}, network header at \
             {:?}, link-layer header at {:?}:\n{}\nVM verdict {verdict}; {kernel_text}; {}",
            self.name,
            bpftools::asm::disassemble(self.prog),
            packet.origin,
            packet.bytes.len(),
            packet.whole,
            layout.base,
            layout.network,
            layout.link,
            hex::encode(packet.bytes),
            compiled_text.join("; ")
        ));
    }
}

/// Sends a packet through the kernel's tap; a failure of the tap fails the test.
fn send(
    tap: &mut ClassicTap,
    packet: &Packet<'_>,
    header: Header,
    tally: &mut Tally,
) -> ClassicRun {
    tally.sent += 1;
    tap.run(packet.bytes, header).unwrap_or_else(|e| {
        panic!(
            "the kernel's tap, {} ({} of {} bytes, {header:?}): {e}",
            packet.origin,
            packet.bytes.len(),
            packet.whole
        )
    })
}

/// The generators' programs for the testdata inputs (flood names of example.net), made for
/// the network header, both families.
fn generator_programs() -> Vec<(String, Vec<RawInsn>)> {
    let dns = |patterns: &[&str], ignore_case: bool| {
        Generator::Dns(DnsSpec {
            patterns: patterns.iter().map(|p| p.to_string()).collect(),
            ignore_case,
            ext_headers: DEFAULT_EXT_HEADERS,
        })
    };
    let generators = [
        dns(&["*.www.example.net"], false),
        dns(&["*.www.example.net"], true),
        dns(&["www.example.net"], true),
        dns(&["*.example.**"], false),
        dns(&["*.*.example.net", "example.net"], true),
        dns(&["**"], false),
        Generator::DnsValidate(DnsValidateSpec {
            strict: false,
            ext_headers: DEFAULT_EXT_HEADERS,
        }),
        Generator::DnsValidate(DnsValidateSpec {
            strict: true,
            ext_headers: DEFAULT_EXT_HEADERS,
        }),
        Generator::Suffix(SuffixSpec {
            bytes: vec![0x00, 0x01, 0x00, 0x01],
        }),
        Generator::Suffix(SuffixSpec {
            bytes: b"\x07example\x03net\x00".to_vec(),
        }),
    ];
    let mut out = Vec::new();
    for generator in &generators {
        for inet6 in [false, true] {
            for negate in [false, true] {
                let opts = GenOptions {
                    inet6,
                    negate,
                    offset: 0,
                };
                let generated = build(generator, &opts).expect("generator");
                let name = format!(
                    "{} {:?}{}{}",
                    generator.name(),
                    generator.args(),
                    if inet6 { " -6" } else { "" },
                    if negate { " --negate" } else { "" }
                );
                out.push((name, generated.insns));
            }
        }
    }
    out
}

#[test]
#[ignore = "needs root (bpf(2), BPF_PROG_TEST_RUN, network namespace, AF_PACKET)"]
fn generator_programs_compiled_give_the_kernels_and_the_vms_verdicts_on_every_frame() {
    require_root("bpf(2), BPF_PROG_TEST_RUN, network namespace, AF_PACKET");
    sys::raise_memlock().expect("RLIMIT_MEMLOCK");
    let started = Instant::now();
    let frames = captured_frames();
    assert!(frames.len() > 10_000, "only {} frames", frames.len());
    let programs = generator_programs();
    let tally = in_veth_namespace("ebpf-gen", || {
        let mut tap = ClassicTap::new().expect("the kernel's tap");
        let mut tally = Tally::default();
        for (name, prog) in &programs {
            let verdicts = vec![Verdicts::Value, Verdicts::XDP_DROP_MATCHED];
            let mut subject = Subject::new(name.clone(), prog, verdicts, &tap)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            tally.programs += 1;
            for frame in &frames {
                let packet = Packet {
                    origin: &frame.origin,
                    bytes: &frame.bytes,
                    whole: frame.bytes.len(),
                };
                subject.check(&mut tap, &packet, Some(frame.network), &mut tally);
            }
        }
        tally
    });
    tally.assert_clean("generator programs", started);
    assert_eq!(tally.programs, programs.len());
    assert_eq!(tally.socket_untestable, 0);
    assert!(tally.tagged > 1000, "only {} tagged frames", tally.tagged);
    // Every frame of every program in three views, and runs both kept and dropped.
    assert!(tally.kernel_runs >= 3 * programs.len() * frames.len());
    assert!(
        tally.kept > 100_000 && tally.dropped > 100_000,
        "too one-sided to say anything: {} kept, {} dropped",
        tally.kept,
        tally.dropped
    );
}

/// The random valid programs compared; programs the compiler refuses come on top.
const RANDOM_PROGRAMS: usize = 10_000;
/// The frames each random program is run on: a seeded sample of every capture's, one in five
/// cut short.
const FRAMES_PER_PROGRAM: usize = 128;

#[test]
#[ignore = "needs root (bpf(2), BPF_PROG_TEST_RUN, network namespace, AF_PACKET)"]
fn random_programs_compiled_give_the_kernels_and_the_vms_verdicts_on_real_frames() {
    require_root("bpf(2), BPF_PROG_TEST_RUN, network namespace, AF_PACKET");
    sys::raise_memlock().expect("RLIMIT_MEMLOCK");
    let started = Instant::now();
    let frames = captured_frames();
    let tally = in_veth_namespace("ebpf-rand", || {
        let mut tap = ClassicTap::new().expect("the kernel's tap");
        let mut tally = Tally::default();
        let mut rng = Rng::new(0x5eed_eb9f);
        let mut case = 0;
        while tally.programs < RANDOM_PROGRAMS {
            case += 1;
            let ancillary = rng.chance(20);
            let prog = program(
                &mut rng,
                Mix {
                    invalid: false,
                    ancillary,
                },
            );
            if validate(&prog, Profile::Socket).is_err() {
                continue;
            }
            let verdicts = vec![
                Verdicts::Value,
                Verdicts::Map {
                    matched: rng.pick(&[XDP_DROP, XDP_TX]),
                    unmatched: XDP_PASS,
                },
            ];
            let subject = match Subject::new(format!("random case {case}"), &prog, verdicts, &tap) {
                Ok(subject) => subject,
                Err(CompileError::Unsupported { .. }) => {
                    tally.refused += 1;
                    continue;
                }
                Err(other) => panic!("{other}\n{}", bpftools::asm::disassemble(&prog)),
            };
            // Offset 0 anywhere, headers missing: what the kernel's sockets cannot show.
            let base = rng.pick(&[0u32, 14, 18, 42]);
            let layout = XdpLayout {
                base,
                network: rng.pick(&[None, Some(14), Some(base)]),
                link: rng.pick(&[None, Some(0)]),
            };
            let verdicts = rng.pick(&[Verdicts::Value, Verdicts::XDP_DROP_MATCHED]);
            let mut subject = subject.with_layout_without_socket(layout, verdicts);
            tally.programs += 1;
            for _ in 0..FRAMES_PER_PROGRAM {
                let frame = &frames[rng.below(frames.len() as u64) as usize];
                let whole = frame.bytes.len();
                let cut = if rng.chance(20) {
                    14 + rng.below((whole - 13) as u64) as usize
                } else {
                    whole
                };
                let packet = Packet {
                    origin: &frame.origin,
                    bytes: &frame.bytes[..cut],
                    whole,
                };
                let network = (cut == whole).then_some(frame.network);
                subject.check(&mut tap, &packet, network, &mut tally);
            }
        }
        tally
    });
    tally.assert_clean("random programs", started);
    assert!(tally.programs >= RANDOM_PROGRAMS);
    assert!(
        tally.refused > 0,
        "no program with an ancillary load was tried"
    );
    assert!(
        tally.kept > 10_000 && tally.dropped > 10_000,
        "too one-sided to say anything: {} kept, {} dropped",
        tally.kept,
        tally.dropped
    );
}

#[test]
fn ancillary_loads_are_refused_naming_the_instruction() {
    let prog = bpftools::asm::assemble("ldh [12]\nld #proto\nret a").unwrap();
    for target in [Target::Xdp(XdpLayout::ethernet(14)), Target::SocketFilter] {
        let err = compile(&prog, target, Verdicts::Value).unwrap_err();
        match &err {
            CompileError::Unsupported { pc, text, .. } => {
                assert_eq!(*pc, 1);
                assert_eq!(text, "ld #proto");
            }
            other => panic!("{other:?}"),
        }
        assert!(
            err.to_string().starts_with("instruction 1 (`ld #proto`)"),
            "{err}"
        );
    }
    // A program the validator refuses is refused with its reasons.
    let bad = [RawInsn::new(0x06, 0, 0, 0), RawInsn::new(0x0e, 0, 0, 0)];
    assert!(matches!(
        compile(&bad, Target::SocketFilter, Verdicts::Value),
        Err(CompileError::Invalid(_))
    ));
}

#[test]
fn every_random_valid_program_compiles_or_is_refused_for_an_ancillary_load() {
    let mut rng = Rng::new(0x5eed_eb00);
    let (mut compiled, mut refused) = (0, 0);
    while compiled + refused < 3000 {
        let prog = program(
            &mut rng,
            Mix {
                invalid: false,
                ancillary: true,
            },
        );
        if validate(&prog, Profile::Socket).is_err() {
            continue;
        }
        for target in [Target::Xdp(XdpLayout::ethernet(14)), Target::SocketFilter] {
            match compile(&prog, target, Verdicts::XDP_DROP_MATCHED) {
                Ok(out) => {
                    compiled += 1;
                    // Ends with a return, and every classic instruction kept has a start.
                    assert_eq!(out.insns.last(), Some(&ebpf::Insn::exit()));
                    assert!(out.starts[0].is_some());
                }
                Err(CompileError::Unsupported { .. }) => refused += 1,
                Err(other) => panic!("{other}\n{}", bpftools::asm::disassemble(&prog)),
            }
        }
    }
    assert!(
        compiled > 2000 && refused > 50,
        "{compiled} compiled, {refused} refused"
    );
}
