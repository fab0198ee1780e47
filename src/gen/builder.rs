//! A program builder with symbolic labels and comments.
//!
//! Generators describe programs as statements; [`Builder::finish`] hands them to
//! [`crate::asm::labels`], the one place jump offsets are computed and range-checked: a
//! conditional jump too far for its 8-bit offset reaches its label through a `ja` trampoline
//! ([`crate::asm::labels::relax`]), so any program up to the length limit is built. The same
//! statements are rendered as commented assembly (which assembles back to the same bytecode:
//! tested for every generator), each instruction as [`crate::insn`] renders it.

use std::fmt::{self, Write};

use crate::asm::labels::{relax, resolve, Inserted, LabelError, Stmt, StmtKind, Target};
use crate::insn::{write_jump, Insn, JumpCond, Operand, RawInsn};

/// A generated program: bytecode and readable assembly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    /// The instructions.
    pub insns: Vec<RawInsn>,
    /// Assembly with comments saying what each block matches; assembles to `insns`.
    pub assembly: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Note {
    Comment(String),
    Blank,
}

/// Where a statement comes from: what it belongs to (shown in errors) and the comment lines
/// the assembly shows before it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Origin {
    context: String,
    notes: Vec<Note>,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.context)
    }
}

/// Builds a program statement by statement.
#[derive(Default)]
pub struct Builder {
    stmts: Vec<Stmt<Origin>>,
    /// Notes for the next statement.
    notes: Vec<Note>,
    next_label: usize,
    context: String,
}

impl Builder {
    /// An empty program.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// A fresh label name starting with `hint`.
    pub fn new_label(&mut self, hint: &str) -> String {
        self.next_label += 1;
        format!("{hint}_{}", self.next_label)
    }

    /// Sets what the following statements belong to (shown in resolution errors).
    pub fn context(&mut self, what: impl Into<String>) {
        self.context = what.into();
    }

    fn push(&mut self, kind: StmtKind) {
        let pos = Origin {
            context: self.context.clone(),
            notes: std::mem::take(&mut self.notes),
        };
        self.stmts.push(Stmt { kind, pos });
    }

    /// Defines `name` at the next instruction.
    pub fn label(&mut self, name: &str) {
        self.notes.push(Note::Blank);
        self.push(StmtKind::Label(name.to_string()));
    }

    /// Adds a comment line to the assembly.
    pub fn comment(&mut self, text: impl Into<String>) {
        self.notes.push(Note::Comment(text.into()));
    }

    /// Adds a non-jump instruction.
    pub fn insn(&mut self, insn: Insn) {
        self.push(StmtKind::Insn(insn));
    }

    /// Adds a conditional jump.
    pub fn jump(&mut self, cond: JumpCond, operand: Operand, jt: Target, jf: Target) {
        self.push(StmtKind::Jump {
            cond,
            operand,
            jt,
            jf,
        });
    }

    /// `if A != k goto target`.
    pub fn jump_unless_eq(&mut self, k: u32, target: &str) {
        self.jump(
            JumpCond::Eq,
            Operand::K(k),
            Target::Next,
            Target::Label(target.to_string()),
        );
    }

    /// Adds an unconditional jump.
    pub fn ja(&mut self, target: &str) {
        self.push(StmtKind::Ja(Target::Label(target.to_string())));
    }

    /// Number of instructions so far.
    pub fn len(&self) -> usize {
        self.stmts
            .iter()
            .filter(|s| !matches!(s.kind, StmtKind::Label(_)))
            .count()
    }

    /// True when no instruction was added.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Resolves labels (at most `max_insns` instructions), with trampolines for conditional
    /// jumps too far for their 8-bit offsets, and renders the assembly.
    pub fn finish(mut self, max_insns: usize) -> Result<Generated, LabelError<String>> {
        relax(&mut self.stmts, max_insns, |origin, inserted| {
            Origin {
            context: origin.context.clone(),
            notes: match inserted {
                Inserted::TrampolineLabel { target } => vec![
                    Note::Blank,
                    Note::Comment(format!(
                        "'{target}' is beyond a conditional jump's reach (255): jumps get there through here"
                    )),
                ],
                Inserted::Trampoline | Inserted::Skip => Vec::new(),
            },
        }
        });
        let insns = resolve(&self.stmts, max_insns).map_err(|e| e.map_pos(|o| o.context))?;
        let mut assembly = String::new();
        let stmts = std::mem::take(&mut self.stmts);
        let trailing = std::mem::take(&mut self.notes);
        for stmt in &stmts {
            write_notes(&mut assembly, &stmt.pos.notes);
            match &stmt.kind {
                StmtKind::Label(name) => {
                    let _ = writeln!(assembly, "{name}:");
                }
                StmtKind::Insn(insn) => {
                    let _ = writeln!(assembly, "\t{insn}");
                }
                StmtKind::Ja(target) => {
                    let _ = writeln!(assembly, "\tja {}", target_name(target));
                }
                StmtKind::Jump {
                    cond,
                    operand,
                    jt,
                    jf,
                } => {
                    let (jt, jf) = (side_name(jt), side_name(jf));
                    let next = self.new_label("next");
                    assembly.push('\t');
                    let named_next = write_jump(
                        &mut assembly,
                        *cond,
                        *operand,
                        jt.as_ref().map(|name| name as &dyn fmt::Display),
                        jf.as_ref().map(|name| name as &dyn fmt::Display),
                        &next,
                    )
                    .unwrap_or(false);
                    assembly.push('\n');
                    if named_next {
                        let _ = writeln!(assembly, "{next}:");
                    }
                }
            }
        }
        write_notes(&mut assembly, &trailing);
        Ok(Generated { insns, assembly })
    }
}

fn write_notes(assembly: &mut String, notes: &[Note]) {
    for note in notes {
        match note {
            Note::Blank => assembly.push('\n'),
            Note::Comment(text) => {
                for part in text.lines() {
                    let _ = writeln!(assembly, "\t; {part}");
                }
            }
        }
    }
}

/// The name of a jump side's target, `None` when it falls through to the next instruction.
fn side_name(target: &Target) -> Option<String> {
    match target {
        Target::Next => None,
        other => Some(target_name(other)),
    }
}

fn target_name(target: &Target) -> String {
    match target {
        Target::Label(name) => name.clone(),
        Target::Index(index) => index.to_string(),
        Target::Next => String::from("next"),
    }
}
