//! The cBPF -> eBPF compiler proven against the VM in the running kernel.
//!
//! The loader below calls bpf(2) through libc (no libbpf): `BPF_PROG_LOAD` with the
//! verifier's log returned on refusal, RLIMIT_MEMLOCK raised first, and `BPF_PROG_TEST_RUN`
//! to run a loaded program on one packet. It lives in the tests because the library forbids
//! `unsafe` and has libc only as a test dependency.
//!
//! Root only (ignored unless asked for, failing without root): every program the generators
//! make for the testdata inputs and 2,000 random valid classic programs, compiled for XDP
//! (and for socket filters), are run on the real packets of testdata/captures and must give
//! exactly the VM's verdict (through the XDP mapping: non-zero -> XDP_DROP, 0 -> XDP_PASS).
//! Without root: the compiler's refusals and shape.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use bpftools::ebpf::compile::{XDP_DROP, XDP_PASS};
use bpftools::ebpf::{self, compile, CompileError, Target, Verdicts, XdpLayout};
use bpftools::gen::{
    build, DnsSpec, DnsValidateSpec, GenOptions, Generator, SuffixSpec, DEFAULT_EXT_HEADERS,
};
use bpftools::insn::RawInsn;
use bpftools::pcap::link::{network_header, to_ethernet, LINKTYPE_ETHERNET};
use bpftools::vm::{validate, Context, Input, Profile, Program};

use crate::common::{capture, require_root, CAPTURES};
use crate::randprog::{program, Mix};
use crate::rng::Rng;

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_PROG_TYPE_SOCKET_FILTER: u32 = 1;
pub(crate) const BPF_PROG_TYPE_XDP: u32 = 6;

/// `union bpf_attr` for `BPF_PROG_LOAD`, up to `expected_attach_type`.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `union bpf_attr` for `BPF_PROG_TEST_RUN`.
#[repr(C)]
#[derive(Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    _pad: u32,
}

pub(crate) fn sys_bpf<T>(cmd: libc::c_long, attr: &mut T) -> libc::c_long {
    // SAFETY: attr is a live, initialised bpf_attr prefix of the size passed; every pointer in
    // it refers to memory the caller keeps alive across the call.
    unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>(),
        )
    }
}

/// Raises RLIMIT_MEMLOCK's soft limit to its hard limit when it is lower (kernels before 5.11
/// charge BPF programs to it; later ones to the memory cgroup, and the call is harmless).
pub(crate) fn raise_memlock() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a live rlimit is passed by pointer for getrlimit to fill.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) };
    assert_eq!(
        rc,
        0,
        "getrlimit(RLIMIT_MEMLOCK): {}",
        io::Error::last_os_error()
    );
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: a live rlimit is passed by pointer; setrlimit only reads it.
        let rc = unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &limit) };
        assert_eq!(
            rc,
            0,
            "setrlimit(RLIMIT_MEMLOCK): {}",
            io::Error::last_os_error()
        );
    }
}

/// A refusal by `BPF_PROG_LOAD`: the error and the verifier's log.
#[derive(Debug)]
pub(crate) struct LoadError {
    pub(crate) error: io::Error,
    pub(crate) log: String,
}

/// Loads `prog` as `prog_type`; on refusal, loads again with the verifier's log on.
pub(crate) fn load(prog_type: u32, prog: &[ebpf::Insn]) -> Result<OwnedFd, LoadError> {
    let bytes = ebpf::insn::encode(prog);
    let license = b"GPL\0";
    let attempt = |log: Option<&mut Vec<u8>>| {
        let mut attr = ProgLoadAttr {
            prog_type,
            insn_cnt: prog.len() as u32,
            insns: bytes.as_ptr() as u64,
            license: license.as_ptr() as u64,
            ..ProgLoadAttr::default()
        };
        attr.prog_name[..6].copy_from_slice(b"bpfcmp");
        if let Some(log) = log {
            attr.log_level = 1;
            attr.log_size = log.len() as u32;
            attr.log_buf = log.as_mut_ptr() as u64;
        }
        let fd = sys_bpf(BPF_PROG_LOAD, &mut attr);
        if fd < 0 {
            Err(io::Error::last_os_error())
        } else {
            // SAFETY: the kernel returned a new file descriptor that nothing else owns.
            Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
        }
    };
    attempt(None).map_err(|error| {
        let mut log = vec![0u8; 4 << 20];
        let _ = attempt(Some(&mut log));
        let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
        LoadError {
            error,
            log: String::from_utf8_lossy(&log[..end]).into_owned(),
        }
    })
}

/// Runs a loaded program once on `packet`; its return value.
pub(crate) fn test_run(fd: &OwnedFd, packet: &[u8]) -> io::Result<u32> {
    let mut attr = TestRunAttr {
        prog_fd: fd.as_raw_fd() as u32,
        data_size_in: packet.len() as u32,
        data_in: packet.as_ptr() as u64,
        repeat: 1,
        ..TestRunAttr::default()
    };
    if sys_bpf(BPF_PROG_TEST_RUN, &mut attr) < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(attr.retval)
}

/// Compiles and loads; a refusal by the verifier fails the test with the listing and log.
fn compile_and_load(prog: &[RawInsn], target: Target, verdicts: Verdicts) -> OwnedFd {
    let compiled = compile(prog, target, verdicts).expect("compiles");
    let prog_type = match target {
        Target::Xdp(_) => BPF_PROG_TYPE_XDP,
        Target::SocketFilter => BPF_PROG_TYPE_SOCKET_FILTER,
    };
    load(prog_type, &compiled.insns).unwrap_or_else(|refusal| {
        panic!(
            "verifier refused ({}):\n{}\nclassic:\n{}\neBPF:\n{}",
            refusal.error,
            refusal.log,
            bpftools::asm::disassemble(prog),
            ebpf::disassemble(&compiled.insns)
        )
    })
}

/// One real packet as plain Ethernet and where its network header is.
pub(crate) struct Frame {
    pub(crate) origin: String,
    pub(crate) bytes: Vec<u8>,
    pub(crate) network: u32,
}

/// Every packet of every capture, as Ethernet (cooked captures through the one conversion),
/// without frame check sequences; those XDP's test run cannot take (under 14 bytes, over 3000)
/// are left out.
pub(crate) fn frames() -> Vec<Frame> {
    let mut out = Vec::new();
    for name in CAPTURES {
        let file = File::open(capture(name)).expect("capture");
        let mut reader = bpftools::pcap::Reader::new(file).expect("reader");
        while let Some(packet) = reader.next_packet().expect("packet") {
            let data = &packet.data[..packet.data.len() - packet.fcs_len as usize];
            let mut bytes = Vec::new();
            if !to_ethernet(packet.linktype, data, &mut bytes) {
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

/// The XDP layout of a frame: the program's offset 0 at its network header.
fn layout(frame: &Frame) -> XdpLayout {
    XdpLayout {
        base: frame.network,
        network: Some(frame.network),
        link: Some(0),
    }
}

/// The VM's input for a frame seen through `layout`: `#len` is what XDP sees from the base.
fn vm_input<'a>(bytes: &'a [u8], layout: &XdpLayout) -> Input<'a> {
    Input {
        frame: bytes,
        start: layout.base as usize,
        net: layout.network.map(|n| n as usize),
        link: layout.link.map(|l| l as usize),
        wire_len: (bytes.len() as u32).saturating_sub(layout.base),
        ctx: Context::default(),
    }
}

/// The socket filter's view in a test run: the skb starts after the 14-byte Ethernet header.
fn socket_input(bytes: &[u8]) -> Input<'_> {
    vm_input(bytes, &XdpLayout::ethernet(14))
}

/// Counts and the first disagreements of a comparison.
#[derive(Default)]
struct Tally {
    programs: usize,
    runs: usize,
    matched: usize,
    disagreements: Vec<String>,
}

impl Tally {
    fn check(&mut self, what: impl FnOnce() -> String, kernel: u32, expected: u32) {
        self.runs += 1;
        if kernel != expected {
            if self.disagreements.len() < 5 {
                self.disagreements
                    .push(format!("{}: kernel {kernel}, VM says {expected}", what()));
            } else {
                self.disagreements.push(String::new());
            }
        }
    }

    fn assert_clean(&self, name: &str) {
        eprintln!(
            "{name}: {} programs, {} runs ({} matched), {} disagreements",
            self.programs,
            self.runs,
            self.matched,
            self.disagreements.len()
        );
        assert!(
            self.disagreements.is_empty(),
            "{}",
            self.disagreements[..self.disagreements.len().min(5)].join("\n")
        );
    }
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
#[ignore = "needs root (bpf(2), BPF_PROG_TEST_RUN)"]
fn generator_programs_compiled_for_xdp_give_the_vms_verdicts_on_every_capture() {
    require_root("bpf(2), BPF_PROG_TEST_RUN");
    raise_memlock();
    let frames = frames();
    assert!(frames.len() > 10_000, "only {} frames", frames.len());
    let mut xdp = Tally::default();
    let mut exact = Tally::default();
    let mut socket = Tally::default();
    for (name, prog) in generator_programs() {
        let vm = Program::new(&prog, Profile::Socket).expect("valid");
        let mut fds: HashMap<u32, (OwnedFd, OwnedFd)> = HashMap::new();
        let socket_fd = compile_and_load(&prog, Target::SocketFilter, Verdicts::Value);
        for frame in &frames {
            let layout = layout(frame);
            let (mapped, value) = fds.entry(layout.base).or_insert_with(|| {
                (
                    compile_and_load(&prog, Target::Xdp(layout), Verdicts::XDP_DROP_MATCHED),
                    compile_and_load(&prog, Target::Xdp(layout), Verdicts::Value),
                )
            });
            let verdict = vm.run_with(&vm_input(&frame.bytes, &layout));
            xdp.matched += usize::from(verdict != 0);
            let what = || format!("{name} on {}", frame.origin);
            let got = test_run(mapped, &frame.bytes).expect("test run");
            xdp.check(what, got, Verdicts::XDP_DROP_MATCHED.of(verdict));
            let got = test_run(value, &frame.bytes).expect("test run");
            exact.matched += usize::from(verdict != 0);
            exact.check(what, got, verdict);
            let verdict = vm.run_with(&socket_input(&frame.bytes));
            socket.matched += usize::from(verdict != 0);
            let got = test_run(&socket_fd, &frame.bytes).expect("test run");
            socket.check(what, got, verdict);
        }
        xdp.programs += 1;
        exact.programs += 1;
        socket.programs += 1;
    }
    xdp.assert_clean("generators at XDP (drop/pass)");
    exact.assert_clean("generators at XDP (verdict values)");
    socket.assert_clean("generators as socket filters");
    assert!(
        xdp.matched > 1000,
        "too few matches ({}) to say anything",
        xdp.matched
    );
}

#[test]
#[ignore = "needs root (bpf(2), BPF_PROG_TEST_RUN)"]
fn random_programs_compiled_for_xdp_give_the_vms_verdicts_on_real_packets() {
    require_root("bpf(2), BPF_PROG_TEST_RUN");
    raise_memlock();
    let frames = frames();
    let mut rng = Rng::new(0x5eed_eb9f);
    let mut xdp = Tally::default();
    let mut socket = Tally::default();
    let mut refused = 0;
    while xdp.programs < 2_000 {
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
        let vm = Program::new(&prog, Profile::Socket).expect("valid");
        // The packets: a random sample of every capture's, whole or cut short.
        let sample: Vec<(usize, usize)> = (0..24)
            .map(|_| {
                let frame = rng.below(frames.len() as u64) as usize;
                let len = frames[frame].bytes.len();
                let cut = if rng.chance(20) {
                    14 + rng.below((len - 13) as u64) as usize
                } else {
                    len
                };
                (frame, cut)
            })
            .collect();
        let base = rng.pick(&[0u32, 14, 14, 14, 18, 42]);
        let layout = XdpLayout {
            base,
            network: rng.pick(&[Some(14), None, Some(base)]),
            link: rng.pick(&[Some(0), None]),
        };
        let verdicts = Verdicts::Map {
            matched: rng.pick(&[XDP_DROP, 3]),
            unmatched: XDP_PASS,
        };
        match compile(&prog, Target::Xdp(layout), verdicts) {
            Err(CompileError::Unsupported { .. }) => {
                refused += 1;
                continue;
            }
            Err(other) => panic!("{other}\n{}", bpftools::asm::disassemble(&prog)),
            Ok(_) => {}
        }
        let fd = compile_and_load(&prog, Target::Xdp(layout), verdicts);
        let socket_fd = compile_and_load(&prog, Target::SocketFilter, Verdicts::Value);
        xdp.programs += 1;
        socket.programs += 1;
        for (frame, cut) in sample {
            let bytes = &frames[frame].bytes[..cut];
            let what = || {
                format!(
                    "{} (first {cut} bytes), layout {layout:?}\n{}",
                    frames[frame].origin,
                    bpftools::asm::disassemble(&prog)
                )
            };
            let verdict = vm.run_with(&vm_input(bytes, &layout));
            xdp.matched += usize::from(verdict != 0);
            let got = test_run(&fd, bytes).expect("test run");
            xdp.check(what, got, verdicts.of(verdict));
            // A socket filter's test run refuses an IP header cut short (EINVAL): whole
            // frames only.
            if cut == frames[frame].bytes.len() {
                let verdict = vm.run_with(&socket_input(bytes));
                socket.matched += usize::from(verdict != 0);
                let got = test_run(&socket_fd, bytes).expect("test run");
                socket.check(what, got, verdict);
            }
        }
    }
    eprintln!("random programs: {refused} refused (ancillary loads)");
    xdp.assert_clean("random programs at XDP");
    socket.assert_clean("random programs as socket filters");
    assert!(refused > 0, "no ancillary program was tried");
    assert!(
        xdp.matched > 1000,
        "too few matches ({}) to say anything",
        xdp.matched
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
