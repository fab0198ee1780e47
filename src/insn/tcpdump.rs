//! The tcpdump dialect: how `tcpdump -d` names an instruction's mnemonic and operand.
//!
//! Kept here: the names tcpdump (libpcap's `bpf_image`) gives that differ from `bpf_asm`'s —
//! `#pktlen`, ancillary fields as `[proto]`, `[vlanp]`, ..., arithmetic constants in signed
//! decimal, `ldxb`, a bare `ret` for `ret a`, `unknown` opcodes — and nothing else: every other
//! instruction is shown as in `bpf_asm`. This module only prints; it never parses, and the
//! numbered listing around these names (`(NNN) op operand jt N jf M`) is the assembler's
//! ([`crate::asm`]).

use super::{signed_offset, AluOp, Ancillary, Insn, Operand, RawInsn};

impl Ancillary {
    /// The name `tcpdump -d` prints for this field (`[proto]`, `[vlanp]`, ...).
    pub const fn tcpdump_name(self) -> &'static str {
        match self {
            Ancillary::Protocol => "proto",
            Ancillary::PktType => "type",
            Ancillary::IfIndex => "ifidx",
            Ancillary::NlAttr => "nla",
            Ancillary::NlAttrNest => "nlan",
            Ancillary::Mark => "mark",
            Ancillary::Queue => "queue",
            Ancillary::HaType => "hatype",
            Ancillary::RxHash => "rxhash",
            Ancillary::Cpu => "cpu",
            Ancillary::AluXorX => "xor_x",
            Ancillary::VlanTag => "vlan_tci",
            Ancillary::VlanTagPresent => "vlanp",
            Ancillary::PayOffset => "poff",
            Ancillary::Random => "random",
            Ancillary::VlanTpid => "vlan_tpid",
        }
    }
}

/// The mnemonic and operand `tcpdump -d` shows for `insn` (see
/// [`Insn::mnemonic_and_operand`]).
pub(super) fn mnemonic_and_operand(insn: &Insn) -> (&'static str, String) {
    match *insn {
        Insn::LoadAbs { size, offset } => {
            let operand = match Ancillary::from_offset(offset) {
                Some(anc) => format!("[{}]", anc.tcpdump_name()),
                None => format!("[{}]", signed_offset(offset)),
            };
            (size.load_mnemonic(), operand)
        }
        Insn::LoadLen => ("ld", "#pktlen".to_string()),
        Insn::LoadXLen => ("ldx", "#pktlen".to_string()),
        Insn::LoadXMsh(k) => ("ldxb", format!("4*([{}]&0xf)", signed_offset(k))),
        // Arithmetic constants in decimal (signed), bit masks in hex.
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
        } => (op.mnemonic(), format!("#{}", k as i32)),
        Insn::RetA => ("ret", String::new()),
        Insn::Raw(RawInsn { code, jt, jf, k }) => (
            "unknown",
            format!("code={code:#x} jt={jt} jf={jf} k={k:#x}"),
        ),
        _ => insn.bpf_asm_mnemonic_and_operand(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::insn::{Dialect, SKF_AD_OFF};

    fn show(code: u16, k: u32) -> (&'static str, String) {
        Insn::decode(RawInsn::new(code, 0, 0, k)).mnemonic_and_operand(Dialect::Tcpdump)
    }

    #[test]
    fn tcpdump_names_differ_from_bpf_asm_where_tcpdump_does() {
        assert_eq!(show(0x80, 0), ("ld", "#pktlen".to_string()));
        assert_eq!(show(0x30, SKF_AD_OFF + 48), ("ldb", "[vlanp]".to_string()));
        assert_eq!(show(0xb1, 14), ("ldxb", "4*([14]&0xf)".to_string()));
        assert_eq!(show(0x14, u32::MAX), ("sub", "#-1".to_string()));
        assert_eq!(show(0x54, 0xf0), ("and", "#0xf0".to_string()));
        assert_eq!(show(0x16, 0), ("ret", String::new()));
        assert_eq!(show(0x28, 12), ("ldh", "[12]".to_string()));
        let bpf_asm =
            Insn::decode(RawInsn::new(0x80, 0, 0, 0)).mnemonic_and_operand(Dialect::BpfAsm);
        assert_eq!(bpf_asm, ("ld", "#len".to_string()));
    }
}
