//! libpcap's interpreter as a second oracle.
//!
//! 400 random valid programs run over every packet of every capture in testdata/captures,
//! with libpcap's `bpf_filter` (through testdata/vm/libpcap_verdicts.c, compiled here with gcc)
//! and with our interpreter in libpcap's view (offset 0 = the link-layer header). Verdicts must
//! be identical, except where the kernel (which this project follows) and libpcap are known to
//! differ; each such difference is classified from the interpreter's trace and counted:
//! - an ancillary load (libpcap has no ancillary data and ends the program with 0);
//! - a load at a negative offset (SKF_NET_OFF / SKF_LL_OFF ranges; libpcap returns 0);
//! - a `[x + k]` load whose offset wraps past 2^32 (libpcap refuses it and returns 0);
//! - a shift by X >= 32 (the kernel uses X & 31, libpcap gives 0).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use bpftools::asm::{format_program, Format};
use bpftools::insn::{AluOp, Ancillary, Insn, Operand, RawInsn};
use bpftools::pcap::{link, Reader};
use bpftools::vm::{trace, validate, Context, Input, Profile, Program};

use crate::common::{capture, require, testdata, CAPTURES};
use crate::randprog::{program, Mix};
use crate::rng::Rng;

/// Compiles the libpcap helper; the test fails here, saying what to install, when it cannot.
fn build_helper() -> PathBuf {
    require("gcc", "gcc");
    let out =
        std::env::temp_dir().join(format!("bpftools-libpcap-verdicts-{}", std::process::id()));
    let source = testdata("vm/libpcap_verdicts.c");
    let build = Command::new("gcc")
        .arg("-O1")
        .arg("-o")
        .arg(&out)
        .arg(&source)
        .arg("-lpcap")
        .output()
        .expect("run gcc");
    assert!(
        build.status.success(),
        "cannot build {} against libpcap (Debian: apt-get install libpcap-dev):\n{}",
        source.display(),
        String::from_utf8_lossy(&build.stderr)
    );
    out
}

struct Frame {
    data: Vec<u8>,
    wire_len: u32,
    net: Option<usize>,
    ethertype: u16,
}

fn frames(name: &str) -> Vec<Frame> {
    let file = std::fs::File::open(capture(name)).expect("capture");
    let mut reader = Reader::new(file).expect("reader");
    let mut out = Vec::new();
    while let Some(packet) = reader.next_packet().expect("packet") {
        let net = link::network_header(packet.linktype, packet.data);
        out.push(Frame {
            data: packet.data.to_vec(),
            wire_len: packet.orig_len,
            net: net.map(|n| n.offset),
            ethertype: net.map_or(0, |n| n.ethertype),
        });
    }
    out
}

/// Why our verdict may differ from libpcap's on this run, if it may.
fn documented_difference(program: &Program, input: &Input<'_>) -> Option<&'static str> {
    let run = trace(program, input);
    for step in &run.steps {
        let insn = Insn::decode(program.insns()[step.pc]);
        match insn {
            Insn::LoadAbs { offset, .. } if Ancillary::from_offset(offset).is_some() => {
                return Some("ancillary load")
            }
            Insn::LoadAbs { offset, .. } | Insn::LoadXMsh(offset) if (offset as i32) < 0 => {
                return Some("negative offset")
            }
            Insn::LoadInd { offset, .. } => {
                let (sum, wrapped) = step.x.overflowing_add(offset);
                if wrapped {
                    return Some("[x + k] wraps");
                }
                if (sum as i32) < 0 {
                    return Some("negative offset");
                }
            }
            Insn::Alu {
                op: AluOp::Lsh | AluOp::Rsh,
                operand: Operand::X,
            } if step.x >= 32 => return Some("shift by X >= 32"),
            _ => {}
        }
    }
    None
}

#[test]
fn interpreter_agrees_with_libpcap_except_documented_differences() {
    let helper = build_helper();
    let mut rng = Rng::new(0x5eed_0003);
    let mut programs: Vec<Vec<RawInsn>> = Vec::new();
    while programs.len() < 400 {
        let prog = program(
            &mut rng,
            Mix {
                invalid: false,
                ancillary: programs.len().is_multiple_of(4),
            },
        );
        if validate(&prog, Profile::Socket).is_ok() {
            programs.push(prog);
        }
    }
    // Two programs that must show the shift difference on every packet: the kernel uses X & 31.
    for shift in [
        "ldx #33\nld #1\nlsh x\nret a\n",
        "ldx #40\nldh [12]\nrsh x\nadd #1\nret a\n",
    ] {
        programs.push(bpftools::asm::assemble(shift).unwrap());
    }
    let input_text: String = programs
        .iter()
        .map(|p| format_program(p, Format::Bytecode).replace(",\n", "\n"))
        .collect();
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    let mut compared = 0u64;
    let mut unexplained = Vec::new();
    for name in CAPTURES {
        let frames = frames(name);
        let mut child = Command::new(&helper)
            .arg(capture(name))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("helper");
        let mut stdin = child.stdin.take().unwrap();
        let text = input_text.clone();
        let writer = std::thread::spawn(move || stdin.write_all(text.as_bytes()));
        let output = child.wait_with_output().expect("helper output");
        writer.join().unwrap().expect("write programs");
        assert!(output.status.success(), "helper failed on {name}");
        let lines: Vec<&str> = std::str::from_utf8(&output.stdout)
            .unwrap()
            .lines()
            .collect();
        assert_eq!(lines.len(), programs.len(), "{name}");
        for (prog, line) in programs.iter().zip(lines) {
            let vm = Program::new(prog, Profile::Socket).unwrap();
            let theirs: Vec<u32> = line.split(' ').map(|v| v.parse().unwrap()).collect();
            assert_eq!(theirs.len(), frames.len(), "{name}");
            for (frame, their) in frames.iter().zip(theirs) {
                let input = Input {
                    frame: &frame.data,
                    start: 0,
                    net: frame.net,
                    link: Some(0),
                    wire_len: frame.wire_len,
                    ctx: Context {
                        protocol: frame.ethertype,
                        ..Context::default()
                    },
                };
                let ours = vm.run_with(&input);
                compared += 1;
                if ours == their {
                    continue;
                }
                match documented_difference(&vm, &input) {
                    Some(class) => *counts.entry(class).or_default() += 1,
                    None => unexplained.push(format!(
                        "{name}: ours {ours}, libpcap {their}\n{}",
                        bpftools::asm::disassemble(prog)
                    )),
                }
            }
        }
    }
    let _ = std::fs::remove_file(&helper);
    eprintln!("libpcap oracle: {compared} verdicts compared; documented differences: {counts:?}; unexplained: {}", unexplained.len());
    assert!(
        unexplained.is_empty(),
        "{}",
        unexplained[..unexplained.len().min(3)].join("\n")
    );
    assert!(compared > 1_000_000, "only {compared} verdicts compared");
    assert!(
        counts.get("shift by X >= 32").copied().unwrap_or(0) > 0,
        "the shift class was not exercised"
    );
}
