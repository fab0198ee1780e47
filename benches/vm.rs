//! Interpreter speed: ns per packet over the real Ethernet capture
//! testdata/captures/eth-flood-v4.pcap (6032 packets, each run many times), for
//! - the DNS-matching program of the flood scenario (`bpfgen -o 14 dns -- '*.www.example.net'`),
//! - the original bpftools' bytecode for the same pattern,
//! - a three-pattern `dns` program, `dns_validate`, and tcpdump's `udp dst port 53`.
//!
//! Inputs go through `black_box` so nothing is hoisted out of the loop. Two figures per program:
//! wall-clock time, and the time the thread spent on a CPU (from /proc/thread-self/schedstat,
//! Linux), which stays meaningful when other work shares the machine.
//!
//! Run: `cargo bench --bench vm`. Arguments: words a program's name must contain to run
//! (`cargo bench --bench vm -- flood`); `BENCH_ROUNDS=N` sets the rounds (1000), e.g. to count
//! instructions per packet with `valgrind --tool=callgrind`, which is repeatable on a busy
//! machine where times are not.

use std::hint::black_box;
use std::time::Instant;

use bpftools::asm::parse_bytecode;
use bpftools::gen::{build, DnsSpec, DnsValidateSpec, GenOptions, Generator, DEFAULT_EXT_HEADERS};
use bpftools::insn::RawInsn;
use bpftools::pcap::Reader;
use bpftools::vm::{Input, Profile, Program};

/// Nanoseconds this thread has run on a CPU, if the kernel says.
fn cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

fn dns(patterns: &[&str]) -> Vec<RawInsn> {
    build(
        &Generator::Dns(DnsSpec {
            patterns: patterns.iter().map(|p| p.to_string()).collect(),
            ignore_case: false,
            ext_headers: DEFAULT_EXT_HEADERS,
        }),
        &GenOptions {
            offset: 14,
            ..GenOptions::default()
        },
    )
    .expect("generate")
    .insns
}

fn main() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/testdata/captures/eth-flood-v4.pcap"
    );
    let mut reader = Reader::new(std::fs::File::open(path).expect("capture")).expect("pcap");
    let mut frames = Vec::new();
    while let Some(packet) = reader.next_packet().expect("packet") {
        frames.push(packet.data.to_vec());
    }
    let validate = build(
        &Generator::DnsValidate(DnsValidateSpec {
            strict: false,
            ext_headers: DEFAULT_EXT_HEADERS,
        }),
        &GenOptions {
            offset: 14,
            ..GenOptions::default()
        },
    )
    .expect("generate")
    .insns;
    // The original bpftools' output for `-o 14 dns -- *.www.example.net` (its -o 14 program is
    // its offset-0 program with 14 added to the first two constants).
    let original = parse_bytecode("20,177 0 0 14,0 0 0 34,12 0 0 0,7 0 0 0,80 0 0 0,12 0 0 0,4 0 0 1,7 0 0 0,64 0 0 0,21 0 9 58161015,64 0 0 4,21 0 7 124090465,64 0 0 8,21 0 5 1836084325,64 0 0 12,21 0 3 57566580,80 0 0 16,21 0 1 0,6 0 0 65535,6 0 0 0,").expect("bytecode");
    // `tcpdump -ddd -y EN10MB 'udp dst port 53'` (tcpdump 4.99, libpcap 1.10).
    let tcpdump = parse_bytecode("16,40 0 0 12,21 0 4 34525,48 0 0 20,21 0 11 17,40 0 0 56,21 8 9 53,21 0 8 2048,48 0 0 23,21 0 6 17,40 0 0 20,69 4 0 8191,177 0 0 14,72 0 0 16,21 0 1 53,6 0 0 262144,6 0 0 0,").expect("bytecode");
    let programs = [
        (
            "flood: dns '*.www.example.net'",
            dns(&["*.www.example.net"]),
        ),
        ("original bpftools, same pattern", original),
        (
            "dns, 3 patterns (match the last)",
            dns(&[
                "*.www.example.org",
                "*.www.example.com",
                "*.www.example.net",
            ]),
        ),
        ("dns_validate", validate),
        ("tcpdump 'udp dst port 53'", tcpdump),
    ];
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    // cargo bench passes --bench; other arguments select programs by name.
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    for (name, prog) in programs {
        if !wanted.iter().all(|w| name.contains(w.as_str())) {
            continue;
        }
        let program = Program::new(&prog, Profile::Socket).expect("valid");
        let inputs: Vec<Input> = frames
            .iter()
            .map(|frame| Input {
                frame,
                start: 0,
                net: Some(14),
                link: Some(0),
                wire_len: frame.len() as u32,
                ctx: Default::default(),
            })
            .collect();
        let mut matched = 0u64;
        let cpu_start = cpu_ns();
        let start = Instant::now();
        for _ in 0..rounds {
            for input in &inputs {
                if black_box(&program).run_with(black_box(input)) != 0 {
                    matched += 1;
                }
            }
        }
        let elapsed = start.elapsed();
        let cpu = cpu_start.zip(cpu_ns()).map(|(from, to)| to - from);
        let runs = (rounds * frames.len()) as f64;
        let cpu_text = match cpu {
            Some(ns) => format!("{:.1} ns/packet on CPU", ns as f64 / runs),
            None => "CPU time unknown".to_string(),
        };
        println!(
            "{name}: {} instructions, {cpu_text}, {:.1} ns/packet wall, matched {} of {} per round",
            prog.len(),
            elapsed.as_nanos() as f64 / runs,
            matched / rounds as u64,
            frames.len()
        );
    }
}
