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

use crate::insn::{jump_offset, Insn, JumpCond, Operand, RawInsn};

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

impl<P> LabelError<P> {
    /// The same error with its positions converted by `f`.
    pub fn map_pos<Q>(self, f: impl Fn(P) -> Q) -> LabelError<Q> {
        let kind = match self.kind {
            LabelErrorKind::UnknownLabel(name) => LabelErrorKind::UnknownLabel(name),
            LabelErrorKind::DuplicateLabel { name, first } => LabelErrorKind::DuplicateLabel {
                name,
                first: f(first),
            },
            LabelErrorKind::BackwardJump { target } => LabelErrorKind::BackwardJump { target },
            LabelErrorKind::OffsetTooLarge { target, offset } => {
                LabelErrorKind::OffsetTooLarge { target, offset }
            }
            LabelErrorKind::PastEnd { target } => LabelErrorKind::PastEnd { target },
            LabelErrorKind::TooManyInstructions { count, max } => {
                LabelErrorKind::TooManyInstructions { count, max }
            }
            LabelErrorKind::Empty => LabelErrorKind::Empty,
        };
        LabelError {
            pos: f(self.pos),
            kind,
        }
    }
}

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
            let Some(offset) = jump_offset(pc, index as u64) else {
                return Err(error(LabelErrorKind::BackwardJump {
                    target: target_text(target),
                }));
            };
            if index >= count {
                return Err(error(LabelErrorKind::PastEnd {
                    target: target_text(target),
                }));
            }
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

/// Longest conditional jump offset.
const MAX_CONDITIONAL_OFFSET: u64 = u8::MAX as u64;

/// A statement [`relax`] adds, for the caller to give it a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted<'a> {
    /// The label of a trampoline: a `ja` to `target` that conditional jumps too far from
    /// `target` jump to instead.
    TrampolineLabel {
        /// The far label the trampoline jumps to.
        target: &'a str,
    },
    /// The trampoline's `ja`.
    Trampoline,
    /// A `ja` over trampolines placed where the code before them falls through, or its label.
    Skip,
}

/// The instruction index of every statement (for a label: of the instruction it names), the
/// index of every label, and the instruction count.
fn layout<P>(stmts: &[Stmt<P>]) -> (Vec<usize>, HashMap<&str, usize>, usize) {
    let mut index = Vec::with_capacity(stmts.len());
    let mut labels = HashMap::new();
    let mut count = 0;
    for stmt in stmts {
        index.push(count);
        match &stmt.kind {
            StmtKind::Label(name) => {
                labels.entry(name.as_str()).or_insert(count);
            }
            _ => count += 1,
        }
    }
    (index, labels, count)
}

/// True for a statement after which nothing falls through (`ret`, `ja`): code placed right
/// after it runs only when jumped to.
fn ends_flow(kind: &StmtKind) -> bool {
    match kind {
        StmtKind::Ja(_) => true,
        StmtKind::Insn(insn) => insn.is_return() || matches!(insn, Insn::Ja(_)),
        _ => false,
    }
}

/// Makes every conditional jump to a label reach it, however far: a side whose offset would
/// not fit in 8 bits goes to a trampoline, `ja label`, placed within reach. A trampoline is put
/// where no code falls through (after a `ret` or a `ja`) when there is such a place in reach,
/// else in the middle of the code behind a `ja` over it; trampolines are shared by the jumps
/// that reach them. Repeated until every offset fits (inserting moves other jumps' targets),
/// or until the program is longer than `max_insns`, which [`resolve`] then reports; what
/// `resolve` would refuse for another reason (unknown labels, backward jumps, numeric targets)
/// is left as it is for `resolve` to report. `position` gives each added statement a position
/// from the jump that needed it.
///
/// The assembler does not call this: like `bpf_asm`, it refuses a far conditional jump.
pub fn relax<P: Clone>(
    stmts: &mut Vec<Stmt<P>>,
    max_insns: usize,
    position: impl Fn(&P, Inserted<'_>) -> P,
) {
    let mut names: std::collections::HashSet<String> = stmts
        .iter()
        .filter_map(|stmt| match &stmt.kind {
            StmtKind::Label(name) => Some(name.clone()),
            _ => None,
        })
        .collect();
    let mut serial = 0usize;
    let mut fresh = |names: &mut std::collections::HashSet<String>, hint: &str| loop {
        serial += 1;
        let name = format!("{hint}_{serial}");
        if names.insert(name.clone()) {
            return name;
        }
    };
    // (trampoline label, label it jumps to)
    let mut trampolines: Vec<(String, String)> = Vec::new();
    loop {
        let (index, labels, count) = layout(stmts);
        if count > max_insns {
            return;
        }
        let reach = |pc: usize, target: usize| {
            jump_offset(pc, target as u64).is_some_and(|offset| offset <= MAX_CONDITIONAL_OFFSET)
        };
        // The first conditional jump side that cannot reach its label.
        let far = stmts.iter().enumerate().find_map(|(at, stmt)| {
            let StmtKind::Jump { jt, jf, .. } = &stmt.kind else {
                return None;
            };
            let pc = index[at];
            [(true, jt), (false, jf)]
                .into_iter()
                .find_map(|(taken, target)| match target {
                    Target::Label(name) => match labels.get(name.as_str()) {
                        Some(&to) if to > pc && to < count && !reach(pc, to) => {
                            Some((at, pc, taken, name.clone(), to))
                        }
                        _ => None,
                    },
                    _ => None,
                })
        });
        let Some((at, pc, taken, target, to)) = far else {
            return;
        };
        let shared = trampolines
            .iter()
            .filter(|(_, goes_to)| *goes_to == target)
            .filter_map(|(name, _)| {
                let index = labels[name.as_str()];
                reach(pc, index).then_some((index, name))
            })
            .max_by_key(|(index, _)| *index)
            .map(|(_, name)| name.clone());
        let via = match shared {
            Some(name) => name,
            None => {
                let origin = stmts[at].pos.clone();
                let name = fresh(&mut names, "far");
                // The farthest place in reach where nothing falls through.
                let quiet = (at + 1..stmts.len())
                    .filter(|&s| ends_flow(&stmts[s].kind))
                    .map(|s| (s + 1, index[s] + 1))
                    .take_while(|&(_, insn)| reach(pc, insn) && insn < to)
                    .last();
                let trampoline = [
                    Stmt {
                        kind: StmtKind::Label(name.clone()),
                        pos: position(&origin, Inserted::TrampolineLabel { target: &target }),
                    },
                    Stmt {
                        kind: StmtKind::Ja(Target::Label(target.clone())),
                        pos: position(&origin, Inserted::Trampoline),
                    },
                ];
                match quiet {
                    Some((s, _)) => {
                        stmts.splice(s..s, trampoline);
                    }
                    None => {
                        // Behind a `ja` over it, at the farthest instruction in reach, before
                        // the labels of that instruction (jumps to them need not cross it).
                        let goal = pc + MAX_CONDITIONAL_OFFSET as usize;
                        let mut s = (at + 1..stmts.len())
                            .find(|&s| index[s] == goal)
                            .unwrap_or(stmts.len());
                        while s > at + 1 && matches!(stmts[s - 1].kind, StmtKind::Label(_)) {
                            s -= 1;
                        }
                        let over = fresh(&mut names, "over");
                        let skip = position(&origin, Inserted::Skip);
                        let mut island = vec![Stmt {
                            kind: StmtKind::Ja(Target::Label(over.clone())),
                            pos: skip.clone(),
                        }];
                        island.extend(trampoline);
                        island.push(Stmt {
                            kind: StmtKind::Label(over),
                            pos: skip,
                        });
                        stmts.splice(s..s, island);
                    }
                }
                trampolines.push((name.clone(), target.clone()));
                name
            }
        };
        // `at` is unchanged: everything inserted comes after it.
        if let StmtKind::Jump { jt, jf, .. } = &mut stmts[at].kind {
            *(if taken { jt } else { jf }) = Target::Label(via);
        }
    }
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

    fn count(prog: &[Stmt<usize>]) -> usize {
        prog.iter()
            .filter(|s| !matches!(s.kind, StmtKind::Label(_)))
            .count()
    }

    fn run(raw: &[RawInsn], packet: &[u8]) -> u32 {
        crate::vm::Program::new(raw, crate::vm::Profile::Socket)
            .unwrap()
            .run(packet)
    }

    #[test]
    fn relax_puts_trampolines_where_nothing_falls_through() {
        // A = packet[0]; if A == 1 goto far; 100 loads; ret #5; 300 loads; far: ret #7.
        let no = || Target::Label("far".into());
        let mut prog = vec![
            at(
                StmtKind::Insn(Insn::LoadAbs {
                    size: crate::insn::Size::Byte,
                    offset: 0,
                }),
                1,
            ),
            at(jeq(no(), Target::Next), 2),
        ];
        prog.extend((0..100).map(|i| at(StmtKind::Insn(Insn::LoadImm(i)), 3)));
        prog.push(at(StmtKind::Insn(Insn::RetK(5)), 4));
        prog.extend((0..300).map(|i| at(StmtKind::Insn(Insn::LoadImm(i)), 5)));
        prog.push(at(StmtKind::Label("far".into()), 6));
        prog.push(at(StmtKind::Insn(Insn::RetK(7)), 7));
        assert!(matches!(
            resolve(&prog, 4096).unwrap_err().kind,
            LabelErrorKind::OffsetTooLarge { .. }
        ));
        let before = count(&prog);
        relax(&mut prog, 4096, |pos, _| *pos);
        // One `ja` after `ret #5`, nothing on the path that falls through.
        assert_eq!(count(&prog), before + 1);
        let raw = resolve(&prog, 4096).unwrap();
        assert_eq!(raw[102], Insn::RetK(5).encode());
        assert_eq!(Insn::decode(raw[103]).jump_targets(103), Some((404, 404)));
        assert_eq!(run(&raw, &[1]), 7);
        assert_eq!(run(&raw, &[2]), 5);
    }

    #[test]
    fn relax_builds_islands_in_straight_code_and_shares_them() {
        // A = the packet's first word; `if A == i goto no` for i in 1..=600; ret #1; no: ret #0.
        let mut prog = vec![at(
            StmtKind::Insn(Insn::LoadAbs {
                size: crate::insn::Size::Word,
                offset: 0,
            }),
            0,
        )];
        prog.extend((1..=600).map(|i| {
            at(
                StmtKind::Jump {
                    cond: JumpCond::Eq,
                    operand: Operand::K(i as u32),
                    jt: Target::Label("no".into()),
                    jf: Target::Next,
                },
                i,
            )
        }));
        prog.push(at(StmtKind::Insn(Insn::RetK(1)), 601));
        prog.push(at(StmtKind::Label("no".into()), 602));
        prog.push(at(StmtKind::Insn(Insn::RetK(0)), 603));
        let before = count(&prog);
        relax(&mut prog, 4096, |pos, _| *pos);
        let raw = resolve(&prog, 4096).unwrap();
        // Two islands (a `ja` over one trampoline), each shared by the jumps before it.
        assert_eq!(raw.len(), before + 4, "{}", crate::asm::disassemble(&raw));
        for (word, verdict) in [
            (0u32, 1),
            (1, 0),
            (255, 0),
            (256, 0),
            (300, 0),
            (600, 0),
            (601, 1),
            (u32::MAX, 1),
        ] {
            assert_eq!(run(&raw, &word.to_be_bytes()), verdict, "{word}");
        }
    }

    #[test]
    fn relax_stops_at_the_length_limit() {
        let mut prog = vec![at(jeq(Target::Label("end".into()), Target::Next), 1)];
        prog.extend((0..300).map(|i| at(StmtKind::Insn(Insn::LoadImm(i)), 2)));
        prog.push(at(StmtKind::Label("end".into()), 3));
        prog.push(at(StmtKind::Insn(Insn::RetA), 4));
        relax(&mut prog, 302, |pos, _| *pos);
        assert!(matches!(
            resolve(&prog, 302).unwrap_err().kind,
            LabelErrorKind::TooManyInstructions { max: 302, .. }
        ));
    }
}
