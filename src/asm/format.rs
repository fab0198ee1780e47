//! Program -> text, in every format users meet.
//!
//! All formats are produced from one program value, and every one of them is read back by
//! [`crate::asm::parse_bytecode`] (the bytecode forms) or [`crate::asm::assemble`] (assembly
//! and listing) to the identical program.

use std::collections::BTreeSet;
use std::fmt::Write;

use crate::insn::{AluOp, Ancillary, Insn, JumpCond, Operand, RawInsn};

/// A text form of a program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
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

/// How a jump is shown: `jeq #k, Lt, Lf` in general, but with the one-label forms `bpf_asm`
/// has when one side falls through (`jeq #k, Lt`, `jneq #k, Lf`, `jlt`, `jle`), so only real
/// targets need labels.
fn jump_text(insn: &Insn, pc: usize) -> Option<(String, Vec<u64>)> {
    let Insn::Jump {
        cond,
        operand,
        jt,
        jf,
    } = *insn
    else {
        return None;
    };
    let label = |offset: u8| pc as u64 + 1 + u64::from(offset);
    let operand = match operand {
        Operand::K(k) => format!("#{k:#x}"),
        Operand::X => "x".to_string(),
    };
    let inverse = match cond {
        JumpCond::Eq => Some("jneq"),
        JumpCond::Ge => Some("jlt"),
        JumpCond::Gt => Some("jle"),
        JumpCond::Set => None,
    };
    Some(match (jt, jf, inverse) {
        (_, 0, _) if jt != 0 => (
            format!("{} {operand}, L{}", cond.mnemonic(), label(jt)),
            vec![label(jt)],
        ),
        (0, _, Some(inverse)) if jf != 0 => (
            format!("{inverse} {operand}, L{}", label(jf)),
            vec![label(jf)],
        ),
        _ => (
            format!(
                "{} {operand}, L{}, L{}",
                cond.mnemonic(),
                label(jt),
                label(jf)
            ),
            vec![label(jt), label(jf)],
        ),
    })
}

/// `bpf_asm` assembly with labels `L<index>` at jump targets. Assembling it gives the same
/// bytecode back for every program whose jumps stay inside it and whose scratch indexes are
/// 0..15 (the assembler refuses `M[16]` and above, as the kernel does); an instruction with an
/// unknown opcode is shown as a comment, since no mnemonic produces it.
pub fn disassemble(prog: &[RawInsn]) -> String {
    let insns: Vec<Insn> = prog.iter().copied().map(Insn::decode).collect();
    let mut lines = Vec::with_capacity(insns.len());
    let mut targets = BTreeSet::new();
    for (pc, insn) in insns.iter().enumerate() {
        let text = match (jump_text(insn, pc), insn) {
            (Some((text, used)), _) => {
                targets.extend(used);
                text
            }
            (None, Insn::Ja(k)) => {
                let target = pc as u64 + 1 + u64::from(*k);
                targets.insert(target);
                format!("ja L{target}")
            }
            (None, _) => insn.display_at(pc).to_string(),
        };
        lines.push(text);
    }
    let mut out = String::new();
    for (pc, line) in lines.iter().enumerate() {
        if targets.contains(&(pc as u64)) {
            let _ = writeln!(out, "L{pc}:");
        }
        let _ = writeln!(out, "\t{line}");
    }
    // Targets past the end cannot be labels of an instruction: say so instead of emitting an
    // undefined label silently.
    for target in targets.range(prog.len() as u64..) {
        let _ = writeln!(out, "; L{target}: jump target past the end of the program");
    }
    out
}

fn listing_operand(insn: &Insn) -> (String, String) {
    let imm = |operand: Operand| match operand {
        Operand::K(k) => format!("#{k:#x}"),
        Operand::X => "x".to_string(),
    };
    let offset = |k: u32| {
        let signed = k as i32;
        if signed < 0 {
            signed.to_string()
        } else {
            k.to_string()
        }
    };
    match *insn {
        Insn::LoadAbs { size, offset: k } => {
            let text = match Ancillary::from_offset(k) {
                Some(anc) => format!("[{}]", anc.tcpdump_name()),
                None => format!("[{}]", offset(k)),
            };
            (size.load_mnemonic().to_string(), text)
        }
        Insn::LoadInd { size, offset: k } => (
            size.load_mnemonic().to_string(),
            format!("[x + {}]", offset(k)),
        ),
        Insn::LoadImm(k) => ("ld".into(), format!("#{k:#x}")),
        Insn::LoadMem(k) => ("ld".into(), format!("M[{k}]")),
        Insn::LoadLen => ("ld".into(), "#pktlen".into()),
        Insn::LoadXImm(k) => ("ldx".into(), format!("#{k:#x}")),
        Insn::LoadXMem(k) => ("ldx".into(), format!("M[{k}]")),
        Insn::LoadXLen => ("ldx".into(), "#pktlen".into()),
        Insn::LoadXMsh(k) => ("ldxb".into(), format!("4*([{}]&0xf)", offset(k))),
        Insn::Store(k) => ("st".into(), format!("M[{k}]")),
        Insn::StoreX(k) => ("stx".into(), format!("M[{k}]")),
        // tcpdump shows arithmetic constants in decimal (signed) and bit masks in hex.
        Insn::Alu {
            op:
                op @ (AluOp::Add
                | AluOp::Sub
                | AluOp::Mul
                | AluOp::Div
                | AluOp::Mod
                | AluOp::Lsh
                | AluOp::Rsh),
            operand: Operand::K(k),
        } => (op.mnemonic().into(), format!("#{}", k as i32)),
        Insn::Alu { op, operand } => (op.mnemonic().into(), imm(operand)),
        Insn::Neg => ("neg".into(), String::new()),
        Insn::Ja(_) => ("ja".into(), String::new()),
        Insn::Jump { cond, operand, .. } => (cond.mnemonic().into(), imm(operand)),
        Insn::RetK(k) => ("ret".into(), format!("#{k}")),
        // tcpdump lists `ret a` as a bare `ret`.
        Insn::RetA => ("ret".into(), String::new()),
        Insn::RetX => ("ret".into(), "x".into()),
        Insn::Tax => ("tax".into(), String::new()),
        Insn::Txa => ("txa".into(), String::new()),
        Insn::Raw(raw) => (
            "unknown".into(),
            format!(
                "code={:#x} jt={} jf={} k={:#x}",
                raw.code, raw.jt, raw.jf, raw.k
            ),
        ),
    }
}

/// A numbered listing in the style of `tcpdump -d`: `(NNN) op operand`, conditional jumps with
/// absolute targets `jt N jf M`, `ja N` with its absolute target.
pub fn format_listing(prog: &[RawInsn]) -> String {
    let mut out = String::new();
    for (pc, raw) in prog.iter().enumerate() {
        let insn = Insn::decode(*raw);
        let (op, operand) = listing_operand(&insn);
        let line = match insn {
            Insn::Jump { jt, jf, .. } => format!(
                "({pc:03}) {op:<8} {operand:<16} jt {}\tjf {}",
                pc + 1 + usize::from(jt),
                pc + 1 + usize::from(jf)
            ),
            Insn::Ja(k) => format!("({pc:03}) {op:<8} {}", pc as u64 + 1 + u64::from(k)),
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
