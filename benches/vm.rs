//! Interpreter speed: ns per packet for the DNS-matching program of the flood scenario
//! (`bpfgen -o 14 dns -- '*.www.example.net'`) over the real Ethernet capture, compared in the
//! same run with the original bpftools' bytecode for the same pattern.
//!
//! Run: `cargo bench --bench vm` (reads testdata/captures/eth-flood-v4.pcap).

use std::hint::black_box;
use std::time::Instant;

use bpftools::asm::parse_bytecode;
use bpftools::gen::{build, DnsSpec, GenOptions, Generator, DEFAULT_EXT_HEADERS};
use bpftools::pcap::Reader;
use bpftools::vm::{Input, Profile, Program};

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
    let ours = build(
        &Generator::Dns(DnsSpec {
            patterns: vec!["*.www.example.net".to_string()],
            ignore_case: false,
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
    for (name, prog) in [("bpfgen program", ours), ("original program", original)] {
        let program = Program::new(&prog, Profile::Socket).expect("valid");
        let rounds = 400;
        let mut matched = 0u64;
        let start = Instant::now();
        for _ in 0..rounds {
            for frame in &frames {
                let input = Input {
                    frame,
                    start: 0,
                    net: Some(14),
                    link: Some(0),
                    wire_len: frame.len() as u32,
                    ctx: Default::default(),
                };
                if black_box(&program).run_with(black_box(&input)) != 0 {
                    matched += 1;
                }
            }
        }
        let elapsed = start.elapsed();
        let runs = (rounds * frames.len()) as f64;
        println!(
            "{name}: {} instructions, {:.1} ns/packet ({:.1} M packets/s), matched {} of {} per round",
            prog.len(),
            elapsed.as_nanos() as f64 / runs,
            runs / elapsed.as_secs_f64() / 1e6,
            matched / rounds as u64,
            frames.len()
        );
    }
}
