//! Any program that validates runs on any packet without panicking and terminates, and the
//! fast path (with superinstructions) and the tracer (one instruction at a time) agree on the
//! verdict and on why the run ended.
#![no_main]

use bpftools::insn::RawInsn;
use bpftools::vm::{Context, Input, Profile, Program};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // First byte: instruction count; then 8 bytes per instruction; the rest is the packet.
    let Some((&count, rest)) = data.split_first() else {
        return;
    };
    let count = usize::from(count) + 1;
    if rest.len() < count * 8 {
        return;
    }
    let (code, packet) = rest.split_at(count * 8);
    let prog: Vec<RawInsn> = code
        .chunks_exact(8)
        .map(|c| {
            RawInsn::new(
                u16::from_le_bytes([c[0], c[1]]),
                c[2],
                c[3],
                u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
            )
        })
        .collect();
    if let Ok(program) = Program::new(&prog, Profile::Socket) {
        let start = packet
            .first()
            .map_or(0, |b| usize::from(*b) % (packet.len() + 1));
        let input = Input {
            frame: packet,
            start,
            net: Some(start),
            link: Some(0),
            wire_len: packet.len() as u32,
            ctx: Context::default(),
        };
        let outcome = program.run_explained(&input);
        let trace = bpftools::vm::trace(&program, &input);
        assert_eq!((trace.verdict, trace.exit), outcome);
    }
});
