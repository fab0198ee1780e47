//! Readable text for eBPF instructions, in the style `bpftool prog dump xlated` prints:
//! `   4: (2d) if r1 > r9 goto pc+12`.
//!
//! Each line is the slot index, the opcode in hex and the operation in the C-like notation of
//! the kernel's verifier log (`w` names a register's low 32 bits in 32-bit operations, `r`
//! the whole register). A 16-byte `lddw` is one line standing at its first slot; the next line
//! is numbered two slots on. Jump targets are shown as `pc+N` (relative to the next slot), as
//! the verifier prints them, so a listing can be read beside a verifier log.
//!
//! This module only prints: it never fails, whatever the bits (an opcode without a name is
//! shown as its fields), and it checks nothing.

use std::fmt::{self, Write as _};

use crate::ebpf::insn::{AluOp, Class, Insn, JmpOp, Mode, Source, BPF_TO_BE};

/// One instruction as text (without index and opcode). `next` is the slot after it, which a
/// `lddw` needs for its high 32 bits (`None`: shown as 0).
pub fn insn_text(insn: &Insn, next: Option<&Insn>) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_insn(&mut out, insn, next);
    out
}

/// The program as a listing, one line per instruction, each ending with a newline.
pub fn disassemble(prog: &[Insn]) -> String {
    let mut out = String::new();
    let mut pc = 0;
    while pc < prog.len() {
        let insn = &prog[pc];
        let next = prog.get(pc + 1);
        let _ = write!(out, "{pc:4}: ({:02x}) ", insn.code);
        let _ = write_insn(&mut out, insn, next);
        out.push('\n');
        pc += if insn.is_lddw() { 2 } else { 1 };
    }
    out
}

fn write_insn(out: &mut String, insn: &Insn, next: Option<&Insn>) -> fmt::Result {
    let (dst, src) = (insn.dst.0, insn.src.0);
    match insn.class() {
        class @ (Class::Alu | Class::Alu64) => {
            let width = if class == Class::Alu64 { 'r' } else { 'w' };
            match insn.alu_op() {
                Some(AluOp::End) => {
                    let order = if insn.source() == Source::X || insn.code & BPF_TO_BE != 0 {
                        "be"
                    } else {
                        "le"
                    };
                    let order = if class == Class::Alu64 {
                        "bswap"
                    } else {
                        order
                    };
                    write!(out, "r{dst} = {order}{} r{dst}", insn.imm)
                }
                Some(AluOp::Neg) => write!(out, "{width}{dst} = -{width}{dst}"),
                Some(op) => match insn.source() {
                    Source::X => write!(out, "{width}{dst} {} {width}{src}", op.operator()),
                    Source::K => write!(out, "{width}{dst} {} {}", op.operator(), insn.imm),
                },
                None => unknown(out, insn),
            }
        }
        class @ (Class::Jmp | Class::Jmp32) => {
            let width = if class == Class::Jmp { 'r' } else { 'w' };
            match insn.jmp_op() {
                Some(JmpOp::Exit) if class == Class::Jmp => write!(out, "exit"),
                Some(JmpOp::Call) if class == Class::Jmp => write!(out, "call #{}", insn.imm),
                Some(JmpOp::Ja) if class == Class::Jmp => write!(out, "goto pc{:+}", insn.off),
                // gotol: the 32-bit distance is in imm.
                Some(JmpOp::Ja) => write!(out, "gotol pc{:+}", insn.imm),
                Some(JmpOp::Call | JmpOp::Exit) => unknown(out, insn),
                Some(op) => {
                    write!(out, "if {width}{dst} {} ", op.operator())?;
                    match insn.source() {
                        Source::X => write!(out, "{width}{src}")?,
                        Source::K => write!(out, "{:#x}", insn.imm)?,
                    }
                    write!(out, " goto pc{:+}", insn.off)
                }
                None => unknown(out, insn),
            }
        }
        Class::Ldx if insn.mode() == Mode::Mem => write!(
            out,
            "r{dst} = *({} *)(r{src} {:+})",
            insn.size().c_type(),
            insn.off
        ),
        Class::Stx if insn.mode() == Mode::Mem => write!(
            out,
            "*({} *)(r{dst} {:+}) = r{src}",
            insn.size().c_type(),
            insn.off
        ),
        Class::St if insn.mode() == Mode::Mem => write!(
            out,
            "*({} *)(r{dst} {:+}) = {}",
            insn.size().c_type(),
            insn.off,
            insn.imm
        ),
        Class::Ld if insn.is_lddw() => {
            let high = next.map_or(0, |n| n.imm as u32);
            let value = (u64::from(high) << 32) | u64::from(insn.imm as u32);
            write!(out, "r{dst} = {value:#x}")?;
            if src != 0 {
                // A pseudo value (map fd, map value, BTF id, ...).
                write!(out, " (pseudo {src})")?;
            }
            Ok(())
        }
        Class::Ld if insn.mode() == Mode::Abs => {
            write!(out, "r0 = *({} *)skb[{}]", insn.size().c_type(), insn.imm)
        }
        Class::Ld if insn.mode() == Mode::Ind => write!(
            out,
            "r0 = *({} *)skb[r{src} + {}]",
            insn.size().c_type(),
            insn.imm
        ),
        _ => unknown(out, insn),
    }
}

fn unknown(out: &mut String, insn: &Insn) -> fmt::Result {
    write!(
        out,
        "unknown code={:#04x} dst=r{} src=r{} off={} imm={}",
        insn.code, insn.dst.0, insn.src.0, insn.off, insn.imm
    )
}

impl fmt::Display for Insn {
    /// The instruction as [`insn_text`] shows it alone (a `lddw`'s high half is not known
    /// here and shows as 0).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&insn_text(self, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ebpf::insn::{Operand, Reg, Size};

    #[test]
    fn prints_like_the_kernels_verifier_log() {
        let [lo, hi] = Insn::ld_dw(Reg::R2, 0x1_0000_0002);
        let prog = [
            Insn::load(Size::W, Reg::R8, Reg::R1, 0),
            Insn::mov32_imm(Reg::R6, 0),
            Insn::mov64_reg(Reg::R1, Reg::R8),
            Insn::alu64(AluOp::Add, Reg::R1, Operand::Imm(16)),
            Insn::jmp(JmpOp::Jgt, Reg::R1, Operand::Reg(Reg::R9), 7),
            Insn::load(Size::H, Reg::R6, Reg::R1, -2),
            Insn::endian(true, Reg::R6, 16),
            Insn::jmp32(JmpOp::Jeq, Reg::R6, Operand::Imm(0x86dd), -3),
            Insn::alu32(AluOp::Lsh, Reg::R6, Operand::Reg(Reg::R1)),
            Insn::alu32(AluOp::Neg, Reg::R6, Operand::Imm(0)),
            Insn::store(Size::W, Reg::FP, -64, Reg::R7),
            Insn::store_imm(Size::DW, Reg::FP, -8, 0),
            lo,
            hi,
            Insn::ld_abs(Size::B, 23),
            Insn::ld_ind(Size::W, Reg::R7, 4),
            Insn::ja(-12),
            Insn::call(1),
            Insn::exit(),
        ];
        let expected = "   0: (61) r8 = *(u32 *)(r1 +0)
   1: (b4) w6 = 0
   2: (bf) r1 = r8
   3: (07) r1 += 16
   4: (2d) if r1 > r9 goto pc+7
   5: (69) r6 = *(u16 *)(r1 -2)
   6: (dc) r6 = be16 r6
   7: (16) if w6 == 0x86dd goto pc-3
   8: (6c) w6 <<= w1
   9: (84) w6 = -w6
  10: (63) *(u32 *)(r10 -64) = r7
  11: (7a) *(u64 *)(r10 -8) = 0
  12: (18) r2 = 0x100000002
  14: (30) r0 = *(u8 *)skb[23]
  15: (40) r0 = *(u32 *)skb[r7 + 4]
  16: (05) goto pc-12
  17: (85) call #1
  18: (95) exit
";
        assert_eq!(disassemble(&prog), expected);
        assert_eq!(
            Insn::new(0xff, Reg(1), Reg(2), 3, 4).to_string(),
            "unknown code=0xff dst=r1 src=r2 off=3 imm=4"
        );
    }
}
