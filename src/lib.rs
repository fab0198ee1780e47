//! bpftools: classic BPF (cBPF) tools for fighting stateless packet floods, DNS first.
//!
//! The library behind the `pcap2hex`, `hex2pcap`, `parsedns`, `bpfgen`, `filter`,
//! `iptables-bpf` and `bpfasm` binaries:
//!
//! - [`insn`]: the instruction (`struct sock_filter`) and its decoded meaning;
//! - [`asm`]: `bpf_asm`-compatible assembler, disassembler, bytecode text formats, and the one
//!   label resolver that computes jump offsets;
//! - [`vm`]: validator with the Linux kernel's rules, interpreter with the kernel's run-time
//!   semantics, tracer;
//! - [`gen`]: program builder and generators (dns, dns_validate, suffix, tcpdump), iptables
//!   script rendering;
//! - [`pcap`]: pcap/pcapng reading, pcap writing, link-layer normalization;
//! - [`dns`]: DNS wire view;
//! - [`cli`]: what the binaries share (errors and exit codes, SIGPIPE, common arguments).
//!
//! Dependency direction: `insn` <- `asm`, `vm`, `gen` <- `cli` <- binaries.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod asm;
#[cfg(feature = "cli")]
pub mod cli;
pub mod dns;
pub mod gen;
pub mod insn;
pub mod pcap;
pub mod triage;
pub mod vm;
