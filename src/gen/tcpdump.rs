//! tcpdump filter expressions, compiled by the system's `tcpdump -ddd`.
//!
//! The expression is compiled for a link type (`-y NAME`), so its offsets fit where the program
//! will see packets start: raw IPv4 / IPv6 for xt_bpf (offset 0), Ethernet (14), Linux cooked
//! v1 (16) and v2 (20), or a capture's own link type (`filter -e`).

use std::process::Command;

use thiserror::Error;

use crate::asm::parse_bytecode;
use crate::insn::{Insn, RawInsn};

/// Why tcpdump could not compile an expression.
#[derive(Debug, Error)]
pub enum TcpdumpError {
    /// tcpdump is not installed or could not run.
    #[error("cannot run tcpdump ({0}): install it (Debian: apt-get install tcpdump)")]
    Missing(String),
    /// tcpdump refused the expression.
    #[error("tcpdump rejected the expression '{expr}': {message}")]
    Rejected {
        /// The expression.
        expr: String,
        /// What tcpdump said.
        message: String,
    },
    /// No tcpdump link type for this header length.
    #[error("no link type has a {0}-byte header before IP: expected --offset 0, 14, 16 or 20")]
    NoLinkType(u32),
    /// The link type has no tcpdump name.
    #[error("link type {0} is not supported for tcpdump expressions")]
    UnsupportedLinkType(u32),
    /// tcpdump printed something unreadable.
    #[error("cannot read tcpdump's output: {0}")]
    Output(String),
}

/// The link type (LINKTYPE_* number) whose header is `offset` bytes long.
pub fn linktype_for(offset: u32, inet6: bool) -> Result<u32, TcpdumpError> {
    crate::pcap::link::for_header_len(offset, inet6).ok_or(TcpdumpError::NoLinkType(offset))
}

/// The name `tcpdump -y` knows a link type by.
pub fn linktype_name(linktype: u32) -> Result<&'static str, TcpdumpError> {
    crate::pcap::link::by_number(linktype)
        .map(|t| t.tcpdump_name)
        .ok_or(TcpdumpError::UnsupportedLinkType(linktype))
}

/// Compiles `expr` (arguments joined with spaces) for `linktype` with `tcpdump -ddd`.
pub fn compile(expr: &[String], linktype: u32) -> Result<Vec<RawInsn>, TcpdumpError> {
    let name = linktype_name(linktype)?;
    let output = Command::new("tcpdump")
        .args(["-ddd", "-y", name, "--"])
        .args(expr)
        .output()
        .map_err(|e| TcpdumpError::Missing(e.to_string()))?;
    let joined = expr.join(" ");
    if !output.status.success() {
        let message = String::from_utf8_lossy(&output.stderr)
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with("Warning"))
            .map(|l| l.trim_start_matches("tcpdump: ").to_string())
            .collect::<Vec<_>>()
            .join(" ");
        return Err(TcpdumpError::Rejected {
            expr: joined,
            message,
        });
    }
    let text = String::from_utf8_lossy(&output.stdout);
    parse_bytecode(&text).map_err(|e| TcpdumpError::Output(e.to_string()))
}

/// Swaps "match" and "no match": `ret #0` becomes `ret #65535` and any other `ret #k` becomes
/// `ret #0`. tcpdump's programs only return constants; one that returns A cannot be negated
/// this way and is refused.
pub fn negate(prog: &[RawInsn]) -> Result<Vec<RawInsn>, TcpdumpError> {
    prog.iter()
        .enumerate()
        .map(|(index, raw)| match Insn::decode(*raw) {
            Insn::RetK(0) => Ok(Insn::RetK(65535).encode()),
            Insn::RetK(_) => Ok(Insn::RetK(0).encode()),
            Insn::RetA | Insn::RetX => Err(TcpdumpError::Output(format!(
                "instruction {index} returns a register: cannot negate this program"
            ))),
            _ => Ok(*raw),
        })
        .collect()
}
