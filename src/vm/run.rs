//! The interpreter, with the Linux kernel's run-time semantics.
//!
//! A [`Program`] is validated once ([`crate::vm::validate`]) and pre-decoded into a compact form
//! with absolute jump targets, so running it needs no decoding and no checks beyond the packet
//! bounds, allocates nothing and cannot fail.
//!
//! Semantics (checked against this machine's kernel through `SO_ATTACH_FILTER`, see
//! tests/it/kernel.rs):
//! - A = X = 0 and scratch memory zero at the start; u32 wrapping arithmetic; unsigned compares;
//! - loads are big-endian; a load that reaches past the end of the packet ends the program with
//!   verdict 0 (that includes `ldx 4*([k]&0xf)`);
//! - `[x + k]` offsets are computed in u32 and wrap; the offset, as for `[k]`, is then read as a
//!   signed 32-bit number: `[SKF_NET_OFF, SKF_AD_OFF)` is relative to the network header,
//!   `[SKF_LL_OFF, SKF_NET_OFF)` to the link-layer header (verdict 0 when the input has none),
//!   anything else negative gives verdict 0. Ancillary fields are read only by `[k]` loads, which
//!   the validator has checked; an `[x + k]` that lands in the ancillary range reads nothing and
//!   gives 0, as in the kernel;
//! - division or modulo by X == 0 ends the program with verdict 0;
//! - shifts by X use the count modulo 32 (the kernel masks it with 31; libpcap and Go's
//!   x/net/bpf give 0 for counts >= 32);
//! - `#len` is the packet length the program sees ([`Input::wire_len`]).

use crate::insn::{
    AluOp, Ancillary, Insn, JumpCond, Operand, RawInsn, Size, SKF_LL_OFF, SKF_NET_OFF,
};
use crate::vm::validate::{validate, Profile, ValidationError};

/// Values the kernel would give ancillary loads. All zero by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Context {
    /// `skb->protocol` as a number (0x0800 for IPv4).
    pub protocol: u16,
    /// `skb->pkt_type` (0 host, 1 broadcast, 2 multicast, 3 other host, 4 outgoing).
    pub pkt_type: u32,
    /// Interface index.
    pub ifindex: u32,
    /// `skb->mark`.
    pub mark: u32,
    /// `skb->queue_mapping`.
    pub queue: u32,
    /// Device type (`ARPHRD_ETHER` = 1).
    pub hatype: u32,
    /// `skb->hash`.
    pub rxhash: u32,
    /// CPU number.
    pub cpu: u32,
    /// VLAN TCI.
    pub vlan_tci: u32,
    /// Whether a VLAN tag was present (offloaded).
    pub vlan_present: bool,
    /// VLAN TPID.
    pub vlan_tpid: u32,
    /// Offset of the transport payload (`poff`).
    pub pay_offset: u32,
    /// What `rand` returns.
    pub random: u32,
}

/// One packet as a program sees it.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// The captured bytes, from the link-layer header (if any) to the end.
    pub frame: &'a [u8],
    /// Index in `frame` of the program's offset 0.
    pub start: usize,
    /// Index in `frame` of the network header, for `SKF_NET_OFF` loads.
    pub net: Option<usize>,
    /// Index in `frame` of the link-layer header, for `SKF_LL_OFF` loads.
    pub link: Option<usize>,
    /// What `#len` gives: the packet length from the program's offset 0 (on the wire).
    pub wire_len: u32,
    /// Ancillary values.
    pub ctx: Context,
}

impl<'a> Input<'a> {
    /// A packet that starts at the program's offset 0, which is also its network header
    /// (the xt_bpf view); no link-layer header; `#len` = its length.
    pub fn l3(packet: &'a [u8]) -> Input<'a> {
        Input {
            frame: packet,
            start: 0,
            net: Some(0),
            link: None,
            wire_len: packet.len() as u32,
            ctx: Context::default(),
        }
    }
}

/// Why a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// A `ret` instruction at this index.
    Return(usize),
    /// A load past the packet (or into a missing header) at this index.
    OutOfBounds(usize),
    /// Division or modulo by X == 0 at this index.
    DivisionByZero(usize),
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Op {
    LdAbs(Size, u32),
    LdInd(Size, u32),
    LdAnc(Ancillary),
    LdImm(u32),
    LdMem(usize),
    LdLen,
    LdxImm(u32),
    LdxMem(usize),
    LdxLen,
    LdxMsh(u32),
    St(usize),
    Stx(usize),
    AluK(AluOp, u32),
    AluX(AluOp),
    Neg,
    Ja(usize),
    JmpK(JumpCond, u32, usize, usize),
    JmpX(JumpCond, usize, usize),
    RetK(u32),
    RetA,
    Tax,
    Txa,
}

/// A validated, pre-decoded program.
#[derive(Debug, Clone)]
pub struct Program {
    ops: Vec<Op>,
    raw: Vec<RawInsn>,
}

/// What a step changed, for the tracer.
pub(crate) trait Observer {
    fn step(&mut self, pc: usize, a: u32, x: u32, stored: Option<(usize, u32)>);
}

impl Observer for () {
    #[inline(always)]
    fn step(&mut self, _: usize, _: u32, _: u32, _: Option<(usize, u32)>) {}
}

#[inline(always)]
fn read(bytes: &[u8], at: usize, size: Size) -> Option<u32> {
    match size {
        Size::Byte => bytes.get(at).map(|&b| u32::from(b)),
        Size::Half => bytes
            .get(at..at.checked_add(2)?)
            .map(|b| u32::from(u16::from_be_bytes([b[0], b[1]]))),
        Size::Word => bytes
            .get(at..at.checked_add(4)?)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
    }
}

/// The kernel's packet load: offset as a signed number, negative ranges relative to headers.
#[inline(always)]
fn load(input: &Input<'_>, offset: u32, size: Size) -> Option<u32> {
    if (offset as i32) >= 0 {
        return read(input.frame, input.start.checked_add(offset as usize)?, size);
    }
    let base = if offset >= SKF_NET_OFF {
        input.net?.checked_add((offset - SKF_NET_OFF) as usize)?
    } else if offset >= SKF_LL_OFF {
        input.link?.checked_add((offset - SKF_LL_OFF) as usize)?
    } else {
        return None;
    };
    read(input.frame, base, size)
}

fn alu(op: AluOp, a: u32, operand: u32) -> Option<u32> {
    Some(match op {
        AluOp::Add => a.wrapping_add(operand),
        AluOp::Sub => a.wrapping_sub(operand),
        AluOp::Mul => a.wrapping_mul(operand),
        AluOp::Div => a.checked_div(operand)?,
        AluOp::Mod => a.checked_rem(operand)?,
        AluOp::Or => a | operand,
        AluOp::And => a & operand,
        AluOp::Xor => a ^ operand,
        AluOp::Lsh => a.wrapping_shl(operand & 31),
        AluOp::Rsh => a.wrapping_shr(operand & 31),
    })
}

fn cond(cond: JumpCond, a: u32, operand: u32) -> bool {
    match cond {
        JumpCond::Eq => a == operand,
        JumpCond::Gt => a > operand,
        JumpCond::Ge => a >= operand,
        JumpCond::Set => a & operand != 0,
    }
}

/// The kernel's netlink attribute search over `data[offset..]` (`nla_find`): attributes are
/// `{u16 len, u16 type}` in host order (little-endian here), padded to 4 bytes.
fn nla_find(data: &[u8], offset: usize, wanted: u32) -> u32 {
    let mut at = offset;
    while let Some(header) = data.get(at..at + 4) {
        let len = usize::from(u16::from_le_bytes([header[0], header[1]]));
        let kind = u32::from(u16::from_le_bytes([header[2], header[3]]) & 0x3fff);
        if len < 4 || at + len > data.len() {
            break;
        }
        if kind == wanted {
            return at as u32;
        }
        at += (len + 3) & !3;
    }
    0
}

fn ancillary(anc: Ancillary, input: &Input<'_>, a: u32, x: u32) -> u32 {
    let ctx = &input.ctx;
    let data = input.frame.get(input.start..).unwrap_or(&[]);
    match anc {
        Ancillary::Protocol => u32::from(ctx.protocol),
        Ancillary::PktType => ctx.pkt_type,
        Ancillary::IfIndex => ctx.ifindex,
        Ancillary::NlAttr => {
            let a = a as usize;
            if data.len() < 4 || a > data.len() - 4 {
                return 0;
            }
            nla_find(data, a, x)
        }
        Ancillary::NlAttrNest => {
            let a = a as usize;
            if data.len() < 4 || a > data.len() - 4 {
                return 0;
            }
            let len = usize::from(u16::from_le_bytes([data[a], data[a + 1]]));
            if len > data.len() - a || len < 4 {
                return 0;
            }
            nla_find(&data[..a + len], a + 4, x)
        }
        Ancillary::Mark => ctx.mark,
        Ancillary::Queue => ctx.queue,
        Ancillary::HaType => ctx.hatype,
        Ancillary::RxHash => ctx.rxhash,
        Ancillary::Cpu => ctx.cpu,
        Ancillary::AluXorX => a ^ x,
        Ancillary::VlanTag => ctx.vlan_tci,
        Ancillary::VlanTagPresent => u32::from(ctx.vlan_present),
        Ancillary::PayOffset => ctx.pay_offset,
        Ancillary::Random => ctx.random,
        Ancillary::VlanTpid => ctx.vlan_tpid,
    }
}

impl Program {
    /// Validates `prog` for `profile` and prepares it to run.
    pub fn new(prog: &[RawInsn], profile: Profile) -> Result<Program, ValidationError> {
        validate(prog, profile)?;
        let ops = prog
            .iter()
            .enumerate()
            .map(|(pc, raw)| {
                let insn = Insn::decode(*raw);
                // Validation keeps every target inside the program, so it fits a usize.
                let (taken, not_taken) = insn
                    .jump_targets(pc)
                    .map_or((0, 0), |(t, f)| (t as usize, f as usize));
                match insn {
                    Insn::LoadAbs { size, offset } => match Ancillary::from_offset(offset) {
                        Some(anc) => Op::LdAnc(anc),
                        None => Op::LdAbs(size, offset),
                    },
                    Insn::LoadInd { size, offset } => Op::LdInd(size, offset),
                    Insn::LoadImm(k) => Op::LdImm(k),
                    Insn::LoadMem(k) => Op::LdMem(k as usize),
                    Insn::LoadLen => Op::LdLen,
                    Insn::LoadXImm(k) => Op::LdxImm(k),
                    Insn::LoadXMem(k) => Op::LdxMem(k as usize),
                    Insn::LoadXLen => Op::LdxLen,
                    Insn::LoadXMsh(k) => Op::LdxMsh(k),
                    Insn::Store(k) => Op::St(k as usize),
                    Insn::StoreX(k) => Op::Stx(k as usize),
                    Insn::Alu {
                        op,
                        operand: Operand::K(k),
                    } => Op::AluK(op, k),
                    Insn::Alu {
                        op,
                        operand: Operand::X,
                    } => Op::AluX(op),
                    Insn::Neg => Op::Neg,
                    Insn::Ja(_) => Op::Ja(taken),
                    Insn::Jump { cond, operand, .. } => match operand {
                        Operand::K(k) => Op::JmpK(cond, k, taken, not_taken),
                        Operand::X => Op::JmpX(cond, taken, not_taken),
                    },
                    Insn::RetK(k) => Op::RetK(k),
                    Insn::RetA => Op::RetA,
                    Insn::Tax => Op::Tax,
                    Insn::Txa => Op::Txa,
                    // Refused by validate().
                    Insn::RetX | Insn::Raw(_) => Op::RetK(0),
                }
            })
            .collect();
        Ok(Program {
            ops,
            raw: prog.to_vec(),
        })
    }

    /// The program's instructions.
    pub fn insns(&self) -> &[RawInsn] {
        &self.raw
    }

    /// Number of instructions.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Always false: a validated program has at least one instruction.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Runs on a packet that starts at the program's offset 0 (see [`Input::l3`]).
    pub fn run(&self, packet: &[u8]) -> u32 {
        self.run_with(&Input::l3(packet))
    }

    /// Runs on a packet with its context and returns the verdict.
    pub fn run_with(&self, input: &Input<'_>) -> u32 {
        self.exec(input, &mut ()).0
    }

    /// Runs and says why the run ended.
    pub fn run_explained(&self, input: &Input<'_>) -> (u32, Exit) {
        self.exec(input, &mut ())
    }

    #[inline(always)]
    pub(crate) fn exec<O: Observer>(&self, input: &Input<'_>, obs: &mut O) -> (u32, Exit) {
        let (mut a, mut x) = (0u32, 0u32);
        let mut mem = [0u32; 16];
        let mut pc = 0usize;
        // Validation guarantees every jump lands inside the program and the last instruction
        // returns, so `pc` always indexes `ops`.
        loop {
            let op = self.ops[pc];
            let mut stored = None;
            let mut next = pc + 1;
            match op {
                Op::LdAbs(size, k) | Op::LdInd(size, k) => {
                    let offset = if matches!(op, Op::LdInd(..)) {
                        x.wrapping_add(k)
                    } else {
                        k
                    };
                    match load(input, offset, size) {
                        Some(v) => a = v,
                        None => return (0, Exit::OutOfBounds(pc)),
                    }
                }
                Op::LdAnc(anc) => a = ancillary(anc, input, a, x),
                Op::LdImm(k) => a = k,
                Op::LdMem(i) => a = mem[i],
                Op::LdLen => a = input.wire_len,
                Op::LdxImm(k) => x = k,
                Op::LdxMem(i) => x = mem[i],
                Op::LdxLen => x = input.wire_len,
                Op::LdxMsh(k) => match load(input, k, Size::Byte) {
                    Some(v) => x = 4 * (v & 0xf),
                    None => return (0, Exit::OutOfBounds(pc)),
                },
                Op::St(i) => {
                    mem[i] = a;
                    stored = Some((i, a));
                }
                Op::Stx(i) => {
                    mem[i] = x;
                    stored = Some((i, x));
                }
                Op::AluK(op, k) => a = alu(op, a, k).unwrap_or(0),
                Op::AluX(op) => match alu(op, a, x) {
                    Some(v) => a = v,
                    None => return (0, Exit::DivisionByZero(pc)),
                },
                Op::Neg => a = a.wrapping_neg(),
                Op::Ja(target) => next = target,
                Op::JmpK(c, k, t, f) => next = if cond(c, a, k) { t } else { f },
                Op::JmpX(c, t, f) => next = if cond(c, a, x) { t } else { f },
                Op::RetK(k) => {
                    obs.step(pc, a, x, None);
                    return (k, Exit::Return(pc));
                }
                Op::RetA => {
                    obs.step(pc, a, x, None);
                    return (a, Exit::Return(pc));
                }
                Op::Tax => x = a,
                Op::Txa => a = x,
            }
            obs.step(pc, a, x, stored);
            pc = next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asm::assemble;

    fn run(src: &str, packet: &[u8]) -> u32 {
        Program::new(&assemble(src).unwrap(), Profile::Socket)
            .unwrap()
            .run(packet)
    }

    #[test]
    fn loads_are_big_endian_and_bounded() {
        let pkt = [0x45, 0, 0x12, 0x34, 9];
        assert_eq!(run("ldh [2]\nret a", &pkt), 0x1234);
        assert_eq!(run("ld [1]\nret a", &pkt), 0x0012_3409);
        assert_eq!(run("ld [2]\nret a", &pkt), 0);
        assert_eq!(run("ldx 4*([0]&0xf)\ntxa\nret a", &pkt), 20);
        assert_eq!(run("ldx 4*([5]&0xf)\nret #7", &pkt), 0);
        assert_eq!(run("ld #len\nret a", &pkt), 5);
    }

    #[test]
    fn indirect_offsets_wrap_and_go_negative_like_the_kernel() {
        let pkt = [10, 11, 12, 13, 14];
        // X + k wraps: 0xffffffff + 2 = 1.
        assert_eq!(run("ldx #0xffffffff\nldb [x + 2]\nret a", &pkt), 11);
        assert_eq!(run("ldx #5\nldb [x + 0xffffffff]\nret a", &pkt), 14);
        // SKF_NET_OFF via X + k: the network header here is offset 0.
        assert_eq!(run("ldx #0xfff00000\nldb [x + 3]\nret a", &pkt), 13);
        // No link-layer header in an l3 input.
        assert_eq!(run("ldb [-2097152]\nret #9", &pkt), 0);
        // Ancillary range through [x + k] reads nothing.
        assert_eq!(run("ldx #0xfffff000\nldb [x + 0]\nret #9", &pkt), 0);
    }

    #[test]
    fn division_by_x_zero_and_masked_shifts() {
        assert_eq!(run("ld #7\ndiv x\nret #9", &[]), 0);
        assert_eq!(run("ld #7\nmod x\nret #9", &[]), 0);
        assert_eq!(run("ld #1\nldx #33\nlsh x\nret a", &[]), 2);
        assert_eq!(run("ld #0x80000000\nldx #63\nrsh x\nret a", &[]), 1);
        assert_eq!(run("ld #5\nneg\nret a", &[]), 5u32.wrapping_neg());
    }

    #[test]
    fn ancillary_reads_context() {
        let prog = Program::new(
            &assemble("ld #ifidx\nldx #3\nld #mark\nret a").unwrap(),
            Profile::Socket,
        )
        .unwrap();
        let mut input = Input::l3(&[]);
        input.ctx.mark = 42;
        assert_eq!(prog.run_with(&input), 42);
        let prog = Program::new(&assemble("ld #proto\nret a").unwrap(), Profile::Socket).unwrap();
        input.ctx.protocol = 0x86dd;
        assert_eq!(prog.run_with(&input), 0x86dd);
    }
}
