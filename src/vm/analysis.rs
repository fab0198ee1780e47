//! What a program's bytecode says about the packets it expects, read from the instructions
//! without running them: where it reads an IP header and which IP versions it tests for.
//!
//! Kept here: a pass over the instructions in order, each looked at with the one before
//! (which is how generators and tcpdump write these tests), following what A holds through
//! [`Insn::effects`]. It is a heuristic for advice (the `filter` tool's warnings about a
//! program applied at the wrong offset or to the wrong IP version): it must not decide whether
//! a packet matches — only running the program does — and it never fails, whatever the
//! instructions.

use crate::insn::{AluOp, Insn, JumpCond, Operand, RawInsn, Regs, Size, SKF_AD_OFF};

/// What a program's instructions say about the packets it expects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expects {
    /// (instruction index, offset k) of each IP-header read: the IHL through
    /// `ldx 4*([k]&0xf)`, or the version through `ldb [k]` then `and #0xf0` / `rsh #4`.
    pub ip_header_at: Vec<(usize, u32)>,
    /// (instruction index, offset k) of each IPv4 header length read (`ldx 4*([k]&0xf)`).
    pub ihl_at: Vec<(usize, u32)>,
    /// (instruction index, IP version) of each version test: the version nibble, or an
    /// ethertype 0x0800 / 0x86dd.
    pub versions: Vec<(usize, u8)>,
    /// (instruction index, offset k, value) of each `ldb [k]` compared with a constant.
    pub byte_tests: Vec<(usize, u32, u32)>,
}

/// What A holds while the instructions are read in order.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Holds {
    Other,
    /// A byte at offset k.
    Byte(u32),
    /// The version nibble, in the high (true) or low bits.
    Version {
        high: bool,
    },
    /// A 16-bit field that may be an ethertype.
    Ethertype,
}

impl Expects {
    /// Reads `insns`.
    pub fn of(insns: &[RawInsn]) -> Expects {
        let mut found = Expects::default();
        let mut holds = Holds::Other;
        for (index, raw) in insns.iter().enumerate() {
            let insn = Insn::decode(*raw);
            holds = match insn {
                Insn::LoadXMsh(k) => {
                    found.ip_header_at.push((index, k));
                    found.ihl_at.push((index, k));
                    holds
                }
                Insn::LoadAbs {
                    size: Size::Byte,
                    offset,
                } if offset < SKF_AD_OFF => Holds::Byte(offset),
                Insn::LoadAbs {
                    size: Size::Half,
                    offset,
                } if offset < SKF_AD_OFF => Holds::Ethertype,
                // ldh/ld #proto: the skb's protocol, an ethertype.
                Insn::LoadAbs { offset, .. } if offset == SKF_AD_OFF => Holds::Ethertype,
                Insn::Alu {
                    op: AluOp::And,
                    operand: Operand::K(0xf0),
                } => match holds {
                    Holds::Byte(k) => {
                        found.ip_header_at.push((index - 1, k));
                        Holds::Version { high: true }
                    }
                    _ => Holds::Other,
                },
                Insn::Alu {
                    op: AluOp::Rsh,
                    operand: Operand::K(4),
                } => match holds {
                    Holds::Byte(k) => {
                        found.ip_header_at.push((index - 1, k));
                        Holds::Version { high: false }
                    }
                    Holds::Version { high: true } => Holds::Version { high: false },
                    _ => Holds::Other,
                },
                Insn::Jump {
                    cond: JumpCond::Eq,
                    operand: Operand::K(value),
                    ..
                } => {
                    found.note_test(index, holds, value);
                    // A jump leaves A as it was.
                    holds
                }
                // What follows a return is reached only by a jump, with another A.
                _ => {
                    let effects = insn.effects();
                    if effects.returns || effects.writes.contains(Regs::A) {
                        Holds::Other
                    } else {
                        holds
                    }
                }
            };
        }
        found
    }

    /// Notes a `jeq #value` at `index` while A holds `holds`.
    fn note_test(&mut self, index: usize, holds: Holds, value: u32) {
        let version = match (holds, value) {
            (Holds::Version { high: true }, 0x40) | (Holds::Version { high: false }, 4) => Some(4),
            (Holds::Version { high: true }, 0x60) | (Holds::Version { high: false }, 6) => Some(6),
            (Holds::Ethertype, 0x0800) => Some(4),
            (Holds::Ethertype, 0x86dd) => Some(6),
            _ => None,
        };
        if let Some(version) = version {
            self.versions.push((index, version));
        }
        if let Holds::Byte(k) = holds {
            self.byte_tests.push((index, k, value));
        }
    }

    /// The IP versions the program looks for when the IP header is at `ip`, with the first
    /// instruction that says so, in program order: a version or ethertype test, the IPv4
    /// header length (`ldx 4*([ip]&0xf)`), the IPv4 protocol (`ldb [ip + 9]`) or the IPv6
    /// next header (`ldb [ip + 6]`) compared with a transport or extension header number.
    pub fn versions_at(&self, ip: u32) -> Vec<(u8, usize)> {
        const NEXT_HEADERS: [u32; 8] = [0x11, 0x06, 0x01, 0x3a, 0x2c, 0x00, 0x2b, 0x3c];
        let mut found: Vec<(u8, usize)> = self.versions.iter().map(|&(i, v)| (v, i)).collect();
        found.extend(
            self.ihl_at
                .iter()
                .filter(|&&(_, k)| k == ip)
                .map(|&(i, _)| (4, i)),
        );
        for &(index, k, value) in &self.byte_tests {
            if k == ip + 9 && [0x11, 0x06, 0x01].contains(&value) {
                found.push((4, index));
            }
            if k == ip + 6 && NEXT_HEADERS.contains(&value) {
                found.push((6, index));
            }
        }
        found.sort_by_key(|&(_, i)| i);
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asm::assemble;

    fn expects(src: &str) -> Expects {
        Expects::of(&assemble(src).unwrap())
    }

    #[test]
    fn ip_header_reads_and_version_tests() {
        // IPv4 at 14 (Ethernet): ethertype, then the header length and the protocol.
        let e = expects(
            "ldh [12]\njneq #0x800, drop\nldb [23]\njneq #17, drop\nldx 4*([14]&0xf)\nret #1\ndrop: ret #0",
        );
        assert_eq!(e.versions, [(1, 4)]);
        assert_eq!(e.ip_header_at, [(4, 14)]);
        assert_eq!(e.byte_tests, [(3, 23, 17)]);
        assert_eq!(e.versions_at(14), [(4, 1), (4, 3), (4, 4)]);
        assert_eq!(e.versions_at(0), [(4, 1)]);
        // The version nibble at 0, masked then shifted; a store between keeps A.
        let e = expects("ldb [0]\nand #0xf0\nst M[0]\nrsh #4\njeq #6, v6\nret #0\nv6: ret #1");
        assert_eq!(e.ip_header_at, [(0, 0)]);
        assert_eq!(e.versions, [(4, 6)]);
        // A write of A in between forgets what it held.
        let e = expects("ldb [0]\ntxa\nrsh #4\njeq #6, v6\nret #0\nv6: ret #1");
        assert!(e.ip_header_at.is_empty() && e.versions.is_empty());
        // So does a return, which the next instruction is not reached from.
        let e = expects("ldh [12]\njeq #1, l\nret #0\nl: jeq #0x86dd, v6\nret #0\nv6: ret #1");
        assert!(e.versions.is_empty());
    }
}
