//! The kernel's checker (`bpf_check_classic` in net/core/filter.c), as profiles.
//!
//! A program is accepted when:
//! - it has 1..=4096 instructions (socket filter) or 1..=64 (xt_bpf bytecode mode);
//! - every opcode is one the kernel allows (RET X and non-canonical encodings are refused);
//! - no division or modulo by the constant 0, no shift by a constant >= 32;
//! - scratch indexes (`M[k]`, `st`, `stx`) are < 16;
//! - every jump lands inside the program;
//! - `LD ABS` offsets at or above `SKF_AD_OFF` name a known ancillary field;
//! - the last instruction is `ret #k` or `ret a`;
//! - every scratch read is preceded, on every path, by a write (the kernel's conservative pass:
//!   in program order, a jump target keeps only what is known written on all its incoming jumps,
//!   and what falls through from the instruction before it).
//!
//! Unlike the kernel, which stops at the first problem, every violation is reported.
//!
//! Kept here: the kernel's acceptance rules and nothing else. What each instruction reads and
//! writes comes from [`Insn::effects`], not from a list of its own; running a program is the
//! interpreter's. Validation never fails on input: any bytes give a list of violations.

use std::fmt;

use thiserror::Error;

use crate::insn::{
    AluOp, Ancillary, Insn, Operand, RawInsn, BPF_MAXINSNS, BPF_MEMWORDS, SKF_AD_OFF,
    XT_BPF_MAX_NUM_INSTR,
};

/// Where a program will be loaded, which sets its length limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Profile {
    /// `SO_ATTACH_FILTER`, tc, AF_PACKET: at most 4096 instructions.
    #[default]
    Socket,
    /// iptables `-m bpf --bytecode`: at most 64 instructions.
    XtBpf,
}

/// A profile name that is neither `socket` nor `xt_bpf`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown profile '{0}': expected socket or xt_bpf")]
pub struct UnknownProfile(pub String);

impl std::str::FromStr for Profile {
    type Err = UnknownProfile;

    fn from_str(name: &str) -> Result<Profile, UnknownProfile> {
        Profile::ALL
            .into_iter()
            .find(|profile| profile.name() == name)
            .ok_or_else(|| UnknownProfile(name.to_string()))
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Profile {
    /// Every profile.
    pub const ALL: [Profile; 2] = [Profile::Socket, Profile::XtBpf];

    /// One line saying where programs of this profile are loaded.
    pub const fn description(self) -> &'static str {
        match self {
            Profile::Socket => "SO_ATTACH_FILTER, tc, AF_PACKET: at most 4096 instructions",
            Profile::XtBpf => "iptables -m bpf --bytecode: at most 64 instructions",
        }
    }

    /// The longest program this profile accepts.
    pub const fn max_insns(self) -> usize {
        match self {
            Profile::Socket => BPF_MAXINSNS,
            Profile::XtBpf => XT_BPF_MAX_NUM_INSTR,
        }
    }

    /// The profile's name as users type it.
    pub const fn name(self) -> &'static str {
        match self {
            Profile::Socket => "socket",
            Profile::XtBpf => "xt_bpf",
        }
    }
}

/// A kernel rule a program breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// No instructions.
    Empty,
    /// More instructions than the profile allows.
    TooLong {
        /// Instructions in the program.
        len: usize,
        /// The profile's limit.
        max: usize,
        /// The profile.
        profile: Profile,
    },
    /// An opcode the kernel does not know or does not allow.
    UnknownOpcode,
    /// `ret x`, which the kernel's checker refuses.
    RetX,
    /// Division or modulo by the constant 0.
    DivisionByZero,
    /// Shift by a constant of 32 or more.
    ShiftTooLarge,
    /// Scratch memory index of 16 or more.
    ScratchIndex,
    /// A jump whose target is past the last instruction.
    JumpPastEnd,
    /// An ancillary offset the kernel does not know.
    UnknownAncillary,
    /// The last instruction is not `ret #k` or `ret a`.
    LastNotReturn,
    /// A scratch cell read before it is written on every path.
    ScratchNotWritten(u32),
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Empty => write!(f, "the program is empty: at least 1 instruction is needed"),
            Rule::TooLong { len, max, profile } => write!(
                f,
                "the program has {len} instructions, the {} limit is {max}",
                profile.name()
            ),
            Rule::UnknownOpcode => write!(f, "opcode not allowed by the kernel"),
            Rule::RetX => write!(
                f,
                "'ret x' is refused by the kernel: use 'txa' then 'ret a'"
            ),
            Rule::DivisionByZero => write!(f, "division or modulo by the constant 0"),
            Rule::ShiftTooLarge => write!(f, "shift by a constant of 32 or more"),
            Rule::ScratchIndex => write!(f, "scratch memory index out of range: expected 0..15"),
            Rule::JumpPastEnd => write!(f, "jump target past the last instruction"),
            Rule::UnknownAncillary => write!(
                f,
                "offset in the ancillary range names no known ancillary field"
            ),
            Rule::LastNotReturn => write!(f, "the last instruction must be 'ret #k' or 'ret a'"),
            Rule::ScratchNotWritten(cell) => {
                write!(
                    f,
                    "reads M[{cell}], which is not written on every path to here"
                )
            }
        }
    }
}

/// One broken rule at one instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Instruction index (from 0), or `None` for rules about the whole program.
    pub index: Option<usize>,
    /// The instruction.
    pub insn: Option<RawInsn>,
    /// The rule it breaks.
    pub rule: Rule,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.index, self.insn) {
            (Some(index), Some(raw)) => write!(
                f,
                "instruction {index} ({}): {}",
                Insn::decode(raw).display_at(index),
                self.rule
            ),
            _ => write!(f, "{}", self.rule),
        }
    }
}

/// Every rule a program breaks.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub struct ValidationError {
    /// The violations, in program order (whole-program rules first).
    pub violations: Vec<Violation>,
}

impl fmt::Display for ValidationError {
    /// One line: the violations joined with `; `.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "program refused by the kernel's rules: ")?;
        for (i, violation) in self.violations.iter().enumerate() {
            if i > 0 {
                write!(f, "; ")?;
            }
            write!(f, "{violation}")?;
        }
        Ok(())
    }
}

/// Checks a program against the kernel's rules for `profile`.
pub fn validate(prog: &[RawInsn], profile: Profile) -> Result<(), ValidationError> {
    let mut violations = Vec::new();
    let len = prog.len();
    if len == 0 {
        violations.push(Violation {
            index: None,
            insn: None,
            rule: Rule::Empty,
        });
        return Err(ValidationError { violations });
    }
    if len > profile.max_insns() {
        violations.push(Violation {
            index: None,
            insn: None,
            rule: Rule::TooLong {
                len,
                max: profile.max_insns(),
                profile,
            },
        });
    }
    let mut targets_ok = true;
    for (pc, raw) in prog.iter().enumerate() {
        let mut broken = |rule| {
            violations.push(Violation {
                index: Some(pc),
                insn: Some(*raw),
                rule,
            })
        };
        let insn = Insn::decode(*raw);
        match insn {
            Insn::Raw(_) => broken(Rule::UnknownOpcode),
            Insn::RetX => broken(Rule::RetX),
            Insn::Alu {
                op: AluOp::Div | AluOp::Mod,
                operand: Operand::K(0),
            } => broken(Rule::DivisionByZero),
            Insn::Alu {
                op: AluOp::Lsh | AluOp::Rsh,
                operand: Operand::K(k),
            } if k >= 32 => broken(Rule::ShiftTooLarge),
            Insn::LoadMem(k) | Insn::LoadXMem(k) | Insn::Store(k) | Insn::StoreX(k)
                if k >= BPF_MEMWORDS =>
            {
                broken(Rule::ScratchIndex)
            }
            Insn::LoadAbs { offset, .. }
                if offset >= SKF_AD_OFF && Ancillary::from_offset(offset).is_none() =>
            {
                broken(Rule::UnknownAncillary)
            }
            _ => {}
        }
        if let Some((taken, not_taken)) = insn.jump_targets(pc) {
            if taken >= len as u64 || not_taken >= len as u64 {
                broken(Rule::JumpPastEnd);
                targets_ok = false;
            }
        }
    }
    let last = Insn::decode(prog[len - 1]);
    if !matches!(last, Insn::RetK(_) | Insn::RetA) {
        violations.push(Violation {
            index: Some(len - 1),
            insn: Some(prog[len - 1]),
            rule: Rule::LastNotReturn,
        });
    }
    if targets_ok {
        scratch_reads(prog, &mut violations);
    }
    if violations.is_empty() {
        Ok(())
    } else {
        Err(ValidationError { violations })
    }
}

/// The kernel's conservative scratch-memory pass (`check_load_and_stores`), on what each
/// instruction reads and writes ([`Insn::effects`]).
fn scratch_reads(prog: &[RawInsn], violations: &mut Vec<Violation>) {
    // One bit per cell: known written on every path reaching the instruction.
    let mut incoming = vec![u16::MAX; prog.len()];
    let mut written: u16 = 0;
    for (pc, raw) in prog.iter().enumerate() {
        written &= incoming[pc];
        let insn = Insn::decode(*raw);
        // An unknown opcode is refused already; what it might touch says nothing here.
        if !matches!(insn, Insn::Raw(_)) {
            let effects = insn.effects();
            let unwritten = effects.reads.cells() & !written;
            if unwritten != 0 {
                violations.push(Violation {
                    index: Some(pc),
                    insn: Some(*raw),
                    rule: Rule::ScratchNotWritten(unwritten.trailing_zeros()),
                });
                // The kernel stops here; keep going as if the cell were written, so one
                // missing store is reported once.
                written |= unwritten;
            }
            written |= effects.writes.cells();
        }
        if let Some((taken, not_taken)) = insn.jump_targets(pc) {
            incoming[taken as usize] &= written;
            incoming[not_taken as usize] &= written;
            written = u16::MAX;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(prog: &[RawInsn], profile: Profile) -> Vec<(Option<usize>, Rule)> {
        match validate(prog, profile) {
            Ok(()) => vec![],
            Err(e) => e
                .violations
                .into_iter()
                .map(|v| (v.index, v.rule))
                .collect(),
        }
    }

    fn r(code: u16, jt: u8, jf: u8, k: u32) -> RawInsn {
        RawInsn::new(code, jt, jf, k)
    }

    #[test]
    fn accepts_a_plain_filter() {
        let prog = [
            r(0x28, 0, 0, 12),
            r(0x15, 0, 1, 0x800),
            r(0x06, 0, 0, 65535),
            r(0x06, 0, 0, 0),
        ];
        assert_eq!(rules(&prog, Profile::XtBpf), vec![]);
    }

    #[test]
    fn reports_every_violation_with_its_index() {
        let prog = [
            r(0x34, 0, 0, 0),           // div #0
            r(0x64, 0, 0, 32),          // lsh #32
            r(0x02, 0, 0, 16),          // st M[16]
            r(0x20, 0, 0, 0xffff_f040), // unknown ancillary
            r(0x0e, 0, 0, 0),           // ret x
            r(0x15, 0, 9, 0),           // jeq past end
            r(0x00, 0, 0, 0),           // ld #0 last
        ];
        assert_eq!(
            rules(&prog, Profile::Socket),
            vec![
                (Some(0), Rule::DivisionByZero),
                (Some(1), Rule::ShiftTooLarge),
                (Some(2), Rule::ScratchIndex),
                (Some(3), Rule::UnknownAncillary),
                (Some(4), Rule::RetX),
                (Some(5), Rule::JumpPastEnd),
                (Some(6), Rule::LastNotReturn),
            ]
        );
    }

    #[test]
    fn scratch_must_be_written_on_every_path() {
        // jeq #1 -> (st M[0]) ; both paths meet at ld M[0]: one path skips the store.
        let prog = [
            r(0x15, 1, 0, 1),
            r(0x02, 0, 0, 0),
            r(0x60, 0, 0, 0),
            r(0x16, 0, 0, 0),
        ];
        assert_eq!(
            rules(&prog, Profile::Socket),
            vec![(Some(2), Rule::ScratchNotWritten(0))]
        );
        // Written before the branch: fine.
        let prog = [
            r(0x02, 0, 0, 0),
            r(0x15, 1, 0, 1),
            r(0x02, 0, 0, 1),
            r(0x60, 0, 0, 0),
            r(0x16, 0, 0, 0),
        ];
        assert_eq!(rules(&prog, Profile::Socket), vec![]);
    }

    #[test]
    fn length_limits_per_profile() {
        let mut prog = vec![r(0x06, 0, 0, 0); 65];
        assert!(matches!(
            rules(&prog, Profile::XtBpf)[..],
            [(
                None,
                Rule::TooLong {
                    len: 65,
                    max: 64,
                    ..
                }
            )]
        ));
        assert_eq!(rules(&prog, Profile::Socket), vec![]);
        prog.clear();
        assert_eq!(rules(&prog, Profile::Socket), vec![(None, Rule::Empty)]);
    }
}
