//! What one instruction reads and writes: the registers A and X, the scratch cells
//! `M[0]`..`M[15]` and the packet, and whether it ends the run.
//!
//! Every pass that follows values through a program (the validator's scratch-memory rule, the
//! interpreter's liveness of A, the analysis of what a program expects) asks
//! [`Insn::effects`] instead of listing instructions itself, so a new instruction or a fix is
//! made once. This module describes; it must not decide anything for one pass (no control
//! flow, no validity: jump targets are [`Insn::jump_targets`], the kernel's rules are the
//! validator's).

use std::ops::BitOr;

use super::{Ancillary, Insn, Operand, BPF_MEMWORDS};

/// A set of the machine's storage: A, X and the scratch cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Regs(u32);

/// Bit of `M[0]`; `M[i]` is this shifted left by `i`.
const FIRST_CELL: u32 = 1 << 2;

impl Regs {
    /// Nothing.
    pub const NONE: Regs = Regs(0);
    /// The accumulator A.
    pub const A: Regs = Regs(1);
    /// The index register X.
    pub const X: Regs = Regs(1 << 1);
    /// Every scratch cell.
    pub const MEM: Regs = Regs(0xffff * FIRST_CELL);
    /// A, X and every scratch cell.
    pub const ALL: Regs = Regs(Regs::A.0 | Regs::X.0 | Regs::MEM.0);

    /// The scratch cell `M[k]`; nothing when `k` is not a cell (16 or more, which the kernel
    /// refuses).
    pub const fn cell(k: u32) -> Regs {
        if k < BPF_MEMWORDS {
            Regs(FIRST_CELL << k)
        } else {
            Regs::NONE
        }
    }

    /// Both sets.
    pub const fn union(self, other: Regs) -> Regs {
        Regs(self.0 | other.0)
    }

    /// Whether every member of `other` is in this set.
    pub const fn contains(self, other: Regs) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The scratch cells in the set, bit `i` standing for `M[i]`.
    pub const fn cells(self) -> u16 {
        (self.0 / FIRST_CELL) as u16
    }
}

impl BitOr for Regs {
    type Output = Regs;
    fn bitor(self, other: Regs) -> Regs {
        self.union(other)
    }
}

/// What running one instruction may read and write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Effects {
    /// Registers and cells whose value the instruction uses.
    pub reads: Regs,
    /// Registers and cells it sets.
    pub writes: Regs,
    /// Whether it reads packet bytes (a load that can end the run when they are missing).
    /// The packet length (`#len`) is not a packet byte.
    pub reads_packet: bool,
    /// Whether it ends the run (a return).
    pub returns: bool,
}

impl Effects {
    const fn new(reads: Regs, writes: Regs) -> Effects {
        Effects {
            reads,
            writes,
            reads_packet: false,
            returns: false,
        }
    }

    const fn packet(self) -> Effects {
        Effects {
            reads_packet: true,
            ..self
        }
    }
}

impl Insn {
    /// What the instruction reads and writes.
    ///
    /// An unknown opcode ([`Insn::Raw`], which the kernel refuses) may read and write anything
    /// and the packet: a pass that needs what is certainly written must not count its writes.
    /// `ret x`, refused too, is described as what it would do.
    pub fn effects(&self) -> Effects {
        let (none, a, x) = (Regs::NONE, Regs::A, Regs::X);
        let operand = |operand: Operand| match operand {
            Operand::K(_) => a,
            Operand::X => a | x,
        };
        match *self {
            Insn::LoadAbs { offset, .. } => match Ancillary::from_offset(offset) {
                // The netlink attribute searches take A and X and read the packet.
                Some(Ancillary::NlAttr | Ancillary::NlAttrNest) => Effects::new(a | x, a).packet(),
                Some(Ancillary::AluXorX) => Effects::new(a | x, a),
                Some(_) => Effects::new(none, a),
                None => Effects::new(none, a).packet(),
            },
            Insn::LoadInd { .. } => Effects::new(x, a).packet(),
            Insn::LoadImm(_) | Insn::LoadLen => Effects::new(none, a),
            Insn::LoadMem(k) => Effects::new(Regs::cell(k), a),
            Insn::LoadXImm(_) | Insn::LoadXLen => Effects::new(none, x),
            Insn::LoadXMem(k) => Effects::new(Regs::cell(k), x),
            Insn::LoadXMsh(_) => Effects::new(none, x).packet(),
            Insn::Store(k) => Effects::new(a, Regs::cell(k)),
            Insn::StoreX(k) => Effects::new(x, Regs::cell(k)),
            Insn::Alu { operand: o, .. } => Effects::new(operand(o), a),
            Insn::Neg => Effects::new(a, a),
            Insn::Ja(_) => Effects::new(none, none),
            Insn::Jump { operand: o, .. } => Effects::new(operand(o), none),
            Insn::RetK(_) => Effects {
                returns: true,
                ..Effects::new(none, none)
            },
            Insn::RetA => Effects {
                returns: true,
                ..Effects::new(a, none)
            },
            Insn::RetX => Effects {
                returns: true,
                ..Effects::new(x, none)
            },
            Insn::Tax => Effects::new(a, x),
            Insn::Txa => Effects::new(x, a),
            Insn::Raw(_) => Effects::new(Regs::ALL, Regs::ALL).packet(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::insn::{RawInsn, SKF_AD_OFF};

    fn effects(code: u16, k: u32) -> Effects {
        Insn::decode(RawInsn::new(code, 0, 0, k)).effects()
    }

    #[test]
    fn registers_cells_and_packet() {
        // ldb [x + 3]: reads X and the packet, sets A.
        let e = effects(0x50, 3);
        assert_eq!(
            (e.reads, e.writes, e.reads_packet),
            (Regs::X, Regs::A, true)
        );
        // st M[5] / ldx M[5].
        assert_eq!(effects(0x02, 5).writes, Regs::cell(5));
        assert_eq!(effects(0x02, 5).writes.cells(), 1 << 5);
        assert_eq!(effects(0x61, 5).reads, Regs::cell(5));
        // A cell the kernel refuses is no cell.
        assert!(effects(0x60, 16).reads.is_empty());
        // add x, jgt x, tax, txa.
        assert_eq!(effects(0x0c, 0).reads, Regs::A | Regs::X);
        assert_eq!(effects(0x2d, 0).writes, Regs::NONE);
        assert_eq!(effects(0x07, 0), Effects::new(Regs::A, Regs::X));
        assert_eq!(effects(0x87, 0), Effects::new(Regs::X, Regs::A));
        // ld #len reads no packet byte; ldx 4*([k]&0xf) does.
        assert!(!effects(0x80, 0).reads_packet);
        assert!(effects(0xb1, 14).reads_packet);
        // Ancillary loads: proto reads nothing, the XOR of A and X reads both.
        assert_eq!(effects(0x20, SKF_AD_OFF), Effects::new(Regs::NONE, Regs::A));
        assert_eq!(effects(0x20, SKF_AD_OFF + 40).reads, Regs::A | Regs::X);
        // Returns end the run.
        assert!(effects(0x06, 1).returns && effects(0x16, 0).reads.contains(Regs::A));
        assert!(!effects(0x05, 1).returns);
        // Unknown: anything.
        assert!(effects(0xffff, 0).reads.contains(Regs::ALL));
        assert!(Regs::ALL.contains(Regs::MEM) && Regs::MEM.cells() == u16::MAX);
    }
}
