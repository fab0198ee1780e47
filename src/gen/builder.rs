//! A program builder with symbolic labels and comments.
//!
//! Generators describe programs as statements; [`Builder::finish`] hands them to
//! [`crate::asm::labels::resolve`], the one place jump offsets are computed and range-checked,
//! and renders the same statements as commented assembly (which assembles back to the same
//! bytecode: tested for every generator).

use std::fmt::Write;

use crate::asm::labels::{resolve, LabelError, Stmt, StmtKind, Target};
use crate::insn::{Insn, JumpCond, Operand, RawInsn};

/// A generated program: bytecode and readable assembly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    /// The instructions.
    pub insns: Vec<RawInsn>,
    /// Assembly with comments saying what each block matches; assembles to `insns`.
    pub assembly: String,
}

enum Line {
    Stmt(Stmt<String>),
    Comment(String),
    Blank,
}

/// Builds a program statement by statement.
#[derive(Default)]
pub struct Builder {
    lines: Vec<Line>,
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
        let pos = self.context.clone();
        self.lines.push(Line::Stmt(Stmt { kind, pos }));
    }

    /// Defines `name` at the next instruction.
    pub fn label(&mut self, name: &str) {
        self.lines.push(Line::Blank);
        self.push(StmtKind::Label(name.to_string()));
    }

    /// Adds a comment line to the assembly.
    pub fn comment(&mut self, text: impl Into<String>) {
        self.lines.push(Line::Comment(text.into()));
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
        self.lines
            .iter()
            .filter(|l| matches!(l, Line::Stmt(s) if !matches!(s.kind, StmtKind::Label(_))))
            .count()
    }

    /// True when no instruction was added.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Resolves labels (at most `max_insns` instructions) and renders the assembly.
    pub fn finish(self, max_insns: usize) -> Result<Generated, LabelError<String>> {
        let stmts: Vec<Stmt<String>> = self
            .lines
            .iter()
            .filter_map(|l| match l {
                Line::Stmt(s) => Some(s.clone()),
                _ => None,
            })
            .collect();
        let insns = resolve(&stmts, max_insns)?;
        let mut assembly = String::new();
        let mut synthetic = 0usize;
        for line in &self.lines {
            match line {
                Line::Blank => assembly.push('\n'),
                Line::Comment(text) => {
                    for part in text.lines() {
                        let _ = writeln!(assembly, "\t; {part}");
                    }
                }
                Line::Stmt(stmt) => match &stmt.kind {
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
                        match (jt, jf, inverse) {
                            (_, Target::Next, _) => {
                                let _ = writeln!(
                                    assembly,
                                    "\t{} {operand}, {}",
                                    cond.mnemonic(),
                                    target_name(jt)
                                );
                            }
                            (Target::Next, _, Some(inverse)) => {
                                let _ = writeln!(
                                    assembly,
                                    "\t{inverse} {operand}, {}",
                                    target_name(jf)
                                );
                            }
                            (Target::Next, _, None) => {
                                synthetic += 1;
                                let next = format!("next_{synthetic}");
                                let _ = writeln!(
                                    assembly,
                                    "\t{} {operand}, {next}, {}\n{next}:",
                                    cond.mnemonic(),
                                    target_name(jf)
                                );
                            }
                            _ => {
                                let _ = writeln!(
                                    assembly,
                                    "\t{} {operand}, {}, {}",
                                    cond.mnemonic(),
                                    target_name(jt),
                                    target_name(jf)
                                );
                            }
                        }
                    }
                },
            }
        }
        Ok(Generated { insns, assembly })
    }
}

fn target_name(target: &Target) -> String {
    match target {
        Target::Label(name) => name.clone(),
        Target::Index(index) => index.to_string(),
        Target::Next => String::from("next"),
    }
}
