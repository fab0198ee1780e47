//! Label resolution: the one place where jump offsets are computed and range-checked.
//!
//! Both the assembler (text with labels) and the program builder of the generators hand a list
//! of [`Stmt`]s to [`resolve`]. Each statement carries a position `P` of the caller's choosing
//! (`line:col` for the assembler, a description for generated code) that errors point at.
//!
//! Rules checked:
//! - every label named by a jump is defined, and defined once;
//! - jumps go forward only (classic BPF cannot jump backwards or to itself);
//! - a conditional jump's offsets fit in 8 bits (0..=255);
//! - a jump target is an instruction of the program (not past its end);
//! - the program has at most `max_insns` instructions.

use std::collections::HashMap;
use std::fmt;

use crate::insn::{Insn, JumpCond, Operand, RawInsn};

/// Where a jump goes, before resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The next instruction (offset 0).
    Next,
    /// The instruction following the definition of this label.
    Label(String),
    /// An absolute instruction index (as `tcpdump -d` listings print).
    Index(usize),
}

/// What one statement of a program with symbolic labels is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StmtKind {
    /// Defines a label naming the next instruction.
    Label(String),
    /// An instruction with no symbolic target (a jump given here keeps its numeric offsets).
    Insn(Insn),
    /// A conditional jump with symbolic targets.
    Jump {
        /// The comparison.
        cond: JumpCond,
        /// What A is compared with.
        operand: Operand,
        /// Target when the comparison holds.
        jt: Target,
        /// Target when it does not.
        jf: Target,
    },
    /// An unconditional jump with a symbolic target.
    Ja(Target),
}

/// One statement and the position errors should point at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stmt<P> {
    /// The statement.
    pub kind: StmtKind,
    /// Where it came from.
    pub pos: P,
}

/// Why resolution failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelErrorKind<P> {
    /// A jump names a label that is never defined.
    UnknownLabel(String),
    /// A label is defined twice.
    DuplicateLabel {
        /// The label.
        name: String,
        /// Where it was first defined.
        first: P,
    },
    /// A jump goes backwards or to itself.
    BackwardJump {
        /// The target as written.
        target: String,
    },
    /// A conditional jump's offset does not fit in 8 bits.
    OffsetTooLarge {
        /// The target as written.
        target: String,
        /// The offset that would be needed.
        offset: u64,
    },
    /// A jump target is past the last instruction.
    PastEnd {
        /// The target as written.
        target: String,
    },
    /// The program is longer than allowed.
    TooManyInstructions {
        /// Instructions in the program.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The program has no instructions.
    Empty,
}

/// A resolution error at a statement's position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelError<P> {
    /// Where the error is (the jump, or the duplicate label).
    pub pos: P,
    /// What is wrong.
    pub kind: LabelErrorKind<P>,
}

impl<P: fmt::Display> fmt::Display for LabelErrorKind<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LabelErrorKind::UnknownLabel(name) => write!(f, "unknown label '{name}': expected a label defined later in the program"),
            LabelErrorKind::DuplicateLabel { name, first } => {
                write!(f, "duplicate label '{name}' (first defined at {first})")
            }
            LabelErrorKind::BackwardJump { target } => write!(
                f,
                "jump to '{target}' goes backwards or to itself: classic BPF jumps only forward"
            ),
            LabelErrorKind::OffsetTooLarge { target, offset } => write!(
                f,
                "conditional jump to '{target}' needs offset {offset}, expected at most 255 (use 'ja' for longer jumps)"
            ),
            LabelErrorKind::PastEnd { target } => write!(
                f,
                "jump to '{target}' goes past the last instruction: expected a target inside the program"
            ),
            LabelErrorKind::TooManyInstructions { count, max } => {
                write!(f, "program has {count} instructions, expected at most {max}")
            }
            LabelErrorKind::Empty => write!(f, "program has no instructions, expected at least one"),
        }
    }
}

impl<P: fmt::Display> fmt::Display for LabelError<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.pos, self.kind)
    }
}

impl<P: fmt::Display + fmt::Debug> std::error::Error for LabelError<P> {}

fn target_text(target: &Target) -> String {
    match target {
        Target::Next => "next instruction".to_string(),
        Target::Label(name) => name.clone(),
        Target::Index(index) => index.to_string(),
    }
}

/// Resolves labels to offsets and encodes the program.
///
/// Errors are reported for the first offending statement in program order.
pub fn resolve<P: Clone>(
    stmts: &[Stmt<P>],
    max_insns: usize,
) -> Result<Vec<RawInsn>, LabelError<P>> {
    // First pass: instruction index of every label.
    let mut labels: HashMap<&str, (usize, &P)> = HashMap::new();
    let mut count = 0usize;
    let mut last_pos = None;
    for stmt in stmts {
        match &stmt.kind {
            StmtKind::Label(name) => {
                if let Some((_, first)) = labels.get(name.as_str()) {
                    return Err(LabelError {
                        pos: stmt.pos.clone(),
                        kind: LabelErrorKind::DuplicateLabel {
                            name: name.clone(),
                            first: (*first).clone(),
                        },
                    });
                }
                labels.insert(name, (count, &stmt.pos));
            }
            _ => {
                count += 1;
                if count == max_insns + 1 {
                    last_pos = Some(stmt.pos.clone());
                }
            }
        }
    }
    if let Some(pos) = last_pos {
        return Err(LabelError {
            pos,
            kind: LabelErrorKind::TooManyInstructions {
                count,
                max: max_insns,
            },
        });
    }

    // Second pass: offsets.
    let mut out = Vec::with_capacity(count);
    for stmt in stmts {
        let pc = out.len();
        let offset = |target: &Target, limit: u64| -> Result<u64, LabelError<P>> {
            let error = |kind| LabelError {
                pos: stmt.pos.clone(),
                kind,
            };
            let index = match target {
                Target::Next => pc + 1,
                Target::Index(index) => *index,
                Target::Label(name) => match labels.get(name.as_str()) {
                    Some((index, _)) => *index,
                    None => return Err(error(LabelErrorKind::UnknownLabel(name.clone()))),
                },
            };
            if index <= pc {
                return Err(error(LabelErrorKind::BackwardJump {
                    target: target_text(target),
                }));
            }
            if index >= count {
                return Err(error(LabelErrorKind::PastEnd {
                    target: target_text(target),
                }));
            }
            let offset = (index - pc - 1) as u64;
            if offset > limit {
                return Err(error(LabelErrorKind::OffsetTooLarge {
                    target: target_text(target),
                    offset,
                }));
            }
            Ok(offset)
        };
        let insn = match &stmt.kind {
            StmtKind::Label(_) => continue,
            StmtKind::Insn(insn) => *insn,
            StmtKind::Ja(target) => Insn::Ja(offset(target, u64::from(u32::MAX))? as u32),
            StmtKind::Jump {
                cond,
                operand,
                jt,
                jf,
            } => Insn::Jump {
                cond: *cond,
                operand: *operand,
                jt: offset(jt, 255)? as u8,
                jf: offset(jf, 255)? as u8,
            },
        };
        out.push(insn.encode());
    }
    if out.is_empty() {
        let pos = match stmts.last() {
            Some(stmt) => stmt.pos.clone(),
            None => {
                return Ok(out);
            }
        };
        return Err(LabelError {
            pos,
            kind: LabelErrorKind::Empty,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(kind: StmtKind, line: usize) -> Stmt<usize> {
        Stmt { kind, pos: line }
    }

    fn jeq(jt: Target, jf: Target) -> StmtKind {
        StmtKind::Jump {
            cond: JumpCond::Eq,
            operand: Operand::K(1),
            jt,
            jf,
        }
    }

    #[test]
    fn resolves_forward_labels() {
        let prog = vec![
            at(jeq(Target::Label("yes".into()), Target::Next), 1),
            at(StmtKind::Insn(Insn::RetK(0)), 2),
            at(StmtKind::Label("yes".into()), 3),
            at(StmtKind::Insn(Insn::RetK(65535)), 4),
        ];
        let raw = resolve(&prog, 4096).unwrap();
        assert_eq!(raw[0], RawInsn::new(0x15, 1, 0, 1));
        assert_eq!(raw.len(), 3);
    }

    #[test]
    fn rejects_backward_unknown_duplicate_far_and_past_end() {
        let backward = vec![
            at(StmtKind::Label("top".into()), 1),
            at(StmtKind::Ja(Target::Label("top".into())), 2),
            at(StmtKind::Insn(Insn::RetK(0)), 3),
        ];
        let err = resolve(&backward, 4096).unwrap_err();
        assert_eq!(err.pos, 2);
        assert!(matches!(err.kind, LabelErrorKind::BackwardJump { .. }));

        let unknown = vec![
            at(StmtKind::Ja(Target::Label("nowhere".into())), 7),
            at(StmtKind::Insn(Insn::RetA), 8),
        ];
        assert_eq!(
            resolve(&unknown, 4096).unwrap_err().kind,
            LabelErrorKind::UnknownLabel("nowhere".into())
        );

        let duplicate = vec![
            at(StmtKind::Label("a".into()), 1),
            at(StmtKind::Insn(Insn::RetA), 2),
            at(StmtKind::Label("a".into()), 3),
            at(StmtKind::Insn(Insn::RetA), 4),
        ];
        let err = resolve(&duplicate, 4096).unwrap_err();
        assert_eq!(err.pos, 3);
        assert_eq!(
            err.kind,
            LabelErrorKind::DuplicateLabel {
                name: "a".into(),
                first: 1
            }
        );

        let mut far = vec![at(jeq(Target::Label("end".into()), Target::Next), 1)];
        far.extend((0..256).map(|i| at(StmtKind::Insn(Insn::LoadImm(i)), 2)));
        far.push(at(StmtKind::Label("end".into()), 3));
        far.push(at(StmtKind::Insn(Insn::RetA), 4));
        assert_eq!(
            resolve(&far, 4096).unwrap_err().kind,
            LabelErrorKind::OffsetTooLarge {
                target: "end".into(),
                offset: 256
            }
        );

        let past_end = vec![
            at(StmtKind::Ja(Target::Label("end".into())), 1),
            at(StmtKind::Label("end".into()), 2),
        ];
        assert!(matches!(
            resolve(&past_end, 4096).unwrap_err().kind,
            LabelErrorKind::PastEnd { .. }
        ));
    }

    #[test]
    fn limits_length() {
        let prog: Vec<_> = (0..5)
            .map(|i| at(StmtKind::Insn(Insn::RetK(i)), i as usize))
            .collect();
        let err = resolve(&prog, 4).unwrap_err();
        assert_eq!(err.pos, 4);
        assert_eq!(
            err.kind,
            LabelErrorKind::TooManyInstructions { count: 5, max: 4 }
        );
    }
}
