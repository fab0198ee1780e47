//! Validation with the kernel's rules, interpretation with the kernel's run-time semantics, and
//! tracing of one packet.
//!
//! - [`validate()`] checks a program against a [`Profile`] (socket filter 4096 / xt_bpf 64) and
//!   reports every violation;
//! - [`Program`] is a validated, pre-decoded program whose `run` cannot fail;
//! - [`trace()`] records each executed step of one run;
//! - [`analysis`] reads what a program expects of its packets from its instructions.

pub mod analysis;
mod fuse;
mod op;
pub mod run;
pub mod trace;
pub mod validate;

#[cfg(test)]
mod tests;

pub use run::{Context, Exit, Input, Program};
pub use trace::{trace, Step, Trace};
pub use validate::{validate, Profile, Rule, ValidationError, Violation};
