//! bpftools: classic BPF (cBPF) tools for fighting stateless packet floods, DNS first.
//!
//! The library behind nine command-line tools: `pcap2hex` and `hex2pcap` (captures to hex
//! lines and back), `parsedns` (a packet layer by layer), `offset` (where bytes sit in
//! packets), `bpfgen` (generate a program), `filter` (run one over a capture, as the kernel
//! would), `iptables-bpf` (deploy with xt_bpf), `bpfasm` (assemble, disassemble, check,
//! trace) and `triage` (from a flood's capture to the rules that stop it, their cost counted).
//!
//! - [`insn`]: the instruction (`struct sock_filter`) and its decoded meaning;
//! - [`asm`]: `bpf_asm`-compatible assembler, disassembler, bytecode text formats, and the one
//!   label resolver that computes jump offsets;
//! - [`vm`]: validator with the Linux kernel's rules, interpreter with the kernel's run-time
//!   semantics, tracer;
//! - [`gen`]: program builder and generators (dns, dns_validate, suffix, tcpdump, p0f),
//!   iptables script rendering;
//! - [`pcap`]: pcap/pcapng reading, pcap writing; link types, the cooked (SLL, SLL2) header
//!   views and normalization ([`pcap::link`]); hex lines, their errors and telling them from
//!   a capture ([`pcap::hex`]); anonymization ([`pcap::scrub`]);
//! - [`dns`]: DNS wire view, and the layer-by-layer dissection `parsedns` prints
//!   ([`dns::dissect`]);
//! - [`triage`]: capture -> floods -> rules, measured by the VM, one typed report;
//! - [`ebpf`]: the eBPF instruction model, its encoding and disassembly, the compiler from
//!   validated cBPF to verifier-safe eBPF (XDP or socket filter) with cBPF's semantics, the
//!   native DNS matcher (one XDP program, rules in maps), the classic rules it reaches by
//!   tail calls, deployments at XDP ([`ebpf::deploy`], what `xdp-bpf` runs), and
//!   bpf(2)/rtnetlink calls ([`ebpf::sys`], the one module allowed `unsafe`);
//! - `cli` (with the default feature `cli`): what the binaries share (errors and exit codes,
//!   SIGPIPE, common arguments) and one module per tool; clap lives only there, so a library
//!   user who turns the feature off gets no argument parser.
//!
//! Dependency direction: `insn` <- `asm`, `vm`, `gen`, `ebpf` <- `triage` <- `cli` <- binaries, with
//! `pcap` and `dns` read wherever packets are. No module but `cli` parses command lines or
//! writes to a terminal.

#![warn(missing_docs)]
#![deny(unsafe_code)]

pub mod asm;
#[cfg(feature = "cli")]
pub mod cli;
pub mod dns;
pub mod ebpf;
pub mod gen;
pub mod insn;
pub mod pcap;
pub mod triage;
pub mod vm;
