//! The interpreter's instruction form: [`Op`], one variant per operation and operand kind,
//! and the plain decoding of one validated instruction into it ([`decode`]).
//!
//! Kept here: what ops exist and what each instruction is on its own. The fused
//! load-and-jump ops are declared once, as the rows of [`load_jump_ops`], from which the
//! enum, the selection ([`crate::vm::fuse`]) and the interpreter's dispatch
//! ([`crate::vm::run`]) are generated. Not here: which sequences become superinstructions
//! (`fuse`), running ops (`run`). An `Op` stays 16 bytes (a compile-time assertion): four to a
//! cache line.

use std::num::NonZeroU32;

use crate::insn::{AluOp, Ancillary, Insn, JumpCond, Operand, Size};

/// The table of fused ops for a packet load followed by a conditional jump on a constant:
/// `(fused op, load op, jump op, base, size, comparison)`, base `abs` for `[k]` and `ind` for
/// `[x + k]`, comparison a [`JumpCond`] variant. Each fused op takes
/// `(load offset, constant, jt, jf)`.
///
/// `load_jump_ops!(callback)` calls `callback!` with the rows, so every use of the table
/// (declaration, selection, dispatch) is generated from this one list.
macro_rules! load_jump_ops {
    ($callback:ident) => {
        $callback! {
            (LdAbsWJeq, LdAbsW, JeqK, abs, Word, Eq),
            (LdAbsHJeq, LdAbsH, JeqK, abs, Half, Eq),
            (LdAbsBJeq, LdAbsB, JeqK, abs, Byte, Eq),
            (LdIndWJeq, LdIndW, JeqK, ind, Word, Eq),
            (LdIndHJeq, LdIndH, JeqK, ind, Half, Eq),
            (LdIndBJeq, LdIndB, JeqK, ind, Byte, Eq),
            (LdAbsWJgt, LdAbsW, JgtK, abs, Word, Gt),
            (LdAbsHJgt, LdAbsH, JgtK, abs, Half, Gt),
            (LdAbsBJgt, LdAbsB, JgtK, abs, Byte, Gt),
            (LdIndWJgt, LdIndW, JgtK, ind, Word, Gt),
            (LdIndHJgt, LdIndH, JgtK, ind, Half, Gt),
            (LdIndBJgt, LdIndB, JgtK, ind, Byte, Gt),
            (LdAbsWJge, LdAbsW, JgeK, abs, Word, Ge),
            (LdAbsHJge, LdAbsH, JgeK, abs, Half, Ge),
            (LdAbsBJge, LdAbsB, JgeK, abs, Byte, Ge),
            (LdIndWJge, LdIndW, JgeK, ind, Word, Ge),
            (LdIndHJge, LdIndH, JgeK, ind, Half, Ge),
            (LdIndBJge, LdIndB, JgeK, ind, Byte, Ge),
            (LdAbsWJset, LdAbsW, JsetK, abs, Word, Set),
            (LdAbsHJset, LdAbsH, JsetK, abs, Half, Set),
            (LdAbsBJset, LdAbsB, JsetK, abs, Byte, Set),
            (LdIndWJset, LdIndW, JsetK, ind, Word, Set),
            (LdIndHJset, LdIndH, JsetK, ind, Half, Set),
            (LdIndBJset, LdIndB, JsetK, ind, Byte, Set),
        }
    };
}
pub(crate) use load_jump_ops;

/// Declares [`Op`] with the fused ops of the table between the plain ops and the other
/// superinstructions.
macro_rules! declare_op {
    ($(($fused:ident, $load:ident, $jump:ident, $base:ident, $size:ident, $cond:ident),)*) => {
        /// A pre-decoded instruction: one variant per operation and operand kind, so running one
        /// needs a single dispatch. Offsets known non-negative (as `i32`) at decode time take the fast
        /// variants; jump targets are absolute instruction indexes (a validated program has at most
        /// 4096 instructions, so they fit in `u16`); scratch indexes are below 16.
        ///
        /// The fast path also has ops for several instructions at once, standing at the first one's
        /// index, while the others keep their own ops for the jumps that land on them: a packet load
        /// followed by a conditional jump on a constant (the rows of [`load_jump_ops`]),
        /// `add x; add #k; tax`, and the checks and spans of [`crate::vm::fuse`].
        #[derive(Debug, Clone, Copy)]
        pub(crate) enum Op {
            LdAbsW(u32),
            LdAbsH(u32),
            LdAbsB(u32),
            LdIndW(u32),
            LdIndH(u32),
            LdIndB(u32),
            /// `[k]` with a negative offset: relative to the network or link-layer header.
            LdAbsNeg(Size, u32),
            LdAnc(Ancillary),
            LdImm(u32),
            LdMem(u8),
            LdLen,
            LdxImm(u32),
            LdxMem(u8),
            LdxLen,
            LdxMsh(u32),
            LdxMshNeg(u32),
            St(u8),
            Stx(u8),
            AddK(u32),
            SubK(u32),
            MulK(u32),
            DivK(NonZeroU32),
            ModK(NonZeroU32),
            AndK(u32),
            OrK(u32),
            XorK(u32),
            LshK(u32),
            RshK(u32),
            AddX,
            SubX,
            MulX,
            DivX,
            ModX,
            AndX,
            OrX,
            XorX,
            LshX,
            RshX,
            Neg,
            Ja(u16),
            JeqK(u32, u16, u16),
            JgtK(u32, u16, u16),
            JgeK(u32, u16, u16),
            JsetK(u32, u16, u16),
            JeqX(u16, u16),
            JgtX(u16, u16),
            JgeX(u16, u16),
            JsetX(u16, u16),
            RetK(u32),
            RetA,
            Tax,
            Txa,
            $(
                #[doc = concat!("`", stringify!($load), "` then `", stringify!($jump), "`.")]
                $fused(u32, u32, u16, u16),
            )*
            /// `add x; add #k; tax`.
            AddXKTax(u32),
            /// A check without a mask whose value goes on when it is in an interval, by its load
            /// (`[k]` word, half, byte, then `[x + k]`): (load offset, lowest value, width of the
            /// interval, failure target, instructions from the load to the one after the last jump).
            RangeAbsW(u32, u32, u32, u16, u8),
            RangeAbsH(u32, u32, u32, u16, u8),
            RangeAbsB(u32, u32, u32, u16, u8),
            RangeIndW(u32, u32, u32, u16, u8),
            RangeIndH(u32, u32, u32, u16, u8),
            RangeIndB(u32, u32, u32, u16, u8),
            /// The step over one label of a DNS name: a check of `ldb [x + k]` whose value goes on
            /// when it is in an interval, followed by `add x; add #n; tax`:
            /// (k, n, lowest value, width of the interval, failure target, instructions in all).
            StepLabel(u32, u32, u8, u8, u16, u8),
            /// `ldx 4*([m]&0xf)` (an IPv4 header's length) followed by a [`Op::StepLabel`]:
            /// (k, n, m, lowest value, width, failure target, instructions of the step).
            MshStepLabel(u32, u32, u16, u8, u8, u16, u8),
            /// Any other check (index into `Side::checks`).
            Check(u16),
            /// A span on `[k]` loads (index into `Side::spans`).
            SpanAbs(u16),
            /// A span on `[x + k]` loads (index into `Side::spans`).
            SpanInd(u16),
        }
    };
}
load_jump_ops!(declare_op);

// Ops stay 16 bytes: four to a cache line.
const _: () = assert!(std::mem::size_of::<Op>() == 16);

/// The op of one validated instruction standing at `pc`, not fused.
pub(crate) fn decode(insn: Insn, pc: usize) -> Op {
    // Validation keeps every target inside a program of at most 4096 instructions.
    let (t, f) = insn
        .jump_targets(pc)
        .map_or((0, 0), |(t, f)| (t as u16, f as u16));
    let non_negative = |k: u32| (k as i32) >= 0;
    let cell = |k: u32| (k & 15) as u8;
    match insn {
        Insn::LoadAbs { size, offset } => match Ancillary::from_offset(offset) {
            Some(anc) => Op::LdAnc(anc),
            None if !non_negative(offset) => Op::LdAbsNeg(size, offset),
            None => match size {
                Size::Word => Op::LdAbsW(offset),
                Size::Half => Op::LdAbsH(offset),
                Size::Byte => Op::LdAbsB(offset),
            },
        },
        Insn::LoadInd { size, offset } => match size {
            Size::Word => Op::LdIndW(offset),
            Size::Half => Op::LdIndH(offset),
            Size::Byte => Op::LdIndB(offset),
        },
        Insn::LoadImm(k) => Op::LdImm(k),
        Insn::LoadMem(k) => Op::LdMem(cell(k)),
        Insn::LoadLen => Op::LdLen,
        Insn::LoadXImm(k) => Op::LdxImm(k),
        Insn::LoadXMem(k) => Op::LdxMem(cell(k)),
        Insn::LoadXLen => Op::LdxLen,
        Insn::LoadXMsh(k) if non_negative(k) => Op::LdxMsh(k),
        Insn::LoadXMsh(k) => Op::LdxMshNeg(k),
        Insn::Store(k) => Op::St(cell(k)),
        Insn::StoreX(k) => Op::Stx(cell(k)),
        Insn::Alu {
            op,
            operand: Operand::K(k),
        } => match op {
            AluOp::Add => Op::AddK(k),
            AluOp::Sub => Op::SubK(k),
            AluOp::Mul => Op::MulK(k),
            // Validation refuses division and modulo by the constant 0.
            AluOp::Div => NonZeroU32::new(k).map_or(Op::RetK(0), Op::DivK),
            AluOp::Mod => NonZeroU32::new(k).map_or(Op::RetK(0), Op::ModK),
            AluOp::And => Op::AndK(k),
            AluOp::Or => Op::OrK(k),
            AluOp::Xor => Op::XorK(k),
            // Validation refuses constant shifts of 32 or more.
            AluOp::Lsh => Op::LshK(k & 31),
            AluOp::Rsh => Op::RshK(k & 31),
        },
        Insn::Alu {
            op,
            operand: Operand::X,
        } => match op {
            AluOp::Add => Op::AddX,
            AluOp::Sub => Op::SubX,
            AluOp::Mul => Op::MulX,
            AluOp::Div => Op::DivX,
            AluOp::Mod => Op::ModX,
            AluOp::And => Op::AndX,
            AluOp::Or => Op::OrX,
            AluOp::Xor => Op::XorX,
            AluOp::Lsh => Op::LshX,
            AluOp::Rsh => Op::RshX,
        },
        Insn::Neg => Op::Neg,
        Insn::Ja(_) => Op::Ja(t),
        Insn::Jump { cond, operand, .. } => match (cond, operand) {
            (JumpCond::Eq, Operand::K(k)) => Op::JeqK(k, t, f),
            (JumpCond::Gt, Operand::K(k)) => Op::JgtK(k, t, f),
            (JumpCond::Ge, Operand::K(k)) => Op::JgeK(k, t, f),
            (JumpCond::Set, Operand::K(k)) => Op::JsetK(k, t, f),
            (JumpCond::Eq, Operand::X) => Op::JeqX(t, f),
            (JumpCond::Gt, Operand::X) => Op::JgtX(t, f),
            (JumpCond::Ge, Operand::X) => Op::JgeX(t, f),
            (JumpCond::Set, Operand::X) => Op::JsetX(t, f),
        },
        Insn::RetK(k) => Op::RetK(k),
        Insn::RetA => Op::RetA,
        Insn::Tax => Op::Tax,
        Insn::Txa => Op::Txa,
        // Refused by validate().
        Insn::RetX | Insn::Raw(_) => Op::RetK(0),
    }
}
