//! The eBPF instruction and its wire encoding.
//!
//! [`Insn`] is one 8-byte slot, laid out like the kernel's `struct bpf_insn`: an 8-bit opcode,
//! two 4-bit registers, a signed 16-bit offset and a signed 32-bit immediate. The 16-byte
//! `lddw` (a 64-bit constant) takes two slots, as in the kernel: [`Insn::ld_dw`] returns both.
//! The opcode's parts (class, size, mode, source, ALU and jump operations) have typed views
//! ([`Class`], [`Size`], [`Mode`], [`Source`], [`AluOp`], [`JmpOp`]) and constants named as in
//! `linux/bpf.h`.
//!
//! Rules kept here:
//! - [`Insn::to_bytes`] writes the kernel's layout in the host's byte order (what bpf(2)
//!   reads); [`Insn::from_bytes`] reads it back: `from_bytes(to_bytes(i)) == i` for every `i`.
//! - Decoding never fails on an 8-byte slot: an opcode this module has no name for stays a
//!   number and is shown as such.
//!
//! This module does not check programs (the kernel's verifier does that) and knows nothing of
//! classic BPF: the compiler ([`crate::ebpf::compile()`]) is the one place the two meet.

use std::fmt;

/// Class `BPF_LD` (`lddw`, legacy packet loads).
pub const BPF_LD: u8 = 0x00;
/// Class `BPF_LDX` (load from memory into a register).
pub const BPF_LDX: u8 = 0x01;
/// Class `BPF_ST` (store an immediate).
pub const BPF_ST: u8 = 0x02;
/// Class `BPF_STX` (store a register).
pub const BPF_STX: u8 = 0x03;
/// Class `BPF_ALU` (32-bit arithmetic).
pub const BPF_ALU: u8 = 0x04;
/// Class `BPF_JMP` (64-bit compares, calls, exit).
pub const BPF_JMP: u8 = 0x05;
/// Class `BPF_JMP32` (32-bit compares).
pub const BPF_JMP32: u8 = 0x06;
/// Class `BPF_ALU64` (64-bit arithmetic).
pub const BPF_ALU64: u8 = 0x07;

/// Size `BPF_W` (4 bytes).
pub const BPF_W: u8 = 0x00;
/// Size `BPF_H` (2 bytes).
pub const BPF_H: u8 = 0x08;
/// Size `BPF_B` (1 byte).
pub const BPF_B: u8 = 0x10;
/// Size `BPF_DW` (8 bytes).
pub const BPF_DW: u8 = 0x18;

/// Mode `BPF_IMM` (`lddw`).
pub const BPF_IMM: u8 = 0x00;
/// Mode `BPF_ABS` (legacy packet load at a constant offset).
pub const BPF_ABS: u8 = 0x20;
/// Mode `BPF_IND` (legacy packet load at a register plus a constant).
pub const BPF_IND: u8 = 0x40;
/// Mode `BPF_MEM` (memory through a register and an offset).
pub const BPF_MEM: u8 = 0x60;
/// Mode `BPF_ATOMIC`.
pub const BPF_ATOMIC: u8 = 0xc0;

/// Source `BPF_K` (the immediate).
pub const BPF_K: u8 = 0x00;
/// Source `BPF_X` (the source register).
pub const BPF_X: u8 = 0x08;
/// For `BPF_END`: convert to little-endian.
pub const BPF_TO_LE: u8 = 0x00;
/// For `BPF_END`: convert to big-endian.
pub const BPF_TO_BE: u8 = 0x08;

/// `lddw`'s source register when its immediate is a map's file descriptor, which
/// `BPF_PROG_LOAD` replaces with the map's address.
pub const BPF_PSEUDO_MAP_FD: u8 = 1;

/// `bpf_insn.code` for `exit`.
pub const EXIT: u8 = BPF_JMP | 0x90;
/// `bpf_insn.code` for `lddw` (`BPF_LD | BPF_DW | BPF_IMM`).
pub const LDDW: u8 = BPF_LD | BPF_DW | BPF_IMM;

/// A register: r0 (return value), r1-r5 (arguments, clobbered by calls), r6-r9 (kept across
/// calls), r10 (read-only frame pointer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reg(pub u8);

impl Reg {
    /// r0.
    pub const R0: Reg = Reg(0);
    /// r1 (the context at entry).
    pub const R1: Reg = Reg(1);
    /// r2.
    pub const R2: Reg = Reg(2);
    /// r3.
    pub const R3: Reg = Reg(3);
    /// r4.
    pub const R4: Reg = Reg(4);
    /// r5.
    pub const R5: Reg = Reg(5);
    /// r6.
    pub const R6: Reg = Reg(6);
    /// r7.
    pub const R7: Reg = Reg(7);
    /// r8.
    pub const R8: Reg = Reg(8);
    /// r9.
    pub const R9: Reg = Reg(9);
    /// r10, the frame pointer (the stack grows down from it, 512 bytes).
    pub const FP: Reg = Reg(10);
}

impl fmt::Display for Reg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "r{}", self.0)
    }
}

/// The instruction class (`code & 0x07`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// `BPF_LD`.
    Ld,
    /// `BPF_LDX`.
    Ldx,
    /// `BPF_ST`.
    St,
    /// `BPF_STX`.
    Stx,
    /// `BPF_ALU` (32-bit).
    Alu,
    /// `BPF_JMP` (64-bit).
    Jmp,
    /// `BPF_JMP32`.
    Jmp32,
    /// `BPF_ALU64`.
    Alu64,
}

impl Class {
    /// The class of an opcode.
    pub const fn of(code: u8) -> Class {
        match code & 0x07 {
            BPF_LD => Class::Ld,
            BPF_LDX => Class::Ldx,
            BPF_ST => Class::St,
            BPF_STX => Class::Stx,
            BPF_ALU => Class::Alu,
            BPF_JMP => Class::Jmp,
            BPF_JMP32 => Class::Jmp32,
            _ => Class::Alu64,
        }
    }

    /// The class's bits.
    pub const fn code(self) -> u8 {
        match self {
            Class::Ld => BPF_LD,
            Class::Ldx => BPF_LDX,
            Class::St => BPF_ST,
            Class::Stx => BPF_STX,
            Class::Alu => BPF_ALU,
            Class::Jmp => BPF_JMP,
            Class::Jmp32 => BPF_JMP32,
            Class::Alu64 => BPF_ALU64,
        }
    }
}

/// The access size of a load or store (`code & 0x18`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Size {
    /// 4 bytes (`BPF_W`, `u32`).
    W,
    /// 2 bytes (`BPF_H`, `u16`).
    H,
    /// 1 byte (`BPF_B`, `u8`).
    B,
    /// 8 bytes (`BPF_DW`, `u64`).
    DW,
}

impl Size {
    /// The size of an opcode.
    pub const fn of(code: u8) -> Size {
        match code & 0x18 {
            BPF_W => Size::W,
            BPF_H => Size::H,
            BPF_B => Size::B,
            _ => Size::DW,
        }
    }

    /// The size's bits.
    pub const fn code(self) -> u8 {
        match self {
            Size::W => BPF_W,
            Size::H => BPF_H,
            Size::B => BPF_B,
            Size::DW => BPF_DW,
        }
    }

    /// Bytes accessed.
    pub const fn bytes(self) -> i16 {
        match self {
            Size::B => 1,
            Size::H => 2,
            Size::W => 4,
            Size::DW => 8,
        }
    }

    /// The C type the kernel's disassembler names (`u32`).
    pub const fn c_type(self) -> &'static str {
        match self {
            Size::B => "u8",
            Size::H => "u16",
            Size::W => "u32",
            Size::DW => "u64",
        }
    }
}

/// The addressing mode of a load or store (`code & 0xe0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// `BPF_IMM`.
    Imm,
    /// `BPF_ABS`.
    Abs,
    /// `BPF_IND`.
    Ind,
    /// `BPF_MEM`.
    Mem,
    /// `BPF_ATOMIC`.
    Atomic,
    /// Any other mode bits.
    Other(u8),
}

impl Mode {
    /// The mode of an opcode.
    pub const fn of(code: u8) -> Mode {
        match code & 0xe0 {
            BPF_IMM => Mode::Imm,
            BPF_ABS => Mode::Abs,
            BPF_IND => Mode::Ind,
            BPF_MEM => Mode::Mem,
            BPF_ATOMIC => Mode::Atomic,
            other => Mode::Other(other),
        }
    }
}

/// Where the second operand of an ALU operation or a jump comes from (`code & 0x08`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// The immediate (`BPF_K`).
    K,
    /// The source register (`BPF_X`).
    X,
}

impl Source {
    /// The source of an opcode.
    pub const fn of(code: u8) -> Source {
        if code & BPF_X != 0 {
            Source::X
        } else {
            Source::K
        }
    }
}

/// An ALU operation (`code & 0xf0` in classes ALU and ALU64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AluOp {
    /// `+=`.
    Add,
    /// `-=`.
    Sub,
    /// `*=`.
    Mul,
    /// `/=` (unsigned; the kernel gives 0 for a zero divisor).
    Div,
    /// `|=`.
    Or,
    /// `&=`.
    And,
    /// `<<=`.
    Lsh,
    /// `>>=` (logical).
    Rsh,
    /// `= -dst`.
    Neg,
    /// `%=` (unsigned; the kernel leaves dst for a zero divisor).
    Mod,
    /// `^=`.
    Xor,
    /// `=`.
    Mov,
    /// `s>>=` (arithmetic).
    Arsh,
    /// Byte order conversion (`BPF_END`; the immediate is the width in bits).
    End,
}

impl AluOp {
    /// The operation's bits.
    pub const fn code(self) -> u8 {
        match self {
            AluOp::Add => 0x00,
            AluOp::Sub => 0x10,
            AluOp::Mul => 0x20,
            AluOp::Div => 0x30,
            AluOp::Or => 0x40,
            AluOp::And => 0x50,
            AluOp::Lsh => 0x60,
            AluOp::Rsh => 0x70,
            AluOp::Neg => 0x80,
            AluOp::Mod => 0x90,
            AluOp::Xor => 0xa0,
            AluOp::Mov => 0xb0,
            AluOp::Arsh => 0xc0,
            AluOp::End => 0xd0,
        }
    }

    /// The operation of an ALU opcode; `None` for the unused 0xe0 and 0xf0.
    pub const fn of(code: u8) -> Option<AluOp> {
        Some(match code & 0xf0 {
            0x00 => AluOp::Add,
            0x10 => AluOp::Sub,
            0x20 => AluOp::Mul,
            0x30 => AluOp::Div,
            0x40 => AluOp::Or,
            0x50 => AluOp::And,
            0x60 => AluOp::Lsh,
            0x70 => AluOp::Rsh,
            0x80 => AluOp::Neg,
            0x90 => AluOp::Mod,
            0xa0 => AluOp::Xor,
            0xb0 => AluOp::Mov,
            0xc0 => AluOp::Arsh,
            0xd0 => AluOp::End,
            _ => return None,
        })
    }

    /// The C operator the kernel's disassembler prints (`+=`); empty for `Neg` and `End`,
    /// which print differently.
    pub const fn operator(self) -> &'static str {
        match self {
            AluOp::Add => "+=",
            AluOp::Sub => "-=",
            AluOp::Mul => "*=",
            AluOp::Div => "/=",
            AluOp::Or => "|=",
            AluOp::And => "&=",
            AluOp::Lsh => "<<=",
            AluOp::Rsh => ">>=",
            AluOp::Mod => "%=",
            AluOp::Xor => "^=",
            AluOp::Mov => "=",
            AluOp::Arsh => "s>>=",
            AluOp::Neg | AluOp::End => "",
        }
    }
}

/// A jump operation (`code & 0xf0` in classes JMP and JMP32).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JmpOp {
    /// Always (`goto`).
    Ja,
    /// `==`.
    Jeq,
    /// `>` unsigned.
    Jgt,
    /// `>=` unsigned.
    Jge,
    /// `&` non-zero.
    Jset,
    /// `!=`.
    Jne,
    /// `>` signed.
    Jsgt,
    /// `>=` signed.
    Jsge,
    /// A helper call.
    Call,
    /// Return r0.
    Exit,
    /// `<` unsigned.
    Jlt,
    /// `<=` unsigned.
    Jle,
    /// `<` signed.
    Jslt,
    /// `<=` signed.
    Jsle,
}

impl JmpOp {
    /// The operation's bits.
    pub const fn code(self) -> u8 {
        match self {
            JmpOp::Ja => 0x00,
            JmpOp::Jeq => 0x10,
            JmpOp::Jgt => 0x20,
            JmpOp::Jge => 0x30,
            JmpOp::Jset => 0x40,
            JmpOp::Jne => 0x50,
            JmpOp::Jsgt => 0x60,
            JmpOp::Jsge => 0x70,
            JmpOp::Call => 0x80,
            JmpOp::Exit => 0x90,
            JmpOp::Jlt => 0xa0,
            JmpOp::Jle => 0xb0,
            JmpOp::Jslt => 0xc0,
            JmpOp::Jsle => 0xd0,
        }
    }

    /// The operation of a jump opcode; `None` for the unused 0xe0 and 0xf0.
    pub const fn of(code: u8) -> Option<JmpOp> {
        Some(match code & 0xf0 {
            0x00 => JmpOp::Ja,
            0x10 => JmpOp::Jeq,
            0x20 => JmpOp::Jgt,
            0x30 => JmpOp::Jge,
            0x40 => JmpOp::Jset,
            0x50 => JmpOp::Jne,
            0x60 => JmpOp::Jsgt,
            0x70 => JmpOp::Jsge,
            0x80 => JmpOp::Call,
            0x90 => JmpOp::Exit,
            0xa0 => JmpOp::Jlt,
            0xb0 => JmpOp::Jle,
            0xc0 => JmpOp::Jslt,
            0xd0 => JmpOp::Jsle,
            _ => return None,
        })
    }

    /// The C operator of a conditional jump (`==`); empty for `Ja`, `Call` and `Exit`.
    pub const fn operator(self) -> &'static str {
        match self {
            JmpOp::Jeq => "==",
            JmpOp::Jgt => ">",
            JmpOp::Jge => ">=",
            JmpOp::Jset => "&",
            JmpOp::Jne => "!=",
            JmpOp::Jsgt => "s>",
            JmpOp::Jsge => "s>=",
            JmpOp::Jlt => "<",
            JmpOp::Jle => "<=",
            JmpOp::Jslt => "s<",
            JmpOp::Jsle => "s<=",
            JmpOp::Ja | JmpOp::Call | JmpOp::Exit => "",
        }
    }

    /// The jump taken exactly when this one is not, where eBPF has one (`Jset` has none).
    pub const fn inverse(self) -> Option<JmpOp> {
        Some(match self {
            JmpOp::Jeq => JmpOp::Jne,
            JmpOp::Jne => JmpOp::Jeq,
            JmpOp::Jgt => JmpOp::Jle,
            JmpOp::Jle => JmpOp::Jgt,
            JmpOp::Jge => JmpOp::Jlt,
            JmpOp::Jlt => JmpOp::Jge,
            JmpOp::Jsgt => JmpOp::Jsle,
            JmpOp::Jsle => JmpOp::Jsgt,
            JmpOp::Jsge => JmpOp::Jslt,
            JmpOp::Jslt => JmpOp::Jsge,
            _ => return None,
        })
    }
}

/// The second operand of an ALU operation or a conditional jump.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operand {
    /// An immediate (sign-extended to 64 bits by 64-bit operations).
    Imm(i32),
    /// A register.
    Reg(Reg),
}

/// One 8-byte eBPF instruction slot (`struct bpf_insn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Insn {
    /// The opcode: class | size/source | mode/operation.
    pub code: u8,
    /// Destination register (low nibble of the second byte).
    pub dst: Reg,
    /// Source register (high nibble of the second byte).
    pub src: Reg,
    /// Signed offset: jump distance in slots from the next one, or a memory displacement.
    pub off: i16,
    /// Signed immediate.
    pub imm: i32,
}

impl Insn {
    /// An instruction from its fields.
    pub const fn new(code: u8, dst: Reg, src: Reg, off: i16, imm: i32) -> Insn {
        Insn {
            code,
            dst,
            src,
            off,
            imm,
        }
    }

    const fn with_operand(code: u8, dst: Reg, operand: Operand, off: i16) -> Insn {
        match operand {
            Operand::Imm(imm) => Insn::new(code | BPF_K, dst, Reg::R0, off, imm),
            Operand::Reg(src) => Insn::new(code | BPF_X, dst, src, off, 0),
        }
    }

    /// A 32-bit ALU operation (`w{dst} op= operand`); the result is zero-extended to 64 bits.
    pub const fn alu32(op: AluOp, dst: Reg, operand: Operand) -> Insn {
        Insn::with_operand(BPF_ALU | op.code(), dst, operand, 0)
    }

    /// A 64-bit ALU operation (`r{dst} op= operand`).
    pub const fn alu64(op: AluOp, dst: Reg, operand: Operand) -> Insn {
        Insn::with_operand(BPF_ALU64 | op.code(), dst, operand, 0)
    }

    /// `w{dst} = imm` (the 32-bit move: bits 32-63 become zero).
    pub const fn mov32_imm(dst: Reg, imm: u32) -> Insn {
        Insn::alu32(AluOp::Mov, dst, Operand::Imm(imm as i32))
    }

    /// `r{dst} = r{src}`.
    pub const fn mov64_reg(dst: Reg, src: Reg) -> Insn {
        Insn::alu64(AluOp::Mov, dst, Operand::Reg(src))
    }

    /// Byte order conversion of the low `bits` (16, 32 or 64) of `dst`, to big-endian when
    /// `to_be`, else to little-endian; the bits above are cleared.
    pub const fn endian(to_be: bool, dst: Reg, bits: i32) -> Insn {
        let order = if to_be { BPF_TO_BE } else { BPF_TO_LE };
        Insn::new(BPF_ALU | AluOp::End.code() | order, dst, Reg::R0, 0, bits)
    }

    /// A 64-bit compare and jump `off` slots past the next one when it holds.
    pub const fn jmp(op: JmpOp, dst: Reg, operand: Operand, off: i16) -> Insn {
        Insn::with_operand(BPF_JMP | op.code(), dst, operand, off)
    }

    /// A 32-bit compare (of the low halves) and jump.
    pub const fn jmp32(op: JmpOp, dst: Reg, operand: Operand, off: i16) -> Insn {
        Insn::with_operand(BPF_JMP32 | op.code(), dst, operand, off)
    }

    /// `goto +off`.
    pub const fn ja(off: i16) -> Insn {
        Insn::new(BPF_JMP | JmpOp::Ja.code(), Reg::R0, Reg::R0, off, 0)
    }

    /// `exit`: return r0.
    pub const fn exit() -> Insn {
        Insn::new(EXIT, Reg::R0, Reg::R0, 0, 0)
    }

    /// `call` of helper number `helper`.
    pub const fn call(helper: i32) -> Insn {
        Insn::new(BPF_JMP | JmpOp::Call.code(), Reg::R0, Reg::R0, 0, helper)
    }

    /// `dst = *(size *)(src + off)`.
    pub const fn load(size: Size, dst: Reg, src: Reg, off: i16) -> Insn {
        Insn::new(BPF_LDX | size.code() | BPF_MEM, dst, src, off, 0)
    }

    /// `*(size *)(dst + off) = src`.
    pub const fn store(size: Size, dst: Reg, off: i16, src: Reg) -> Insn {
        Insn::new(BPF_STX | size.code() | BPF_MEM, dst, src, off, 0)
    }

    /// `*(size *)(dst + off) = imm`.
    pub const fn store_imm(size: Size, dst: Reg, off: i16, imm: i32) -> Insn {
        Insn::new(BPF_ST | size.code() | BPF_MEM, dst, Reg::R0, off, imm)
    }

    /// The legacy packet load `r0 = ntoh(*(size *)(skb->data + imm))` of socket filters: r6
    /// must hold the context; r1-r5 are clobbered; out of the packet, the program returns 0.
    pub const fn ld_abs(size: Size, imm: i32) -> Insn {
        Insn::new(BPF_LD | size.code() | BPF_ABS, Reg::R0, Reg::R0, 0, imm)
    }

    /// The legacy packet load `r0 = ntoh(*(size *)(skb->data + src + imm))`, like
    /// [`Insn::ld_abs`].
    pub const fn ld_ind(size: Size, src: Reg, imm: i32) -> Insn {
        Insn::new(BPF_LD | size.code() | BPF_IND, Reg::R0, src, 0, imm)
    }

    /// `lddw`: `dst = value`, two slots (the second holds the high 32 bits).
    pub const fn ld_dw(dst: Reg, value: u64) -> [Insn; 2] {
        [
            Insn::new(LDDW, dst, Reg::R0, 0, value as u32 as i32),
            Insn::new(0, Reg::R0, Reg::R0, 0, (value >> 32) as u32 as i32),
        ]
    }

    /// `lddw` of a map: `dst` = the map whose file descriptor is `fd` (source register
    /// [`BPF_PSEUDO_MAP_FD`]); two slots.
    pub const fn ld_map_fd(dst: Reg, fd: i32) -> [Insn; 2] {
        [
            Insn::new(LDDW, dst, Reg(BPF_PSEUDO_MAP_FD), 0, fd),
            Insn::new(0, Reg::R0, Reg::R0, 0, 0),
        ]
    }

    /// The class of the opcode.
    pub const fn class(&self) -> Class {
        Class::of(self.code)
    }

    /// The access size (meaningful for loads and stores).
    pub const fn size(&self) -> Size {
        Size::of(self.code)
    }

    /// The addressing mode (meaningful for loads and stores).
    pub const fn mode(&self) -> Mode {
        Mode::of(self.code)
    }

    /// The operand source (meaningful for ALU operations and jumps).
    pub const fn source(&self) -> Source {
        Source::of(self.code)
    }

    /// The ALU operation, for classes ALU and ALU64.
    pub const fn alu_op(&self) -> Option<AluOp> {
        match self.class() {
            Class::Alu | Class::Alu64 => AluOp::of(self.code),
            _ => None,
        }
    }

    /// The jump operation, for classes JMP and JMP32.
    pub const fn jmp_op(&self) -> Option<JmpOp> {
        match self.class() {
            Class::Jmp | Class::Jmp32 => JmpOp::of(self.code),
            _ => None,
        }
    }

    /// True for the first slot of a 16-byte `lddw`.
    pub const fn is_lddw(&self) -> bool {
        self.code == LDDW
    }

    /// The kernel's layout: code, registers (dst in the low nibble on little-endian hosts, in
    /// the high one on big-endian hosts, as the C bit-fields fall), then `off` and `imm` in
    /// the host's byte order.
    pub fn to_bytes(&self) -> [u8; 8] {
        let regs = if cfg!(target_endian = "little") {
            (self.src.0 << 4) | (self.dst.0 & 0x0f)
        } else {
            (self.dst.0 << 4) | (self.src.0 & 0x0f)
        };
        let off = self.off.to_ne_bytes();
        let imm = self.imm.to_ne_bytes();
        [
            self.code, regs, off[0], off[1], imm[0], imm[1], imm[2], imm[3],
        ]
    }

    /// The instruction in an 8-byte slot (the inverse of [`Insn::to_bytes`]).
    pub fn from_bytes(bytes: [u8; 8]) -> Insn {
        let (dst, src) = if cfg!(target_endian = "little") {
            (bytes[1] & 0x0f, bytes[1] >> 4)
        } else {
            (bytes[1] >> 4, bytes[1] & 0x0f)
        };
        Insn {
            code: bytes[0],
            dst: Reg(dst),
            src: Reg(src),
            off: i16::from_ne_bytes([bytes[2], bytes[3]]),
            imm: i32::from_ne_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
        }
    }
}

/// The bytes of a program, as `BPF_PROG_LOAD` takes them.
pub fn encode(prog: &[Insn]) -> Vec<u8> {
    prog.iter().flat_map(|insn| insn.to_bytes()).collect()
}

/// A byte string that is not a whole number of instruction slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{len} bytes is not a whole number of 8-byte eBPF instructions ({} left over)", len % 8)]
pub struct DecodeError {
    /// The length given.
    pub len: usize,
}

/// The instructions in `bytes` (the inverse of [`encode`]).
pub fn decode(bytes: &[u8]) -> Result<Vec<Insn>, DecodeError> {
    if !bytes.len().is_multiple_of(8) {
        return Err(DecodeError { len: bytes.len() });
    }
    Ok(bytes
        .chunks_exact(8)
        .map(|slot| {
            let mut b = [0u8; 8];
            b.copy_from_slice(slot);
            Insn::from_bytes(b)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_endian = "little")]
    fn slots_have_the_kernels_layout() {
        // r3 = *(u32 *)(r1 +4): 0x61, src 1 dst 3, off 4.
        let insn = Insn::load(Size::W, Reg::R3, Reg::R1, 4);
        assert_eq!(insn.to_bytes(), [0x61, 0x13, 4, 0, 0, 0, 0, 0]);
        // w0 = 2: 0xb4, imm 2.
        assert_eq!(
            Insn::mov32_imm(Reg::R0, 2).to_bytes(),
            [0xb4, 0, 0, 0, 2, 0, 0, 0]
        );
        // if w6 == 0xffffffff goto pc-1: JMP32 | JEQ | K = 0x16.
        let jump = Insn::jmp32(JmpOp::Jeq, Reg::R6, Operand::Imm(-1), -1);
        assert_eq!(
            jump.to_bytes(),
            [0x16, 0x06, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]
        );
        assert_eq!(Insn::exit().to_bytes(), [0x95, 0, 0, 0, 0, 0, 0, 0]);
        let [lo, hi] = Insn::ld_dw(Reg::R1, 0x1122_3344_5566_7788);
        assert_eq!(lo.to_bytes(), [0x18, 0x01, 0, 0, 0x88, 0x77, 0x66, 0x55]);
        assert_eq!(hi.to_bytes(), [0, 0, 0, 0, 0x44, 0x33, 0x22, 0x11]);
        // r2 = be16 r2: 0xdc, imm 16.
        assert_eq!(
            Insn::endian(true, Reg::R2, 16).to_bytes(),
            [0xdc, 0x02, 0, 0, 16, 0, 0, 0]
        );
        // Legacy loads: ldabsh 12 = 0x28, ldindb with src r7 = 0x50.
        assert_eq!(Insn::ld_abs(Size::H, 12).code, 0x28);
        assert_eq!(
            Insn::ld_ind(Size::B, Reg::R7, 0).to_bytes()[..2],
            [0x50, 0x70]
        );
    }

    #[test]
    fn bytes_round_trip_and_fields_decode() {
        let prog = [
            Insn::alu64(AluOp::Add, Reg::R2, Operand::Imm(-8)),
            Insn::alu32(AluOp::Lsh, Reg::R6, Operand::Reg(Reg::R1)),
            Insn::store_imm(Size::DW, Reg::FP, -64, 0),
            Insn::store(Size::W, Reg::FP, -4, Reg::R7),
            Insn::jmp(JmpOp::Jgt, Reg::R1, Operand::Reg(Reg::R9), 300),
            Insn::ld_dw(Reg::R9, u64::MAX)[0],
            Insn::ld_dw(Reg::R9, u64::MAX)[1],
            Insn::call(1),
        ];
        let bytes = encode(&prog);
        assert_eq!(bytes.len(), 64);
        assert_eq!(decode(&bytes).unwrap(), prog);
        assert_eq!(decode(&bytes[..7]), Err(DecodeError { len: 7 }));
        assert_eq!(prog[0].class(), Class::Alu64);
        assert_eq!(prog[0].alu_op(), Some(AluOp::Add));
        assert_eq!(prog[1].source(), Source::X);
        assert_eq!(prog[2].size(), Size::DW);
        assert_eq!(prog[2].mode(), Mode::Mem);
        assert_eq!(prog[4].jmp_op(), Some(JmpOp::Jgt));
        assert_eq!(prog[4].alu_op(), None);
        assert!(prog[5].is_lddw());
        for byte in 0..=255u8 {
            let insn = Insn::from_bytes([byte, byte, byte, 0x80, byte, 0, 0, 0x80]);
            assert_eq!(Insn::from_bytes(insn.to_bytes()), insn);
        }
    }

    #[test]
    fn inverse_jumps_are_exact_opposites() {
        for op in [JmpOp::Jeq, JmpOp::Jgt, JmpOp::Jge, JmpOp::Jlt, JmpOp::Jsle] {
            let inverse = op.inverse().unwrap();
            assert_eq!(inverse.inverse(), Some(op));
            assert_ne!(inverse, op);
        }
        assert_eq!(JmpOp::Jset.inverse(), None);
    }
}
