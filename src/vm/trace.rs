//! Step-by-step execution of one packet, like Linux's `bpf_dbg` step mode.
//!
//! The tracer runs the same interpreter as [`Program::run_with`] with an observer that records
//! each executed instruction, one instruction at a time where a run takes several at once
//! (the superinstructions of the fast path); tests and the `vm_run` fuzz target check that both
//! give the same verdict and end the same way.

use std::fmt;

use crate::insn::Insn;
use crate::vm::run::{Exit, Input, Observer, Program};

/// One executed instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Instruction index.
    pub pc: usize,
    /// The instruction in assembly.
    pub assembly: String,
    /// A after the instruction.
    pub a: u32,
    /// X after the instruction.
    pub x: u32,
    /// Scratch cell written, with its new value.
    pub stored: Option<(usize, u32)>,
}

/// A whole run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    /// Executed instructions, in order (the one that ended the run last).
    pub steps: Vec<Step>,
    /// The verdict.
    pub verdict: u32,
    /// Why the run ended.
    pub exit: Exit,
}

struct Recorder<'p> {
    program: &'p Program,
    steps: Vec<Step>,
}

impl Observer for Recorder<'_> {
    fn step(&mut self, pc: usize, a: u32, x: u32, stored: Option<(usize, u32)>) {
        self.steps.push(Step {
            pc,
            assembly: Insn::decode(self.program.insns()[pc])
                .display_at(pc)
                .to_string(),
            a,
            x,
            stored,
        });
    }
}

/// Runs `program` on one packet and records every step.
pub fn trace(program: &Program, input: &Input<'_>) -> Trace {
    let mut recorder = Recorder {
        program,
        steps: Vec::new(),
    };
    let (verdict, exit) = program.observe(input, &mut recorder);
    if let Exit::OutOfBounds(pc) | Exit::DivisionByZero(pc) = exit {
        // The failing instruction did not complete; show it with the registers it saw.
        let (a, x) = recorder.steps.last().map_or((0, 0), |s| (s.a, s.x));
        recorder.steps.push(Step {
            pc,
            assembly: Insn::decode(program.insns()[pc]).display_at(pc).to_string(),
            a,
            x,
            stored: None,
        });
    }
    Trace {
        steps: recorder.steps,
        verdict,
        exit,
    }
}

impl fmt::Display for Trace {
    /// One line per step (`index  assembly  A=.. X=.. [M[i]=..]`), then `verdict N (reason)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for step in &self.steps {
            write!(
                f,
                "{:>4}  {:<28} A={:#010x} X={:#010x}",
                step.pc, step.assembly, step.a, step.x
            )?;
            if let Some((cell, value)) = step.stored {
                write!(f, " M[{cell}]={value:#010x}")?;
            }
            writeln!(f)?;
        }
        let reason = match self.exit {
            Exit::Return(pc) => format!("ret at instruction {pc}"),
            Exit::OutOfBounds(pc) => format!("load past the end of the packet at instruction {pc}"),
            Exit::DivisionByZero(pc) => format!("division by X = 0 at instruction {pc}"),
        };
        writeln!(f, "verdict {} ({reason})", self.verdict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asm::assemble;
    use crate::vm::Profile;

    #[test]
    fn trace_agrees_with_run_and_explains() {
        let prog = Program::new(
            &assemble("ldb [0]\nst M[1]\njeq #0x45, ok\nret #0\nok: ldh [40]\nret a").unwrap(),
            Profile::Socket,
        )
        .unwrap();
        let packet = [0x45u8, 0, 0, 20];
        let t = trace(&prog, &Input::l3(&packet));
        assert_eq!(t.verdict, prog.run(&packet));
        assert_eq!(t.exit, Exit::OutOfBounds(4));
        let text = t.to_string();
        assert!(text.contains("M[1]=0x00000045"), "{text}");
        assert!(
            text.lines()
                .last()
                .unwrap()
                .starts_with("verdict 0 (load past the end"),
            "{text}"
        );
        let pcs: Vec<usize> = t.steps.iter().map(|s| s.pc).collect();
        assert_eq!(pcs, [0, 1, 2, 4]);
    }
}
