//! Text to program and back: `bpf_asm` syntax, bytecode text formats, disassembly.
//!
//! - [`assemble`] reads `bpf_asm` assembly (and `tcpdump -d` listings) with `line:col` errors;
//! - [`parse_bytecode`] reads every bytecode text form (xt_bpf, `tcpdump -ddd`, C arrays);
//! - [`format_program`] writes every [`Format`], [`disassemble`] writes assembly that assembles
//!   back to the identical bytecode;
//! - [`labels`] is the only place jump offsets are computed and range-checked; the assembler and
//!   the generators' program builder both go through it.

pub mod bytecode;
pub mod format;
pub mod labels;
pub mod parser;

pub use bytecode::{parse_bytecode, BytecodeError};
pub use format::{disassemble, format_program, Format};
pub use parser::{assemble, AsmError, Assembler, Pos};

/// Text quoted in a message, cut to a readable length (a 300-digit number is not echoed whole).
pub fn quote(text: &str) -> String {
    const MAX: usize = 40;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}
