//! Tests of the interpreter as a whole: the fast path (with the superinstructions of
//! [`crate::vm::fuse`]) against the tracer (one instruction at a time) on generated programs.

use crate::vm::Exit;

/// proptest's deterministic generator, so a failure can be replayed.
struct Rng(proptest::test_runner::TestRng);

impl Rng {
    fn next(&mut self) -> u64 {
        proptest::prelude::Rng::next_u64(&mut self.0)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Jump targets while a program is built: the next instruction or one of the exits.
#[derive(Clone, Copy)]
enum To {
    Next,
    Exit(usize),
}

/// A program made of the idioms the superinstructions stand for (checks with masks and
/// several jumps, runs of checks on one base, `add x; add #k; tax`, the step over a DNS
/// label), with constants taken from `packet` often enough that runs get far, and exits
/// that read A or not.
fn idiom_program(rng: &mut Rng, packet: &[u8]) -> Vec<crate::insn::RawInsn> {
    use crate::insn::RawInsn;
    let value_at = |at: usize, n: usize| {
        (0..n).fold(0u32, |v, i| {
            (v << 8) | u32::from(packet.get(at + i).copied().unwrap_or(0))
        })
    };
    let mut body: Vec<(u16, To, To, u32)> = Vec::new();
    // X somewhere small (or, rarely, near the top of u32 so [x + k] wraps or goes negative).
    let x = match rng.below(10) {
        0 => 0xffff_fff0 + rng.below(16) as u32,
        1 => 0x8000_0000,
        _ => rng.below(12) as u32,
    };
    body.push((0x01, To::Next, To::Next, x)); // ldx #x

    // A and X on the path where every check passes, so later constants match the packet.
    let (mut a_now, mut x_now) = (0u32, x);
    let exits = 4;
    for _ in 0..1 + rng.below(8) {
        match rng.below(10) {
            0 => {
                // add x; add #k; tax
                let k = rng.below(8) as u32;
                body.push((0x0c, To::Next, To::Next, 0));
                body.push((0x04, To::Next, To::Next, k));
                body.push((0x07, To::Next, To::Next, 0));
                a_now = a_now.wrapping_add(x_now).wrapping_add(k);
                x_now = a_now;
            }
            1 => {
                x_now = rng.below(12) as u32;
                body.push((0x01, To::Next, To::Next, x_now));
            }
            2 => {
                // A DNS name's label step: ldb [x + k]; jeq #0, E; jgt #m, E; add x;
                // add #n; tax.
                if rng.chance(40) {
                    // ldx 4*([m]&0xf) first, as an IPv4 program starts.
                    let m = rng.below(24) as u32;
                    body.push((0xb1, To::Next, To::Next, m));
                    x_now = 4 * (value_at(m as usize, 1) & 0xf);
                }
                let exit = To::Exit(rng.below(exits) as usize);
                let (k, n) = (rng.below(24) as u32, 1 + rng.below(8) as u32);
                let byte = value_at(x_now.wrapping_add(k) as usize, 1);
                let most = if rng.chance(70) {
                    63
                } else {
                    rng.below(256) as u32
                };
                body.push((0x50, To::Next, To::Next, k));
                body.push((0x15, exit, To::Next, 0));
                body.push((0x25, exit, To::Next, most));
                body.push((0x0c, To::Next, To::Next, 0));
                body.push((0x04, To::Next, To::Next, n));
                body.push((0x07, To::Next, To::Next, 0));
                x_now = x_now.wrapping_add(byte).wrapping_add(n);
                a_now = x_now;
            }
            _ => {
                // A run of checks on one base, often with one exit.
                let indirect = rng.chance(60);
                let exit = rng.below(exits) as usize;
                let mut offset = rng.below(24) as u32;
                // Half the runs are pure spans: one `jeq` on the packet's value each.
                let pure = rng.chance(50);
                for _ in 0..1 + rng.below(6) {
                    let (size_code, n) = match rng.below(4) {
                        0 => (0x10, 1),
                        1 => (0x08, 2),
                        _ => (0x00, 4),
                    };
                    let base = if indirect { 0x40 } else { 0x20 };
                    body.push((base | size_code, To::Next, To::Next, offset));
                    let at = if indirect {
                        x_now.wrapping_add(offset)
                    } else {
                        offset
                    } as usize;
                    let mut value = value_at(at, n);
                    if rng.chance(20) {
                        let mask = rng.next() as u32;
                        body.push((0x54, To::Next, To::Next, mask)); // and #mask
                        value &= mask;
                    }
                    a_now = value;
                    if pure {
                        body.push((0x15, To::Next, To::Exit(exit), value));
                    }
                    for _ in 0..if pure { 0 } else { 1 + rng.below(3) } {
                        let (code, k) = match rng.below(8) {
                            0 => (0x25, value.wrapping_sub(rng.below(3) as u32)), // jgt
                            1 => (0x35, value.wrapping_add(rng.below(3) as u32)), // jge
                            2 => (0x45, rng.next() as u32),                       // jset
                            3 => (0x15, rng.next() as u32 & 0xff),                // jeq
                            _ => (0x15, value),                                   // jeq
                        };
                        let leave = if rng.chance(85) {
                            To::Exit(exit)
                        } else {
                            To::Exit(rng.below(exits) as usize)
                        };
                        if rng.chance(70) {
                            body.push((code, To::Next, leave, k));
                        } else {
                            body.push((code, leave, To::Next, k));
                        }
                    }
                    offset += if rng.chance(80) {
                        n as u32
                    } else {
                        rng.below(6) as u32
                    };
                }
            }
        }
    }
    body.push((0x06, To::Next, To::Next, 1)); // ret #1
                                              // The exits: ret a; ret #2; add #1, ret a; ld #5, ret a.
    let exit_code: [&[(u16, u32)]; 4] = [
        &[(0x16, 0)],
        &[(0x06, 2)],
        &[(0x04, 1), (0x16, 0)],
        &[(0x00, 5), (0x16, 0)],
    ];
    let mut starts = Vec::new();
    let mut at = body.len();
    for code in exit_code {
        starts.push(at);
        at += code.len();
    }
    let mut prog = Vec::new();
    for (pc, &(code, t, f, k)) in body.iter().enumerate() {
        let offset = |to: To| match to {
            To::Next => 0,
            To::Exit(e) => (starts[e] - pc - 1) as u8,
        };
        prog.push(RawInsn::new(code, offset(t), offset(f), k));
    }
    for code in exit_code {
        for &(code, k) in code {
            prog.push(RawInsn::new(code, 0, 0, k));
        }
    }
    prog
}

/// The fast path (superinstructions) and the tracer (one instruction at a time) agree on
/// the verdict and on why the run ended, on programs made of the idioms and packets that
/// pass their checks in part, in whole, or end short.
#[test]
fn superinstructions_give_the_instructions_outcome() {
    use crate::vm::{trace, Input, Profile, Program};
    let mut rng = Rng(proptest::test_runner::TestRng::deterministic_rng(
        proptest::test_runner::RngAlgorithm::ChaCha,
    ));
    let (mut spans, mut checks, mut runs) = (0, 0, 0);
    let (mut label_steps, mut msh_label_steps, mut spans_returning) = (0, 0, 0);
    let mut outcomes = Vec::new();
    for _ in 0..3000 {
        let packet: Vec<u8> = (0..rng.below(48)).map(|_| rng.below(256) as u8).collect();
        let raw = idiom_program(&mut rng, &packet);
        let program = Program::new(&raw, Profile::Socket).expect("valid program");
        spans += program.side.spans.len();
        checks += program.side.checks.len();
        let ops =
            |f: fn(&crate::vm::op::Op) -> bool| program.fast.iter().filter(|op| f(op)).count();
        label_steps += ops(|op| matches!(op, crate::vm::op::Op::StepLabel(..)));
        msh_label_steps += ops(|op| matches!(op, crate::vm::op::Op::MshStepLabel(..)));
        spans_returning += program
            .side
            .spans
            .iter()
            .filter(|s| s.next_returns.is_some() || s.fail_returns.is_some())
            .count();
        for variant in 0..8 {
            let mut packet = packet.clone();
            match variant {
                0 => {}
                1..=3 if !packet.is_empty() => {
                    let at = rng.below(packet.len() as u64) as usize;
                    packet[at] ^= 1 << rng.below(8);
                }
                4 | 5 => packet.truncate(rng.below(packet.len() as u64 + 1) as usize),
                _ => packet.extend((0..rng.below(8)).map(|_| rng.below(256) as u8)),
            }
            for start in [0, 1] {
                let input = Input {
                    frame: &packet,
                    start: start.min(packet.len()),
                    net: Some(0),
                    link: Some(0),
                    wire_len: packet.len() as u32,
                    ctx: Default::default(),
                };
                let fast = program.run_explained(&input);
                let steps = trace(&program, &input);
                assert_eq!(
                    fast,
                    (steps.verdict, steps.exit),
                    "program {raw:?} on packet {packet:?} from {start}"
                );
                outcomes.push(fast);
                runs += 1;
            }
        }
    }
    // The programs did use the superinstructions, and runs ended every way.
    assert!(
        spans > 500
            && checks > 1000
            && label_steps > 600
            && msh_label_steps > 400
            && spans_returning > 150,
        "{spans} spans ({spans_returning} that return), {checks} checks, {label_steps} label \
         steps, {msh_label_steps} after ldx 4*([m]&0xf)"
    );
    let count = |f: &dyn Fn(&(u32, Exit)) -> bool| outcomes.iter().filter(|o| f(o)).count();
    assert!(count(&|(_, e)| matches!(e, Exit::OutOfBounds(_))) > 1000);
    assert!(count(&|(v, _)| *v == 1) > 1000, "every check passed");
    assert!(count(&|(v, _)| *v == 2) > 1000, "a check failed");
    assert!(runs > 40_000);
}
