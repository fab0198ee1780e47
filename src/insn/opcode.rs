//! The opcode's parts as `linux/filter.h` and `linux/bpf_common.h` name them (classes, sizes,
//! modes, operations, sources), the kernel's limits and special offsets, and the masks that
//! take an opcode apart. Re-exported by [`crate::insn`], whose paths they keep.
//!
//! Only numbers the kernel defines live here: no decoding (that is [`crate::insn::Insn`]).

/// Instruction class: load into A.
pub const BPF_LD: u16 = 0x00;
/// Instruction class: load into X.
pub const BPF_LDX: u16 = 0x01;
/// Instruction class: store A into scratch memory.
pub const BPF_ST: u16 = 0x02;
/// Instruction class: store X into scratch memory.
pub const BPF_STX: u16 = 0x03;
/// Instruction class: arithmetic and logic on A.
pub const BPF_ALU: u16 = 0x04;
/// Instruction class: jumps.
pub const BPF_JMP: u16 = 0x05;
/// Instruction class: return a verdict.
pub const BPF_RET: u16 = 0x06;
/// Instruction class: register transfers (TAX, TXA).
pub const BPF_MISC: u16 = 0x07;

/// Load size: 32-bit word.
pub const BPF_W: u16 = 0x00;
/// Load size: 16-bit half word.
pub const BPF_H: u16 = 0x08;
/// Load size: byte.
pub const BPF_B: u16 = 0x10;

/// Addressing mode: immediate `#k`.
pub const BPF_IMM: u16 = 0x00;
/// Addressing mode: absolute packet offset `[k]`.
pub const BPF_ABS: u16 = 0x20;
/// Addressing mode: indirect packet offset `[x + k]`.
pub const BPF_IND: u16 = 0x40;
/// Addressing mode: scratch memory `M[k]`.
pub const BPF_MEM: u16 = 0x60;
/// Addressing mode: packet length.
pub const BPF_LEN: u16 = 0x80;
/// Addressing mode: `4*([k]&0xf)` (IP header length), LDX only.
pub const BPF_MSH: u16 = 0xa0;

/// ALU operation: addition.
pub const BPF_ADD: u16 = 0x00;
/// ALU operation: subtraction.
pub const BPF_SUB: u16 = 0x10;
/// ALU operation: multiplication.
pub const BPF_MUL: u16 = 0x20;
/// ALU operation: unsigned division.
pub const BPF_DIV: u16 = 0x30;
/// ALU operation: bitwise or.
pub const BPF_OR: u16 = 0x40;
/// ALU operation: bitwise and.
pub const BPF_AND: u16 = 0x50;
/// ALU operation: left shift.
pub const BPF_LSH: u16 = 0x60;
/// ALU operation: logical right shift.
pub const BPF_RSH: u16 = 0x70;
/// ALU operation: negation (`0 - A`).
pub const BPF_NEG: u16 = 0x80;
/// ALU operation: unsigned remainder.
pub const BPF_MOD: u16 = 0x90;
/// ALU operation: bitwise exclusive or.
pub const BPF_XOR: u16 = 0xa0;

/// Jump operation: unconditional, by `k`.
pub const BPF_JA: u16 = 0x00;
/// Jump operation: `A == operand`.
pub const BPF_JEQ: u16 = 0x10;
/// Jump operation: `A > operand` (unsigned).
pub const BPF_JGT: u16 = 0x20;
/// Jump operation: `A >= operand` (unsigned).
pub const BPF_JGE: u16 = 0x30;
/// Jump operation: `A & operand != 0`.
pub const BPF_JSET: u16 = 0x40;

/// Operand source: the constant `k`.
pub const BPF_K: u16 = 0x00;
/// Operand source: the X register.
pub const BPF_X: u16 = 0x08;
/// RET source: the A register.
pub const BPF_A: u16 = 0x10;

/// MISC operation: X = A.
pub const BPF_TAX: u16 = 0x00;
/// MISC operation: A = X.
pub const BPF_TXA: u16 = 0x80;

/// Number of 32-bit scratch memory cells (`M[0]` .. `M[15]`).
pub const BPF_MEMWORDS: u32 = 16;
/// Longest program the kernel accepts for a socket filter.
pub const BPF_MAXINSNS: usize = 4096;
/// Longest program iptables' xt_bpf accepts in bytecode mode.
pub const XT_BPF_MAX_NUM_INSTR: usize = 64;

/// Start of the ancillary-data offsets (as `u32`, `0xfffff000`).
pub const SKF_AD_OFF: u32 = (-0x1000i32) as u32;
/// Start of offsets relative to the network header (as `u32`, `0xfff00000`).
pub const SKF_NET_OFF: u32 = (-0x100000i32) as u32;
/// Start of offsets relative to the link-layer header (as `u32`, `0xffe00000`).
pub const SKF_LL_OFF: u32 = (-0x200000i32) as u32;

/// Mask of the class bits of an opcode.
pub const fn bpf_class(code: u16) -> u16 {
    code & 0x07
}
/// Mask of the size bits of a load opcode.
pub const fn bpf_size(code: u16) -> u16 {
    code & 0x18
}
/// Mask of the mode bits of a load opcode.
pub const fn bpf_mode(code: u16) -> u16 {
    code & 0xe0
}
/// Mask of the operation bits of an ALU or jump opcode.
pub const fn bpf_op(code: u16) -> u16 {
    code & 0xf0
}
/// Mask of the source bit of an ALU or jump opcode.
pub const fn bpf_src(code: u16) -> u16 {
    code & 0x08
}
/// Mask of the source bits of a RET opcode.
pub const fn bpf_rval(code: u16) -> u16 {
    code & 0x18
}
/// Mask of the operation bits of a MISC opcode.
pub const fn bpf_miscop(code: u16) -> u16 {
    code & 0xf8
}
