//! Text to program and back: `bpf_asm` syntax, bytecode text formats, disassembly.
//!
//! [`labels`] is the only place jump offsets are computed and range-checked; the assembler and
//! the generators' program builder both go through it.

pub mod labels;
