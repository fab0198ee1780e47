//! Program -> text, in every format users meet.
//!
//! All formats are produced from one program value, and every one of them is read back by
//! [`crate::asm::parse_bytecode`] (the bytecode forms) or [`crate::asm::assemble`] (assembly
//! and listing) to the identical program.

use std::collections::BTreeSet;
use std::fmt::Write;

use crate::insn::{Dialect, Insn, RawInsn};

/// A text form of a program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// `N,code jt jf k,...,` as `bpf_asm` prints it and xt_bpf / tc read it.
    Bytecode,
    /// A C array as `bpf_asm -c` prints it.
    C,
    /// A C array as `tcpdump -dd` prints it.
    Dd,
    /// The count, then `code jt jf k` per line, as `tcpdump -ddd` prints it.
    Ddd,
    /// `bpf_asm` assembly with generated labels (assembles back to the same bytecode).
    Asm,
    /// A numbered listing in the style of `tcpdump -d`.
    Listing,
}

impl Format {
    /// Every format, in the order help lists them.
    pub const ALL: [Format; 6] = [
        Format::Bytecode,
        Format::C,
        Format::Dd,
        Format::Ddd,
        Format::Asm,
        Format::Listing,
    ];

    /// The name users type (`bytecode`, `c`, `dd`, `ddd`, `asm`, `listing`).
    pub const fn name(self) -> &'static str {
        match self {
            Format::Bytecode => "bytecode",
            Format::C => "c",
            Format::Dd => "dd",
            Format::Ddd => "ddd",
            Format::Asm => "asm",
            Format::Listing => "listing",
        }
    }

    /// One line saying what the format is.
    pub const fn description(self) -> &'static str {
        match self {
            Format::Bytecode => {
                "`N,code jt jf k,...,` as `bpf_asm` prints it and xt_bpf / tc read it"
            }
            Format::C => "A C array as `bpf_asm -c` prints it",
            Format::Dd => "A C array as `tcpdump -dd` prints it",
            Format::Ddd => "The count, then `code jt jf k` per line, as `tcpdump -ddd` prints it",
            Format::Asm => {
                "`bpf_asm` assembly with generated labels (assembles back to the same bytecode)"
            }
            Format::Listing => "A numbered listing in the style of `tcpdump -d`",
        }
    }
}

/// A format name that is none of [`Format::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown format '{0}': expected bytecode, c, dd, ddd, asm or listing")]
pub struct UnknownFormat(pub String);

impl std::str::FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(name: &str) -> Result<Format, UnknownFormat> {
        Format::ALL
            .into_iter()
            .find(|format| format.name() == name)
            .ok_or_else(|| UnknownFormat(name.to_string()))
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Formats a program.
pub fn format_program(prog: &[RawInsn], format: Format) -> String {
    match format {
        Format::Bytecode => format_bytecode(prog),
        Format::C => format_c(prog),
        Format::Dd => format_dd(prog),
        Format::Ddd => format_ddd(prog),
        Format::Asm => disassemble(prog),
        Format::Listing => format_listing(prog),
    }
}

/// `N,code jt jf k,...,` with a trailing comma and newline, byte-identical to `bpf_asm`.
pub fn format_bytecode(prog: &[RawInsn]) -> String {
    let mut out = format!("{},", prog.len());
    for raw in prog {
        let _ = write!(out, "{} {} {} {},", raw.code, raw.jt, raw.jf, raw.k);
    }
    out.push('\n');
    out
}

/// C's `%#0Nx`: `0x` prefix and zero padding to `width` characters in all, except that zero
/// is printed without the prefix (glibc's behaviour, which `bpf_asm -c` inherits).
fn c_alt_hex(value: u32, width: usize) -> String {
    if value == 0 {
        "0".repeat(width)
    } else {
        format!("{value:#0width$x}")
    }
}

/// One `{ %#04x, %2u, %2u, %#010x },` line per instruction, identical to `bpf_asm -c`.
pub fn format_c(prog: &[RawInsn]) -> String {
    let mut out = String::new();
    for raw in prog {
        let _ = writeln!(
            out,
            "{{ {}, {:2}, {:2}, {} }},",
            c_alt_hex(u32::from(raw.code), 4),
            raw.jt,
            raw.jf,
            c_alt_hex(raw.k, 10)
        );
    }
    out
}

/// One `{ 0x%x, %d, %d, 0x%08x },` line per instruction, as `tcpdump -dd`.
pub fn format_dd(prog: &[RawInsn]) -> String {
    let mut out = String::new();
    for raw in prog {
        let _ = writeln!(
            out,
            "{{ 0x{:x}, {}, {}, 0x{:08x} }},",
            raw.code, raw.jt, raw.jf, raw.k
        );
    }
    out
}

/// The count on its own line, then `code jt jf k` per line, as `tcpdump -ddd`.
pub fn format_ddd(prog: &[RawInsn]) -> String {
    let mut out = format!("{}\n", prog.len());
    for raw in prog {
        let _ = writeln!(out, "{} {} {} {}", raw.code, raw.jt, raw.jf, raw.k);
    }
    out
}

/// `bpf_asm` assembly with labels `L<index>` at jump targets. Assembling it gives the same
/// bytecode back for every program whose jumps stay inside it and whose scratch indexes are
/// 0..15 (the assembler refuses `M[16]` and above, as the kernel does); an instruction with an
/// unknown opcode is shown as a comment, since no mnemonic produces it.
///
/// Each line is the instruction's own rendering ([`Insn::display_at`]); this adds the labels
/// its jumps name.
pub fn disassemble(prog: &[RawInsn]) -> String {
    let insns: Vec<Insn> = prog.iter().copied().map(Insn::decode).collect();
    let targets: BTreeSet<u64> = insns
        .iter()
        .enumerate()
        .flat_map(|(pc, insn)| insn.named_targets(pc))
        .collect();
    let mut out = String::new();
    for (pc, insn) in insns.iter().enumerate() {
        if targets.contains(&(pc as u64)) {
            let _ = writeln!(out, "L{pc}:");
        }
        let _ = writeln!(out, "\t{}", insn.display_at(pc));
    }
    // Targets past the end cannot be labels of an instruction: say so instead of emitting an
    // undefined label silently.
    for target in targets.range(prog.len() as u64..) {
        let _ = writeln!(out, "; L{target}: jump target past the end of the program");
    }
    out
}

/// A numbered listing in the style of `tcpdump -d`: `(NNN) op operand`, conditional jumps with
/// absolute targets `jt N jf M`, `ja N` with its absolute target.
pub fn format_listing(prog: &[RawInsn]) -> String {
    let mut out = String::new();
    for (pc, raw) in prog.iter().enumerate() {
        let insn = Insn::decode(*raw);
        let (op, operand) = insn.mnemonic_and_operand(Dialect::Tcpdump);
        let line = match (insn, insn.jump_targets(pc)) {
            (Insn::Jump { .. }, Some((taken, not_taken))) => {
                format!("({pc:03}) {op:<8} {operand:<16} jt {taken}\tjf {not_taken}")
            }
            (_, Some((target, _))) => format!("({pc:03}) {op:<8} {target}"),
            _ if operand.is_empty() => format!("({pc:03}) {op}"),
            _ => format!("({pc:03}) {op:<8} {operand}"),
        };
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prog() -> Vec<RawInsn> {
        // tcpdump -ddd -y EN10MB 'ip' (real output): ldh [12]; jeq #0x800 jt 2 jf 3; ret; ret.
        vec![
            RawInsn::new(40, 0, 0, 12),
            RawInsn::new(21, 0, 1, 2048),
            RawInsn::new(6, 0, 0, 262144),
            RawInsn::new(6, 0, 0, 0),
        ]
    }

    #[test]
    fn bytecode_is_bpf_asm_text() {
        assert_eq!(
            format_bytecode(&prog()),
            "4,40 0 0 12,21 0 1 2048,6 0 0 262144,6 0 0 0,\n"
        );
    }

    #[test]
    fn c_form_prints_zero_like_glibc() {
        // Checked against glibc printf("{ %#04x, %2u, %2u, %#010x },\n", ...) on this machine.
        assert_eq!(
            format_c(&[RawInsn::new(0, 0, 0, 0), RawInsn::new(0x28, 1, 12, 12)]),
            "{ 0000,  0,  0, 0000000000 },\n{ 0x28,  1, 12, 0x0000000c },\n"
        );
    }

    #[test]
    fn tcpdump_forms() {
        assert_eq!(format_dd(&prog()[..1]), "{ 0x28, 0, 0, 0x0000000c },\n");
        assert_eq!(format_ddd(&prog()[..1]), "1\n40 0 0 12\n");
        assert_eq!(
            format_listing(&prog()),
            "(000) ldh      [12]\n(001) jeq      #0x800           jt 2\tjf 3\n(002) ret      #262144\n(003) ret      #0\n"
        );
    }

    #[test]
    fn disassembly_labels_jump_targets() {
        assert_eq!(
            disassemble(&prog()),
            "\tldh [12]\n\tjneq #0x800, L3\n\tret #262144\nL3:\n\tret #0\n"
        );
    }
}
