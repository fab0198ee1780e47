//! Integration tests: one test binary driving the built tools and the library with real inputs.

mod asm;
mod bpf_asm;
mod capture;
mod common;
mod contracts;
mod core;
mod dns;
mod dns_simple_dns;
mod ebpf;
mod ebpf_classic;
mod ebpf_match;
mod ebpf_skb;
mod ebpf_sys;
mod gen;
mod iptables;
mod kernel;
mod libpcap;
mod p0f;
mod packets;
mod pipe;
mod randprog;
mod rng;
mod stdout;
mod support;
mod triage;
mod xdp_bpf;
