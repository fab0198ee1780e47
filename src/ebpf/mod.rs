//! eBPF: the instruction model and its encoding, a disassembler, and the compiler from
//! classic BPF.
//!
//! - [`insn`]: the 8-byte instruction (`struct bpf_insn`), the 16-byte `lddw`, the opcode's
//!   parts as types and constants, bytes in and out;
//! - [`disasm`]: listings in the style of `bpftool prog dump xlated` and the kernel's verifier
//!   log, for `-s`-style output and error messages;
//! - [`compile`](mod@compile): a classic program the validator accepts -> an eBPF program with the kernel's
//!   classic semantics, for XDP (direct packet access, every load bounds-checked where the
//!   verifier can see it) or a socket filter;
//! - [`matcher`]: the native DNS matcher, one XDP program for any number of `dns` patterns
//!   deciding by map lookups (and the same matcher as a socket filter for `iptables -m bpf
//!   --object-pinned`), and the map contents for a rule list.
//! - [`classic`]: the rules the matcher's maps cannot express, compiled classic programs
//!   reached by tail calls from the matcher and from one another.
//! - [`deploy`]: deployments at XDP (what `xdp-bpf` runs): generations pinned under bpffs,
//!   their rule lists, apply/change/status/delete under a lock, and the test of a capture
//!   against the VM's reference ([`deploy::check`]).
//! - [`sys`]: bpf(2) and rtnetlink through libc: maps, loading with the verifier's log,
//!   test runs, bpffs pins, attaching at XDP.
//!
//! Rules kept here: only [`sys`] calls the kernel (it is the library's one module allowed
//! `unsafe`); compiled programs are proven equal to the VM and to the kernel's own cBPF
//! (`SO_ATTACH_FILTER`) by running them on real packets with `BPF_PROG_TEST_RUN`
//! (tests/it/ebpf.rs).
//! Nothing here parses command lines or prints.

pub mod classic;
pub mod compile;
pub mod deploy;
pub mod disasm;
pub mod insn;
pub mod matcher;
#[allow(unsafe_code)]
pub mod sys;

pub use compile::{compile, CompileError, Compiled, Target, Verdicts, XdpLayout};
pub use disasm::disassemble;
pub use insn::{Insn, Reg};
