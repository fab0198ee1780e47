//! Random classic BPF programs for the oracle tests, biased towards the edges of the kernel's
//! rules: scratch memory used across jumps, jumps to the last instruction, ancillary offsets,
//! division by zero, shifts of 32, scratch index 16, RET X, unknown opcodes, odd lengths.

use bpftools::insn::{Ancillary, RawInsn, SKF_AD_OFF, SKF_LL_OFF, SKF_NET_OFF};

use crate::rng::Rng;

/// A constant, biased towards interesting values.
fn constant(rng: &mut Rng) -> u32 {
    match rng.below(10) {
        0 => 0,
        1 => 1,
        2 => rng.pick(&[31, 32, 33, 63, 64]),
        3 => u32::MAX - rng.below(4) as u32,
        4 => 0x8000_0000,
        5..=7 => rng.below(64) as u32,
        _ => rng.next() as u32,
    }
}

/// A packet offset: small, around the ancillary, network and link-layer ranges, or anything.
pub fn offset(rng: &mut Rng, with_ancillary: bool) -> u32 {
    match rng.below(12) {
        0..=4 => rng.below(80) as u32,
        5 if with_ancillary => {
            let anc = rng.pick(&Ancillary::ALL);
            anc.offset()
        }
        6 if with_ancillary => SKF_AD_OFF + rng.below(72) as u32,
        7 => SKF_NET_OFF + rng.below(60) as u32,
        8 => SKF_LL_OFF + rng.below(40) as u32,
        9 => u32::MAX - rng.below(8) as u32,
        10 => 0x7fff_fff0 + rng.below(32) as u32,
        _ => rng.next() as u32,
    }
}

/// Which instructions a program may use.
#[derive(Clone, Copy)]
pub struct Mix {
    /// Allow invalid programs (unknown opcodes, RET X, bad constants, bad jumps, odd lengths).
    pub invalid: bool,
    /// Allow ancillary loads.
    pub ancillary: bool,
}

/// One random program.
pub fn program(rng: &mut Rng, mix: Mix) -> Vec<RawInsn> {
    let len = if mix.invalid && rng.chance(2) {
        rng.pick(&[0usize, 1, 4096, 4097, 64, 65])
    } else {
        1 + rng.below(24) as usize
    };
    let mut prog = Vec::with_capacity(len);
    for pc in 0..len {
        let room = (len - pc - 1) as u64;
        let code: u16;
        let (mut jt, mut jf, mut k) = (0u8, 0u8, constant(rng));
        let pick = rng.below(100);
        if mix.invalid && pick < 3 {
            // Anything at all.
            code = rng.below(0x100) as u16;
            jt = rng.below(4) as u8;
            jf = rng.below(4) as u8;
        } else if pick < 18 {
            code = rng.pick(&[0x20, 0x28, 0x30]);
            k = offset(rng, mix.ancillary);
        } else if pick < 28 {
            code = rng.pick(&[0x40, 0x48, 0x50]);
            k = offset(rng, false);
        } else if pick < 32 {
            code = 0xb1;
            k = offset(rng, false);
        } else if pick < 40 {
            code = rng.pick(&[0x00, 0x01, 0x80, 0x81, 0x07, 0x87]);
        } else if pick < 50 {
            code = rng.pick(&[0x02, 0x03, 0x60, 0x61]);
            k = if mix.invalid && rng.chance(10) {
                16
            } else {
                rng.below(4) as u32
            };
        } else if pick < 68 {
            code = rng.pick(&[
                0x04, 0x0c, 0x14, 0x1c, 0x24, 0x2c, 0x34, 0x3c, 0x44, 0x4c, 0x54, 0x5c, 0x64, 0x6c,
                0x74, 0x7c, 0x84, 0x94, 0x9c, 0xa4, 0xac,
            ]);
            if !mix.invalid && matches!(code, 0x34 | 0x94) && k == 0 {
                k = 1;
            }
            if !mix.invalid && matches!(code, 0x64 | 0x74) {
                k %= 32;
            }
        } else if pick < 90 && room > 0 {
            code = rng.pick(&[0x05, 0x15, 0x1d, 0x25, 0x2d, 0x35, 0x3d, 0x45, 0x4d]);
            let target = |rng: &mut Rng| -> u8 {
                // Often the last instruction, or just past it when invalid programs are allowed.
                let extra = u64::from(mix.invalid && rng.chance(5));
                if rng.chance(30) {
                    (room - 1 + extra).min(255) as u8
                } else {
                    rng.below((room + extra).min(256)) as u8
                }
            };
            if code == 0x05 {
                k = u32::from(target(rng));
            } else {
                jt = target(rng);
                jf = target(rng);
            }
        } else {
            code = if mix.invalid && rng.chance(10) {
                0x0e
            } else {
                rng.pick(&[0x06, 0x16])
            };
            if code == 0x06 {
                let any = constant(rng);
                k = rng.pick(&[0, 1, 20, 65535, 0xffff_ffff, any]);
            }
        }
        prog.push(RawInsn::new(code, jt, jf, k));
    }
    if !mix.invalid || rng.chance(90) {
        if let Some(last) = prog.last_mut() {
            *last = RawInsn::new(rng.pick(&[0x06, 0x16]), 0, 0, rng.pick(&[0, 65535, 7]));
        }
    }
    prog
}
