//! The cBPF -> eBPF compiler: a program [`crate::vm::validate()`] accepts (socket filter
//! profile) becomes an eBPF program with the kernel's classic semantics, as
//! [`crate::vm::Program`] runs them.
//!
//! What is kept (for every [`Target`]):
//! - A and X are registers holding 32-bit values (every operation on them is a 32-bit one, so
//!   their upper halves stay zero), both 0 at the start; `M[]` is 16 words of stack, and the
//!   words the program reads are zeroed at the start (the VM's scratch memory starts at zero;
//!   the validator already refuses a read of a word not written on every path, so this only
//!   makes the eBPF verifier's view of the stack match);
//! - division and modulo by X check X first and end the run with verdict 0 when it is 0 (eBPF
//!   alone would give 0 or leave A); shifts by X use the count modulo 32, as the kernel does;
//! - a packet load past the end ends the run with verdict 0.
//!
//! [`Target::Xdp`]: the packet is `data..data_end` of `struct xdp_md`, the classic program's
//! offset 0 is `data + base` ([`XdpLayout`]). Every load is preceded by an explicit
//! `pointer + size <= data_end` check the verifier can follow; an indirect load bounds
//! `X + k` first (a linear XDP buffer is shorter than 64 KiB, so a larger offset is a miss),
//! then checks after adding it. Offsets in the classic negative ranges (`SKF_NET_OFF`,
//! `SKF_LL_OFF`) address the layout's network and link-layer headers when it has them and miss
//! otherwise. `#len` is the length from the base to `data_end`. Ancillary loads
//! (`ld #proto`, ...) read fields of a socket buffer XDP has none of: they are refused with
//! [`CompileError::Unsupported`] (except `ld #alu_xor_x`, which is plain arithmetic). The
//! verdict goes through [`Verdicts`]: for XDP usually non-zero -> `XDP_DROP`, zero ->
//! `XDP_PASS`.
//!
//! [`Target::SocketFilter`]: packet loads are the eBPF legacy `ld_abs`/`ld_ind` instructions
//! of socket filters, which the kernel runs with exactly the classic semantics (negative
//! ranges included); `#len` is `skb->len`. Ancillary loads are refused here too.
//!
//! The compiler never emits an instruction the verifier would find unreachable: classic
//! instructions no run reaches (after a `ret`, or after a load that can only miss) are left
//! out. What can fail is typed ([`CompileError`]): a program the validator refuses, an
//! unsupported load, a jump that does not fit eBPF's 16-bit offset.

use thiserror::Error;

use crate::ebpf::insn::{AluOp, Insn, JmpOp, Operand, Reg, Size as ESize};
use crate::insn::{
    AluOp as CAluOp, Ancillary, Insn as CInsn, JumpCond, Operand as COperand, RawInsn, Size,
    SKF_AD_OFF, SKF_LL_OFF, SKF_NET_OFF,
};
use crate::vm::{validate, Profile, ValidationError};

/// `XDP_ABORTED`: an error; the packet is dropped and a trace point fires.
pub const XDP_ABORTED: u32 = 0;
/// `XDP_DROP`: drop the packet.
pub const XDP_DROP: u32 = 1;
/// `XDP_PASS`: give the packet to the network stack.
pub const XDP_PASS: u32 = 2;
/// `XDP_TX`: send the packet back out of the interface it came in on.
pub const XDP_TX: u32 = 3;

/// The largest offset from `data` the verifier lets a packet pointer reach (`MAX_PACKET_OFF`);
/// a linear XDP buffer is shorter, so a load that would need more can only miss.
pub const MAX_PACKET_OFF: u32 = 0xffff;

/// Where the classic program's view lies in an XDP buffer, as offsets from `data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XdpLayout {
    /// The classic program's offset 0 (14: programs made for the network header of an
    /// untagged Ethernet frame; 0: programs made for the link-layer header).
    pub base: u32,
    /// The network header, for `SKF_NET_OFF` loads (`None`: they miss).
    pub network: Option<u32>,
    /// The link-layer header, for `SKF_LL_OFF` loads (`None`: they miss).
    pub link: Option<u32>,
}

impl XdpLayout {
    /// The largest offset a layout may give: a word must still be readable there.
    pub const MAX_OFFSET: u32 = MAX_PACKET_OFF - 4;

    /// Refuses offsets no XDP buffer reaches.
    fn check(&self) -> Result<(), CompileError> {
        for (what, value) in [
            ("base", Some(self.base)),
            ("network header", self.network),
            ("link-layer header", self.link),
        ] {
            if let Some(value) = value.filter(|&v| v > XdpLayout::MAX_OFFSET) {
                return Err(CompileError::Layout { what, value });
            }
        }
        Ok(())
    }

    /// An untagged Ethernet frame at `data` (link-layer header at 0, network header at 14),
    /// the program's offset 0 at `base`.
    pub const fn ethernet(base: u32) -> XdpLayout {
        XdpLayout {
            base,
            network: Some(14),
            link: Some(0),
        }
    }
}

/// What the compiled program is loaded as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `BPF_PROG_TYPE_XDP`, direct packet access with explicit bounds checks.
    Xdp(XdpLayout),
    /// `BPF_PROG_TYPE_SOCKET_FILTER`, packet loads through the legacy `ld_abs`/`ld_ind`.
    SocketFilter,
}

/// What the compiled program returns for the classic program's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdicts {
    /// The classic verdict itself (socket filters: the number of bytes to keep).
    Value,
    /// `matched` for any non-zero classic verdict, `unmatched` for 0 (including the runs
    /// ended by a load past the packet or a division by zero).
    Map {
        /// The return value for a non-zero verdict.
        matched: u32,
        /// The return value for verdict 0.
        unmatched: u32,
    },
}

impl Verdicts {
    /// The XDP mapping of a filter that drops what it matches: non-zero -> `XDP_DROP`,
    /// 0 -> `XDP_PASS`.
    pub const XDP_DROP_MATCHED: Verdicts = Verdicts::Map {
        matched: XDP_DROP,
        unmatched: XDP_PASS,
    };

    /// The return value for classic verdict `verdict`.
    pub const fn of(self, verdict: u32) -> u32 {
        match self {
            Verdicts::Value => verdict,
            Verdicts::Map { matched, .. } if verdict != 0 => matched,
            Verdicts::Map { unmatched, .. } => unmatched,
        }
    }
}

/// Why a classic program could not be compiled.
#[derive(Debug, Error)]
pub enum CompileError {
    /// The validator refuses the program (socket filter profile).
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// An instruction the target cannot express.
    #[error("instruction {pc} (`{text}`): {reason}")]
    Unsupported {
        /// Its index in the classic program.
        pc: usize,
        /// The instruction in `bpf_asm` syntax.
        text: String,
        /// Why, and what would be accepted.
        reason: &'static str,
    },
    /// An XDP layout offset past what a packet pointer may reach.
    #[error(
        "XDP layout: the {what} offset {value} is past {}, the last a packet load can reach",
        XdpLayout::MAX_OFFSET
    )]
    Layout {
        /// Which offset.
        what: &'static str,
        /// Its value.
        value: u32,
    },
    /// A jump of the compiled program does not fit eBPF's signed 16-bit offset.
    #[error(
        "instruction {pc}: its compiled jump spans {distance} eBPF instructions, more than \
         the 32767 an eBPF jump reaches"
    )]
    JumpTooFar {
        /// The classic instruction the jump was compiled from.
        pc: usize,
        /// The distance needed.
        distance: i64,
    },
}

/// The compiled program: eBPF instructions ready for `BPF_PROG_LOAD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compiled {
    /// The instructions.
    pub insns: Vec<Insn>,
    /// For each classic instruction, the index of its first eBPF instruction (`None` for the
    /// ones no run reaches, which are left out).
    pub starts: Vec<Option<usize>>,
}

/// The registers a target's code uses.
#[derive(Debug, Clone, Copy)]
struct Regs {
    a: Reg,
    x: Reg,
    /// Scratch.
    t1: Reg,
    t2: Reg,
}

const XDP_REGS: Regs = Regs {
    a: Reg::R6,
    x: Reg::R7,
    t1: Reg::R1,
    t2: Reg::R2,
};
/// Data and data_end at XDP.
const DATA: Reg = Reg::R8;
const DATA_END: Reg = Reg::R9;

/// At socket filters r6 must hold the context for `ld_abs`/`ld_ind`, which return in r0 and
/// clobber r1-r5.
const SOCKET_REGS: Regs = Regs {
    a: Reg::R8,
    x: Reg::R7,
    t1: Reg::R1,
    t2: Reg::R2,
};
const SKB: Reg = Reg::R6;

/// The stack displacement of `M[cell]`.
fn scratch(cell: u32) -> i16 {
    -64 + 4 * (cell & 15) as i16
}

/// A jump target in the code being emitted.
pub(crate) type Label = usize;

struct Fixup {
    slot: usize,
    label: Label,
    pc: usize,
}

/// The code being emitted, with jumps to labels resolved at the end (the one place eBPF jump
/// offsets are computed, for the compiler and the DNS matcher).
#[derive(Default)]
pub(crate) struct Emitter {
    code: Vec<Insn>,
    bound: Vec<Option<usize>>,
    fixups: Vec<Fixup>,
}

impl Emitter {
    /// A new label, bound later with [`Emitter::bind`].
    pub(crate) fn label(&mut self) -> Label {
        self.bound.push(None);
        self.bound.len() - 1
    }

    /// Binds `label` to the next instruction emitted.
    pub(crate) fn bind(&mut self, label: Label) {
        self.bound[label] = Some(self.code.len());
    }

    /// The number of instruction slots emitted so far.
    pub(crate) fn len(&self) -> usize {
        self.code.len()
    }

    /// Appends an instruction.
    pub(crate) fn emit(&mut self, insn: Insn) {
        self.code.push(insn);
    }

    /// A jump (its `off` ignored) to `label`, for classic instruction `pc`.
    pub(crate) fn jump(&mut self, insn: Insn, label: Label, pc: usize) {
        self.fixups.push(Fixup {
            slot: self.code.len(),
            label,
            pc,
        });
        self.code.push(insn);
    }

    fn is_used(&self, label: Label) -> bool {
        self.fixups.iter().any(|f| f.label == label)
    }

    /// The instructions with every jump's offset set; a jump too long names its `pc`.
    pub(crate) fn resolve(mut self) -> Result<Vec<Insn>, CompileError> {
        for fixup in &self.fixups {
            // Every label a jump names is bound before resolution.
            let target = self.bound[fixup.label].unwrap_or(self.code.len()) as i64;
            let distance = target - (fixup.slot as i64 + 1);
            let off = i16::try_from(distance).map_err(|_| CompileError::JumpTooFar {
                pc: fixup.pc,
                distance,
            })?;
            self.code[fixup.slot].off = off;
        }
        Ok(self.code)
    }
}

/// Where a constant-offset packet load reads, for the XDP layout.
fn xdp_place(layout: &XdpLayout, k: u32) -> Option<u64> {
    if (k as i32) >= 0 {
        Some(u64::from(layout.base) + u64::from(k))
    } else if k >= SKF_AD_OFF {
        None
    } else if k >= SKF_NET_OFF {
        layout
            .network
            .map(|net| u64::from(net) + u64::from(k - SKF_NET_OFF))
    } else if k >= SKF_LL_OFF {
        layout
            .link
            .map(|link| u64::from(link) + u64::from(k - SKF_LL_OFF))
    } else {
        None
    }
}

fn esize(size: Size) -> ESize {
    match size {
        Size::Word => ESize::W,
        Size::Half => ESize::H,
        Size::Byte => ESize::B,
    }
}

/// True when the constant-offset load reaches past any XDP buffer: the run can only end there.
fn xdp_sure_miss(layout: &XdpLayout, k: u32, size: Size) -> bool {
    match xdp_place(layout, k) {
        Some(at) => at + u64::from(size.bytes()) > u64::from(MAX_PACKET_OFF),
        None => true,
    }
}

/// Whether a run that reaches `insn` always ends there (a `ret`, a load that can only miss, a
/// division by the constant 0), for `target`.
fn ends_run(insn: &CInsn, target: &Target) -> bool {
    match (*insn, target) {
        (CInsn::RetK(_) | CInsn::RetA | CInsn::RetX | CInsn::Raw(_), _) => true,
        (
            CInsn::Alu {
                op: CAluOp::Div | CAluOp::Mod,
                operand: COperand::K(0),
            },
            _,
        ) => true,
        (CInsn::LoadAbs { size, offset }, Target::Xdp(layout))
            if Ancillary::from_offset(offset).is_none() =>
        {
            xdp_sure_miss(layout, offset, size)
        }
        (CInsn::LoadXMsh(k), Target::Xdp(layout)) => xdp_sure_miss(layout, k, Size::Byte),
        _ => false,
    }
}

/// The classic instructions some run reaches, for `target`.
fn reachable(insns: &[CInsn], target: &Target) -> Vec<bool> {
    let mut seen = vec![false; insns.len()];
    let mut todo = vec![0usize];
    while let Some(pc) = todo.pop() {
        if pc >= insns.len() || seen[pc] {
            continue;
        }
        seen[pc] = true;
        let insn = &insns[pc];
        if ends_run(insn, target) {
            continue;
        }
        match insn.jump_targets(pc) {
            Some((taken, not_taken)) => {
                todo.push(taken as usize);
                todo.push(not_taken as usize);
            }
            None => todo.push(pc + 1),
        }
    }
    seen
}

/// The scratch words some reachable instruction reads.
fn cells_read(insns: &[CInsn], live: &[bool]) -> u16 {
    insns
        .iter()
        .zip(live)
        .filter(|(_, &live)| live)
        .fold(0u16, |cells, (insn, _)| match *insn {
            CInsn::LoadMem(k) | CInsn::LoadXMem(k) => cells | 1 << (k & 15),
            _ => cells,
        })
}

/// An indirect load whose offset left the fast path: compiled out of line after the program.
struct SlowLoad {
    pc: usize,
    label: Label,
    size: Size,
}

struct Compiler {
    target: Target,
    verdicts: Verdicts,
    regs: Regs,
    e: Emitter,
    /// The label of each classic instruction.
    at: Vec<Label>,
    exit_zero: Label,
    slow: Vec<SlowLoad>,
}

/// Compiles a classic program for `target`, its verdicts returned through `verdicts`.
pub fn compile(
    prog: &[RawInsn],
    target: Target,
    verdicts: Verdicts,
) -> Result<Compiled, CompileError> {
    validate(prog, Profile::Socket)?;
    if let Target::Xdp(layout) = target {
        layout.check()?;
    }
    let insns: Vec<CInsn> = prog.iter().map(|raw| CInsn::decode(*raw)).collect();
    for (pc, insn) in insns.iter().enumerate() {
        if let CInsn::LoadAbs { offset, .. } = insn {
            match Ancillary::from_offset(*offset) {
                None | Some(Ancillary::AluXorX) => {}
                Some(_) => {
                    return Err(CompileError::Unsupported {
                        pc,
                        text: insn.display_at(pc).to_string(),
                        reason: "ancillary loads read socket buffer fields, which an eBPF \
                                 program has no classic view of; only `ld #alu_xor_x` \
                                 (plain arithmetic) is compiled",
                    })
                }
            }
        }
    }
    let live = reachable(&insns, &target);
    let regs = match target {
        Target::Xdp(_) => XDP_REGS,
        Target::SocketFilter => SOCKET_REGS,
    };
    let mut e = Emitter {
        code: Vec::new(),
        bound: Vec::new(),
        fixups: Vec::new(),
    };
    let at: Vec<Label> = (0..insns.len()).map(|_| e.label()).collect();
    let exit_zero = e.label();
    let mut c = Compiler {
        target,
        verdicts,
        regs,
        e,
        at,
        exit_zero,
        slow: Vec::new(),
    };
    c.prologue(cells_read(&insns, &live));
    let mut starts = vec![None; insns.len()];
    for (pc, insn) in insns.iter().enumerate() {
        if !live[pc] {
            continue;
        }
        starts[pc] = Some(c.e.code.len());
        c.e.bind(c.at[pc]);
        c.insn(pc, *insn);
    }
    c.out_of_line()?;
    let insns = c.e.resolve()?;
    Ok(Compiled { insns, starts })
}

impl Compiler {
    fn prologue(&mut self, cells: u16) {
        let Regs { a, x, .. } = self.regs;
        match self.target {
            Target::Xdp(_) => {
                // struct xdp_md { u32 data; u32 data_end; ... }
                self.e.emit(Insn::load(ESize::W, DATA, Reg::R1, 0));
                self.e.emit(Insn::load(ESize::W, DATA_END, Reg::R1, 4));
            }
            Target::SocketFilter => self.e.emit(Insn::mov64_reg(SKB, Reg::R1)),
        }
        self.e.emit(Insn::mov32_imm(a, 0));
        self.e.emit(Insn::mov32_imm(x, 0));
        for cell in 0..16 {
            if cells & (1 << cell) != 0 {
                self.e
                    .emit(Insn::store_imm(ESize::W, Reg::FP, scratch(cell), 0));
            }
        }
    }

    /// `w0 = verdict; exit`.
    fn ret(&mut self, verdict: u32) {
        self.e
            .emit(Insn::mov32_imm(Reg::R0, self.verdicts.of(verdict)));
        self.e.emit(Insn::exit());
    }

    fn goto_exit_zero(&mut self, insn: Insn, pc: usize) {
        self.e.jump(insn, self.exit_zero, pc);
    }

    fn insn(&mut self, pc: usize, insn: CInsn) {
        let Regs { a, x, t1, .. } = self.regs;
        let alu = |op: AluOp, dst: Reg, operand: Operand| Insn::alu32(op, dst, operand);
        match insn {
            CInsn::LoadAbs { offset, .. }
                if Ancillary::from_offset(offset) == Some(Ancillary::AluXorX) =>
            {
                self.e.emit(alu(AluOp::Xor, a, Operand::Reg(x)));
            }
            CInsn::LoadAbs { size, offset } => match self.target {
                Target::Xdp(layout) => self.xdp_load_const(pc, &layout, a, size, offset),
                Target::SocketFilter => {
                    self.e.emit(Insn::ld_abs(esize(size), offset as i32));
                    self.e.emit(Insn::mov64_reg(a, Reg::R0));
                }
            },
            CInsn::LoadInd { size, offset } => match self.target {
                Target::Xdp(layout) => self.xdp_load_ind(pc, &layout, size, offset),
                Target::SocketFilter => {
                    self.e.emit(Insn::ld_ind(esize(size), x, offset as i32));
                    self.e.emit(Insn::mov64_reg(a, Reg::R0));
                }
            },
            CInsn::LoadImm(k) => self.e.emit(Insn::mov32_imm(a, k)),
            CInsn::LoadXImm(k) => self.e.emit(Insn::mov32_imm(x, k)),
            CInsn::LoadMem(k) => self.e.emit(Insn::load(ESize::W, a, Reg::FP, scratch(k))),
            CInsn::LoadXMem(k) => self.e.emit(Insn::load(ESize::W, x, Reg::FP, scratch(k))),
            CInsn::LoadLen => self.len(a),
            CInsn::LoadXLen => self.len(x),
            CInsn::LoadXMsh(k) => {
                match self.target {
                    Target::Xdp(layout) => {
                        self.xdp_load_const(pc, &layout, x, Size::Byte, k);
                        if ends_run(&insn, &self.target) {
                            return;
                        }
                    }
                    Target::SocketFilter => {
                        self.e.emit(Insn::ld_abs(ESize::B, k as i32));
                        self.e.emit(Insn::mov64_reg(x, Reg::R0));
                    }
                }
                self.e.emit(alu(AluOp::And, x, Operand::Imm(0xf)));
                self.e.emit(alu(AluOp::Lsh, x, Operand::Imm(2)));
            }
            CInsn::Store(k) => self.e.emit(Insn::store(ESize::W, Reg::FP, scratch(k), a)),
            CInsn::StoreX(k) => self.e.emit(Insn::store(ESize::W, Reg::FP, scratch(k), x)),
            CInsn::Alu { op, operand } => {
                let op_e = match op {
                    CAluOp::Add => AluOp::Add,
                    CAluOp::Sub => AluOp::Sub,
                    CAluOp::Mul => AluOp::Mul,
                    CAluOp::Div => AluOp::Div,
                    CAluOp::Mod => AluOp::Mod,
                    CAluOp::And => AluOp::And,
                    CAluOp::Or => AluOp::Or,
                    CAluOp::Xor => AluOp::Xor,
                    CAluOp::Lsh => AluOp::Lsh,
                    CAluOp::Rsh => AluOp::Rsh,
                };
                match (op, operand) {
                    // The validator refuses it; a run reaching it would end with 0.
                    (CAluOp::Div | CAluOp::Mod, COperand::K(0)) => {
                        self.goto_exit_zero(Insn::ja(0), pc)
                    }
                    (CAluOp::Lsh | CAluOp::Rsh, COperand::K(k)) => {
                        self.e.emit(alu(op_e, a, Operand::Imm((k & 31) as i32)))
                    }
                    (_, COperand::K(k)) => self.e.emit(alu(op_e, a, Operand::Imm(k as i32))),
                    (CAluOp::Div | CAluOp::Mod, COperand::X) => {
                        self.goto_exit_zero(Insn::jmp32(JmpOp::Jeq, x, Operand::Imm(0), 0), pc);
                        self.e.emit(alu(op_e, a, Operand::Reg(x)));
                    }
                    (CAluOp::Lsh | CAluOp::Rsh, COperand::X) => {
                        self.e.emit(Insn::alu32(AluOp::Mov, t1, Operand::Reg(x)));
                        self.e.emit(alu(AluOp::And, t1, Operand::Imm(31)));
                        self.e.emit(alu(op_e, a, Operand::Reg(t1)));
                    }
                    (_, COperand::X) => self.e.emit(alu(op_e, a, Operand::Reg(x))),
                }
            }
            CInsn::Neg => self.e.emit(alu(AluOp::Neg, a, Operand::Imm(0))),
            CInsn::Ja(k) => {
                if k != 0 {
                    let target = self.at[pc + 1 + k as usize];
                    self.e.jump(Insn::ja(0), target, pc);
                }
            }
            CInsn::Jump {
                cond,
                operand,
                jt,
                jf,
            } => self.branch(pc, cond, operand, jt, jf),
            CInsn::RetK(k) => self.ret(k),
            CInsn::RetA => match self.verdicts {
                Verdicts::Value => {
                    self.e
                        .emit(Insn::alu32(AluOp::Mov, Reg::R0, Operand::Reg(a)));
                    self.e.emit(Insn::exit());
                }
                Verdicts::Map { matched, unmatched } => {
                    self.e.emit(Insn::mov32_imm(Reg::R0, unmatched));
                    self.e.emit(Insn::jmp32(JmpOp::Jeq, a, Operand::Imm(0), 1));
                    self.e.emit(Insn::mov32_imm(Reg::R0, matched));
                    self.e.emit(Insn::exit());
                }
            },
            CInsn::Tax => self.e.emit(Insn::alu32(AluOp::Mov, x, Operand::Reg(a))),
            CInsn::Txa => self.e.emit(Insn::alu32(AluOp::Mov, a, Operand::Reg(x))),
            // Refused by the validator.
            CInsn::RetX | CInsn::Raw(_) => self.ret(0),
        }
    }

    fn branch(&mut self, pc: usize, cond: JumpCond, operand: COperand, jt: u8, jf: u8) {
        let op = match cond {
            JumpCond::Eq => JmpOp::Jeq,
            JumpCond::Gt => JmpOp::Jgt,
            JumpCond::Ge => JmpOp::Jge,
            JumpCond::Set => JmpOp::Jset,
        };
        let operand = match operand {
            COperand::K(k) => Operand::Imm(k as i32),
            COperand::X => Operand::Reg(self.regs.x),
        };
        let a = self.regs.a;
        let taken = self.at[pc + 1 + usize::from(jt)];
        let not_taken = self.at[pc + 1 + usize::from(jf)];
        match (jt, jf, op.inverse()) {
            (0, 0, _) => {}
            (_, 0, _) => self.e.jump(Insn::jmp32(op, a, operand, 0), taken, pc),
            (0, _, Some(inverse)) => {
                self.e
                    .jump(Insn::jmp32(inverse, a, operand, 0), not_taken, pc)
            }
            _ => {
                self.e.jump(Insn::jmp32(op, a, operand, 0), taken, pc);
                self.e.jump(Insn::ja(0), not_taken, pc);
            }
        }
    }

    /// `dst = #len`.
    fn len(&mut self, dst: Reg) {
        match self.target {
            Target::Xdp(layout) => {
                // data_end - data: a scalar the verifier allows a privileged program.
                self.e.emit(Insn::mov64_reg(dst, DATA_END));
                self.e
                    .emit(Insn::alu64(AluOp::Sub, dst, Operand::Reg(DATA)));
                if layout.base == 0 {
                    self.e.emit(Insn::alu32(AluOp::Mov, dst, Operand::Reg(dst)));
                } else {
                    // Shorter than the base: the program's view is empty.
                    let base = layout.base as i32;
                    self.e
                        .emit(Insn::jmp32(JmpOp::Jge, dst, Operand::Imm(base), 2));
                    self.e.emit(Insn::mov32_imm(dst, 0));
                    self.e.emit(Insn::ja(1));
                    self.e
                        .emit(Insn::alu32(AluOp::Sub, dst, Operand::Imm(base)));
                }
            }
            // struct __sk_buff { u32 len; ... }
            Target::SocketFilter => self.e.emit(Insn::load(ESize::W, dst, SKB, 0)),
        }
    }

    /// `dst = ntoh(packet[at .. at + size])` for a constant `at` from `data`, or the end of
    /// the run with 0 when it is past `data_end`.
    fn xdp_load_at(&mut self, pc: usize, dst: Reg, size: Size, at: u64) {
        let t1 = self.regs.t1;
        let bytes = u64::from(size.bytes());
        if at + bytes > u64::from(MAX_PACKET_OFF) {
            self.goto_exit_zero(Insn::ja(0), pc);
            return;
        }
        let end = (at + bytes) as i32;
        self.e.emit(Insn::mov64_reg(t1, DATA));
        self.e.emit(Insn::alu64(AluOp::Add, t1, Operand::Imm(end)));
        self.goto_exit_zero(Insn::jmp(JmpOp::Jgt, t1, Operand::Reg(DATA_END), 0), pc);
        self.read_before(dst, t1, size);
    }

    /// `dst = ntoh(*(size *)(ptr - size))`.
    fn read_before(&mut self, dst: Reg, ptr: Reg, size: Size) {
        let s = esize(size);
        self.e.emit(Insn::load(s, dst, ptr, -s.bytes()));
        if size != Size::Byte {
            self.e
                .emit(Insn::endian(true, dst, i32::from(s.bytes()) * 8));
        }
    }

    fn xdp_load_const(&mut self, pc: usize, layout: &XdpLayout, dst: Reg, size: Size, k: u32) {
        match xdp_place(layout, k) {
            Some(at) => self.xdp_load_at(pc, dst, size, at),
            None => self.goto_exit_zero(Insn::ja(0), pc),
        }
    }

    /// `A = ntoh(packet[base + t1 .. + size])` with `t1` a zero-extended 32-bit offset:
    /// `t1 > limit` jumps to `miss` (the offset cannot be in a buffer, or is negative).
    fn xdp_load_var(&mut self, pc: usize, base: u32, size: Size, miss: Label) {
        let Regs { a, t1, t2, .. } = self.regs;
        let bytes = size.bytes();
        // The layout's offsets are at most MAX_OFFSET (checked first).
        let limit = MAX_PACKET_OFF - (base + bytes);
        self.e.jump(
            Insn::jmp(JmpOp::Jgt, t1, Operand::Imm(limit as i32), 0),
            miss,
            pc,
        );
        self.e.emit(Insn::mov64_reg(t2, DATA));
        self.e.emit(Insn::alu64(AluOp::Add, t2, Operand::Reg(t1)));
        self.e.emit(Insn::alu64(
            AluOp::Add,
            t2,
            Operand::Imm((base + bytes) as i32),
        ));
        self.goto_exit_zero(Insn::jmp(JmpOp::Jgt, t2, Operand::Reg(DATA_END), 0), pc);
        self.read_before(a, t2, size);
    }

    fn xdp_load_ind(&mut self, pc: usize, layout: &XdpLayout, size: Size, k: u32) {
        let Regs { x, t1, .. } = self.regs;
        self.e.emit(Insn::alu32(AluOp::Mov, t1, Operand::Reg(x)));
        self.e
            .emit(Insn::alu32(AluOp::Add, t1, Operand::Imm(k as i32)));
        let miss = if layout.network.is_some() || layout.link.is_some() {
            let label = self.e.label();
            self.slow.push(SlowLoad { pc, label, size });
            label
        } else {
            self.exit_zero
        };
        self.xdp_load_var(pc, layout.base, size, miss);
    }

    /// The exit with verdict 0 and the indirect loads' negative ranges, after the program.
    fn out_of_line(&mut self) -> Result<(), CompileError> {
        let Target::Xdp(layout) = self.target else {
            return self.exit_zero_block();
        };
        let t1 = self.regs.t1;
        let slow = std::mem::take(&mut self.slow);
        for load in slow {
            let pc = load.pc;
            let next = self.at[pc + 1];
            self.e.bind(load.label);
            // t1 = X + k, not a short non-negative offset: a miss unless in a header range.
            self.goto_exit_zero(Insn::jmp32(JmpOp::Jsge, t1, Operand::Imm(0), 0), pc);
            self.goto_exit_zero(
                Insn::jmp32(JmpOp::Jge, t1, Operand::Imm(SKF_AD_OFF as i32), 0),
                pc,
            );
            let network = self.e.label();
            self.e.jump(
                Insn::jmp32(JmpOp::Jge, t1, Operand::Imm(SKF_NET_OFF as i32), 0),
                network,
                pc,
            );
            for (range, header) in [(SKF_LL_OFF, layout.link), (SKF_NET_OFF, layout.network)] {
                if range == SKF_NET_OFF {
                    self.e.bind(network);
                } else {
                    self.goto_exit_zero(
                        Insn::jmp32(JmpOp::Jlt, t1, Operand::Imm(SKF_LL_OFF as i32), 0),
                        pc,
                    );
                }
                match header {
                    Some(header) => {
                        self.e
                            .emit(Insn::alu32(AluOp::Sub, t1, Operand::Imm(range as i32)));
                        let exit_zero = self.exit_zero;
                        self.xdp_load_var(pc, header, load.size, exit_zero);
                        self.e.jump(Insn::ja(0), next, pc);
                    }
                    None => self.goto_exit_zero(Insn::ja(0), pc),
                }
            }
        }
        self.exit_zero_block()
    }

    fn exit_zero_block(&mut self) -> Result<(), CompileError> {
        if self.e.is_used(self.exit_zero) {
            self.e.bind(self.exit_zero);
            self.ret(0);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asm::assemble;
    use crate::ebpf::disassemble;

    fn xdp(src: &str, base: u32) -> Compiled {
        compile(
            &assemble(src).unwrap(),
            Target::Xdp(XdpLayout::ethernet(base)),
            Verdicts::XDP_DROP_MATCHED,
        )
        .unwrap()
    }

    #[test]
    fn a_load_is_bounds_checked_before_it_reads_and_a_return_maps_its_verdict() {
        let out = xdp(
            "ldh [12]\njeq #0x86dd, L1, L2\nL1: ret #65535\nL2: ret #0",
            14,
        );
        let expected = "   0: (61) r8 = *(u32 *)(r1 +0)
   1: (61) r9 = *(u32 *)(r1 +4)
   2: (b4) w6 = 0
   3: (b4) w7 = 0
   4: (bf) r1 = r8
   5: (07) r1 += 28
   6: (2d) if r1 > r9 goto pc+7
   7: (69) r6 = *(u16 *)(r1 -2)
   8: (dc) r6 = be16 r6
   9: (56) if w6 != 0x86dd goto pc+2
  10: (b4) w0 = 1
  11: (95) exit
  12: (b4) w0 = 2
  13: (95) exit
  14: (b4) w0 = 2
  15: (95) exit
";
        assert_eq!(disassemble(&out.insns), expected);
        assert_eq!(out.starts, [Some(4), Some(9), Some(10), Some(12)]);
    }

    #[test]
    fn unreachable_instructions_and_an_unused_exit_are_left_out() {
        // After `ret`, and after a load no XDP buffer reaches.
        let out = xdp("ld #1\nja L3\nret #5\nL3: ret a", 14);
        assert_eq!(out.starts, [Some(4), Some(5), None, Some(6)]);
        // Prologue 4, `ld #1` 1, `ja` 1, `ret a` 4; no `ret #5`, no exit with verdict 0.
        assert_eq!(out.insns.len(), 10, "{}", disassemble(&out.insns));
        let out = xdp("ldb [70000]\nret a", 14);
        assert_eq!(out.starts, [Some(4), None]);
        // The load is a jump to the one exit with verdict 0.
        assert_eq!(out.insns[4], Insn::ja(0));
        assert_eq!(out.insns.len(), 7);
    }

    #[test]
    fn scratch_words_read_are_zeroed_and_division_by_x_checks_x() {
        let out = xdp(
            "ldx #0\nst M[3]\nstx M[15]\nld M[3]\ndiv x\nldx M[15]\nret a",
            0,
        );
        let listing = disassemble(&out.insns);
        assert!(listing.contains("*(u32 *)(r10 -52) = 0\n"), "{listing}");
        assert!(listing.contains("*(u32 *)(r10 -4) = 0\n"), "{listing}");
        assert!(listing.contains("if w7 == 0x0 goto"), "{listing}");
        assert!(listing.contains("w6 /= w7"), "{listing}");
    }

    #[test]
    fn indirect_loads_bound_x_plus_k_and_go_out_of_line_for_negative_ranges() {
        let out = xdp("ldx #1\nldb [x + 13]\nret a", 14);
        let listing = disassemble(&out.insns);
        // The fast path: 0xffff - 14 - 1.
        assert!(listing.contains("if r1 > 0xfff0 goto"), "{listing}");
        assert!(listing.contains("if w1 s>= 0x0 goto"), "{listing}");
        // Without header offsets no out-of-line path.
        let layout = XdpLayout {
            base: 14,
            network: None,
            link: None,
        };
        let prog = assemble("ldx #1\nldb [x + 13]\nret a").unwrap();
        let out = compile(&prog, Target::Xdp(layout), Verdicts::Value).unwrap();
        assert!(!disassemble(&out.insns).contains("s>="));
    }

    #[test]
    fn socket_filters_use_the_legacy_packet_loads() {
        let prog = assemble("ldx 4*([0]&0xf)\nldh [x + 2]\nld #len\nret a").unwrap();
        let out = compile(&prog, Target::SocketFilter, Verdicts::Value).unwrap();
        let listing = disassemble(&out.insns);
        assert!(listing.contains("r0 = *(u8 *)skb[0]"), "{listing}");
        assert!(listing.contains("r0 = *(u16 *)skb[r7 + 2]"), "{listing}");
        assert!(listing.contains("r8 = *(u32 *)(r6 +0)"), "{listing}");
    }

    #[test]
    fn layouts_out_of_reach_and_jumps_too_long_are_refused() {
        let prog = assemble("ret #0").unwrap();
        let layout = XdpLayout::ethernet(70000);
        let err = compile(&prog, Target::Xdp(layout), Verdicts::Value).unwrap_err();
        assert!(matches!(
            err,
            CompileError::Layout {
                what: "base",
                value: 70000
            }
        ));
        // `ja` over 4000 indirect loads of 9 eBPF instructions each.
        let mut src = String::from("jeq #0, start\nja end\nstart:\n");
        for _ in 0..4000 {
            src.push_str("ld [x + 0]\n");
        }
        src.push_str("end: ret #0\n");
        let prog = assemble(&src).unwrap();
        let err = compile(&prog, Target::Xdp(XdpLayout::ethernet(14)), Verdicts::Value);
        assert!(
            matches!(err, Err(CompileError::JumpTooFar { .. })),
            "{err:?}"
        );
    }

    #[test]
    fn verdict_mappings() {
        assert_eq!(Verdicts::XDP_DROP_MATCHED.of(65535), XDP_DROP);
        assert_eq!(Verdicts::XDP_DROP_MATCHED.of(0), XDP_PASS);
        assert_eq!(Verdicts::Value.of(7), 7);
    }
}
