//! The classic BPF instruction.
//!
//! [`RawInsn`] is the wire form, laid out exactly like the kernel's `struct sock_filter`.
//! [`Insn`] is its meaning: one variant per instruction kind the kernel knows. Decoding a
//! [`RawInsn`] never fails: a bit pattern that is not one of the kernel's opcodes stays
//! [`Insn::Raw`], so foreign bytecode can always be shown and re-encoded.
//!
//! Rules kept here:
//! - `Insn::decode(raw).encode() == raw` for every raw instruction whose unused fields are zero
//!   (the kernel ignores `jt`/`jf` outside conditional jumps and `k` where the opcode has no
//!   operand; decoding drops them, as the kernel does).
//! - `Insn::encode` writes only the kernel's canonical opcodes.
//! - Display prints `bpf_asm` syntax. Jumps need to know where they stand to name their targets,
//!   so [`Insn::display_at`] prints them with labels `L<index>`; plain `Display` prints jump
//!   offsets relative to the next instruction (`+N`).
//!
//! What is not here, and must not come back: the tcpdump dialect's names (in `tcpdump`, behind
//! [`Dialect::Tcpdump`]); parsing text (the assembler's, [`crate::asm`]); resolving labels.
//! [`Insn::effects`] says what each instruction reads and writes: passes over programs ask it
//! rather than listing instructions themselves.

use std::fmt;

mod effects;
mod opcode;
mod tcpdump;

pub use effects::{Effects, Regs};
pub use opcode::*;

/// One instruction in wire form: the kernel's `struct sock_filter`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RawInsn {
    /// Opcode: class | size/op | mode/source.
    pub code: u16,
    /// Conditional jump offset when true (relative to the next instruction).
    pub jt: u8,
    /// Conditional jump offset when false (relative to the next instruction).
    pub jf: u8,
    /// Constant operand.
    pub k: u32,
}

impl RawInsn {
    /// Builds a raw instruction from its four fields.
    pub const fn new(code: u16, jt: u8, jf: u8, k: u32) -> Self {
        RawInsn { code, jt, jf, k }
    }
}

/// Width of a packet load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Size {
    /// 4 bytes, big-endian.
    Word,
    /// 2 bytes, big-endian.
    Half,
    /// 1 byte.
    Byte,
}

impl Size {
    /// Number of bytes the load reads.
    pub const fn bytes(self) -> u32 {
        match self {
            Size::Word => 4,
            Size::Half => 2,
            Size::Byte => 1,
        }
    }
    /// The size bits of the opcode.
    pub const fn code(self) -> u16 {
        match self {
            Size::Word => BPF_W,
            Size::Half => BPF_H,
            Size::Byte => BPF_B,
        }
    }
    /// The size of the opcode's size bits, if they name one.
    pub const fn from_code(code: u16) -> Option<Size> {
        match bpf_size(code) {
            BPF_W => Some(Size::Word),
            BPF_H => Some(Size::Half),
            BPF_B => Some(Size::Byte),
            _ => None,
        }
    }
    /// The `bpf_asm` load mnemonic for this size (`ld`, `ldh`, `ldb`).
    pub const fn load_mnemonic(self) -> &'static str {
        match self {
            Size::Word => "ld",
            Size::Half => "ldh",
            Size::Byte => "ldb",
        }
    }
}

/// Ancillary data the kernel exposes through `LD ABS` at `SKF_AD_OFF + n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ancillary {
    /// `skb->protocol` (ethertype, host order as loaded by the kernel: big-endian value).
    Protocol,
    /// `skb->pkt_type` (host, broadcast, multicast, other host, outgoing).
    PktType,
    /// Interface index the packet arrived on.
    IfIndex,
    /// Netlink attribute search (`A` = attribute type, `X` = offset).
    NlAttr,
    /// Nested netlink attribute search.
    NlAttrNest,
    /// `skb->mark`.
    Mark,
    /// `skb->queue_mapping`.
    Queue,
    /// Device type (`ARPHRD_*`).
    HaType,
    /// `skb->hash`.
    RxHash,
    /// Current CPU number.
    Cpu,
    /// `A ^= X` (an ALU operation dressed as a load).
    AluXorX,
    /// VLAN TCI.
    VlanTag,
    /// Whether a VLAN tag is present.
    VlanTagPresent,
    /// Offset of the transport payload.
    PayOffset,
    /// A random number.
    Random,
    /// VLAN TPID.
    VlanTpid,
}

impl Ancillary {
    /// Every ancillary field, in offset order.
    pub const ALL: [Ancillary; 16] = [
        Ancillary::Protocol,
        Ancillary::PktType,
        Ancillary::IfIndex,
        Ancillary::NlAttr,
        Ancillary::NlAttrNest,
        Ancillary::Mark,
        Ancillary::Queue,
        Ancillary::HaType,
        Ancillary::RxHash,
        Ancillary::Cpu,
        Ancillary::AluXorX,
        Ancillary::VlanTag,
        Ancillary::VlanTagPresent,
        Ancillary::PayOffset,
        Ancillary::Random,
        Ancillary::VlanTpid,
    ];

    /// The `SKF_AD_*` number (offset from `SKF_AD_OFF`).
    pub const fn number(self) -> u32 {
        match self {
            Ancillary::Protocol => 0,
            Ancillary::PktType => 4,
            Ancillary::IfIndex => 8,
            Ancillary::NlAttr => 12,
            Ancillary::NlAttrNest => 16,
            Ancillary::Mark => 20,
            Ancillary::Queue => 24,
            Ancillary::HaType => 28,
            Ancillary::RxHash => 32,
            Ancillary::Cpu => 36,
            Ancillary::AluXorX => 40,
            Ancillary::VlanTag => 44,
            Ancillary::VlanTagPresent => 48,
            Ancillary::PayOffset => 52,
            Ancillary::Random => 56,
            Ancillary::VlanTpid => 60,
        }
    }

    /// The `k` of an `LD ABS` that reads this field.
    pub const fn offset(self) -> u32 {
        SKF_AD_OFF.wrapping_add(self.number())
    }

    /// The ancillary field an `LD ABS` offset names, if it names a known one.
    pub fn from_offset(k: u32) -> Option<Ancillary> {
        Ancillary::ALL.into_iter().find(|a| a.offset() == k)
    }

    /// The `bpf_asm` keyword, if `bpf_asm` has one (it has none for `ALU_XOR_X`).
    pub const fn keyword(self) -> Option<&'static str> {
        match self {
            Ancillary::Protocol => Some("proto"),
            Ancillary::PktType => Some("type"),
            Ancillary::IfIndex => Some("ifidx"),
            Ancillary::NlAttr => Some("nla"),
            Ancillary::NlAttrNest => Some("nlan"),
            Ancillary::Mark => Some("mark"),
            Ancillary::Queue => Some("queue"),
            Ancillary::HaType => Some("hatype"),
            Ancillary::RxHash => Some("rxhash"),
            Ancillary::Cpu => Some("cpu"),
            Ancillary::AluXorX => None,
            Ancillary::VlanTag => Some("vlan_tci"),
            Ancillary::VlanTagPresent => Some("vlan_avail"),
            Ancillary::PayOffset => Some("poff"),
            Ancillary::Random => Some("rand"),
            Ancillary::VlanTpid => Some("vlan_tpid"),
        }
    }
}

/// An ALU operation with two operands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AluOp {
    /// `A + operand`.
    Add,
    /// `A - operand`.
    Sub,
    /// `A * operand`.
    Mul,
    /// `A / operand` (unsigned).
    Div,
    /// `A | operand`.
    Or,
    /// `A & operand`.
    And,
    /// `A << operand`.
    Lsh,
    /// `A >> operand` (logical).
    Rsh,
    /// `A % operand` (unsigned).
    Mod,
    /// `A ^ operand`.
    Xor,
}

impl AluOp {
    /// Every two-operand ALU operation.
    pub const ALL: [AluOp; 10] = [
        AluOp::Add,
        AluOp::Sub,
        AluOp::Mul,
        AluOp::Div,
        AluOp::Or,
        AluOp::And,
        AluOp::Lsh,
        AluOp::Rsh,
        AluOp::Mod,
        AluOp::Xor,
    ];

    /// The operation bits of the opcode.
    pub const fn code(self) -> u16 {
        match self {
            AluOp::Add => BPF_ADD,
            AluOp::Sub => BPF_SUB,
            AluOp::Mul => BPF_MUL,
            AluOp::Div => BPF_DIV,
            AluOp::Or => BPF_OR,
            AluOp::And => BPF_AND,
            AluOp::Lsh => BPF_LSH,
            AluOp::Rsh => BPF_RSH,
            AluOp::Mod => BPF_MOD,
            AluOp::Xor => BPF_XOR,
        }
    }

    /// The operation the opcode's operation bits name, if any (NEG is not one: it has no operand).
    pub const fn from_code(code: u16) -> Option<AluOp> {
        match bpf_op(code) {
            BPF_ADD => Some(AluOp::Add),
            BPF_SUB => Some(AluOp::Sub),
            BPF_MUL => Some(AluOp::Mul),
            BPF_DIV => Some(AluOp::Div),
            BPF_OR => Some(AluOp::Or),
            BPF_AND => Some(AluOp::And),
            BPF_LSH => Some(AluOp::Lsh),
            BPF_RSH => Some(AluOp::Rsh),
            BPF_MOD => Some(AluOp::Mod),
            BPF_XOR => Some(AluOp::Xor),
            _ => None,
        }
    }

    /// The `bpf_asm` mnemonic.
    pub const fn mnemonic(self) -> &'static str {
        match self {
            AluOp::Add => "add",
            AluOp::Sub => "sub",
            AluOp::Mul => "mul",
            AluOp::Div => "div",
            AluOp::Or => "or",
            AluOp::And => "and",
            AluOp::Lsh => "lsh",
            AluOp::Rsh => "rsh",
            AluOp::Mod => "mod",
            AluOp::Xor => "xor",
        }
    }
}

/// A conditional jump's comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JumpCond {
    /// `A == operand`.
    Eq,
    /// `A > operand` (unsigned).
    Gt,
    /// `A >= operand` (unsigned).
    Ge,
    /// `A & operand != 0`.
    Set,
}

impl JumpCond {
    /// Every comparison.
    pub const ALL: [JumpCond; 4] = [JumpCond::Eq, JumpCond::Gt, JumpCond::Ge, JumpCond::Set];

    /// The operation bits of the opcode.
    pub const fn code(self) -> u16 {
        match self {
            JumpCond::Eq => BPF_JEQ,
            JumpCond::Gt => BPF_JGT,
            JumpCond::Ge => BPF_JGE,
            JumpCond::Set => BPF_JSET,
        }
    }

    /// The `bpf_asm` mnemonic.
    pub const fn mnemonic(self) -> &'static str {
        match self {
            JumpCond::Eq => "jeq",
            JumpCond::Gt => "jgt",
            JumpCond::Ge => "jge",
            JumpCond::Set => "jset",
        }
    }
}

/// The second operand of an ALU operation or a conditional jump.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operand {
    /// The constant `k`.
    K(u32),
    /// The X register.
    X,
}

/// A decoded classic BPF instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Insn {
    /// `ld/ldh/ldb [k]`: A = packet[k..k+size]. Offsets at or above [`SKF_AD_OFF`] are
    /// ancillary loads ([`Ancillary::from_offset`]); [`SKF_NET_OFF`] and [`SKF_LL_OFF`] ranges
    /// address the network and link-layer headers.
    LoadAbs {
        /// Load width.
        size: Size,
        /// Offset `k`.
        offset: u32,
    },
    /// `ld/ldh/ldb [x + k]`: A = packet[X + k ..].
    LoadInd {
        /// Load width.
        size: Size,
        /// Offset `k` added to X.
        offset: u32,
    },
    /// `ld #k` (`ldi`): A = k.
    LoadImm(u32),
    /// `ld M[k]`: A = scratch\[k\].
    LoadMem(u32),
    /// `ld #len`: A = packet length.
    LoadLen,
    /// `ldx #k` (`ldxi`): X = k.
    LoadXImm(u32),
    /// `ldx M[k]`: X = scratch\[k\].
    LoadXMem(u32),
    /// `ldx #len`: X = packet length.
    LoadXLen,
    /// `ldx 4*([k]&0xf)` (`ldxb`): X = 4 * (packet\[k\] & 0xf).
    LoadXMsh(u32),
    /// `st M[k]`: scratch\[k\] = A.
    Store(u32),
    /// `stx M[k]`: scratch\[k\] = X.
    StoreX(u32),
    /// `add/sub/... #k|x`: A = A op operand.
    Alu {
        /// The operation.
        op: AluOp,
        /// The second operand.
        operand: Operand,
    },
    /// `neg`: A = 0 - A.
    Neg,
    /// `ja`/`jmp`: skip `k` instructions.
    Ja(u32),
    /// `jeq/jgt/jge/jset #k|x, jt, jf`.
    Jump {
        /// The comparison.
        cond: JumpCond,
        /// What A is compared with.
        operand: Operand,
        /// Instructions skipped when true.
        jt: u8,
        /// Instructions skipped when false.
        jf: u8,
    },
    /// `ret #k`.
    RetK(u32),
    /// `ret a`.
    RetA,
    /// `ret x` (the kernel's checker refuses it; kept so foreign programs can be shown).
    RetX,
    /// `tax`: X = A.
    Tax,
    /// `txa`: A = X.
    Txa,
    /// A bit pattern that is none of the above.
    Raw(RawInsn),
}

impl Insn {
    /// Decodes a raw instruction. Never fails: unknown opcodes become [`Insn::Raw`].
    pub fn decode(raw: RawInsn) -> Insn {
        let RawInsn { code, jt, jf, k } = raw;
        let operand = if bpf_src(code) == BPF_X {
            Operand::X
        } else {
            Operand::K(k)
        };
        match code {
            0x00 => Insn::LoadImm(k),
            0x20 | 0x28 | 0x30 => Insn::LoadAbs {
                size: Size::from_code(code).unwrap_or(Size::Word),
                offset: k,
            },
            0x40 | 0x48 | 0x50 => Insn::LoadInd {
                size: Size::from_code(code).unwrap_or(Size::Word),
                offset: k,
            },
            0x60 => Insn::LoadMem(k),
            0x80 => Insn::LoadLen,
            0x01 => Insn::LoadXImm(k),
            0x61 => Insn::LoadXMem(k),
            0x81 => Insn::LoadXLen,
            0xb1 => Insn::LoadXMsh(k),
            0x02 => Insn::Store(k),
            0x03 => Insn::StoreX(k),
            0x84 => Insn::Neg,
            c if c & 0xff07 == BPF_ALU => match AluOp::from_code(c) {
                Some(op) => Insn::Alu { op, operand },
                None => Insn::Raw(raw),
            },
            0x05 => Insn::Ja(k),
            0x15 | 0x1d => Insn::Jump {
                cond: JumpCond::Eq,
                operand,
                jt,
                jf,
            },
            0x25 | 0x2d => Insn::Jump {
                cond: JumpCond::Gt,
                operand,
                jt,
                jf,
            },
            0x35 | 0x3d => Insn::Jump {
                cond: JumpCond::Ge,
                operand,
                jt,
                jf,
            },
            0x45 | 0x4d => Insn::Jump {
                cond: JumpCond::Set,
                operand,
                jt,
                jf,
            },
            0x06 => Insn::RetK(k),
            0x16 => Insn::RetA,
            0x0e => Insn::RetX,
            0x07 => Insn::Tax,
            0x87 => Insn::Txa,
            _ => Insn::Raw(raw),
        }
    }

    /// Encodes to the wire form with the kernel's canonical opcode.
    pub fn encode(self) -> RawInsn {
        let op_src = |operand: Operand| match operand {
            Operand::K(k) => (BPF_K, k),
            Operand::X => (BPF_X, 0),
        };
        match self {
            Insn::LoadAbs { size, offset } => {
                RawInsn::new(BPF_LD | size.code() | BPF_ABS, 0, 0, offset)
            }
            Insn::LoadInd { size, offset } => {
                RawInsn::new(BPF_LD | size.code() | BPF_IND, 0, 0, offset)
            }
            Insn::LoadImm(k) => RawInsn::new(BPF_LD | BPF_IMM, 0, 0, k),
            Insn::LoadMem(k) => RawInsn::new(BPF_LD | BPF_MEM, 0, 0, k),
            Insn::LoadLen => RawInsn::new(BPF_LD | BPF_W | BPF_LEN, 0, 0, 0),
            Insn::LoadXImm(k) => RawInsn::new(BPF_LDX | BPF_IMM, 0, 0, k),
            Insn::LoadXMem(k) => RawInsn::new(BPF_LDX | BPF_MEM, 0, 0, k),
            Insn::LoadXLen => RawInsn::new(BPF_LDX | BPF_W | BPF_LEN, 0, 0, 0),
            Insn::LoadXMsh(k) => RawInsn::new(BPF_LDX | BPF_B | BPF_MSH, 0, 0, k),
            Insn::Store(k) => RawInsn::new(BPF_ST, 0, 0, k),
            Insn::StoreX(k) => RawInsn::new(BPF_STX, 0, 0, k),
            Insn::Alu { op, operand } => {
                let (src, k) = op_src(operand);
                RawInsn::new(BPF_ALU | op.code() | src, 0, 0, k)
            }
            Insn::Neg => RawInsn::new(BPF_ALU | BPF_NEG, 0, 0, 0),
            Insn::Ja(k) => RawInsn::new(BPF_JMP | BPF_JA, 0, 0, k),
            Insn::Jump {
                cond,
                operand,
                jt,
                jf,
            } => {
                let (src, k) = op_src(operand);
                RawInsn::new(BPF_JMP | cond.code() | src, jt, jf, k)
            }
            Insn::RetK(k) => RawInsn::new(BPF_RET | BPF_K, 0, 0, k),
            Insn::RetA => RawInsn::new(BPF_RET | BPF_A, 0, 0, 0),
            Insn::RetX => RawInsn::new(BPF_RET | BPF_X, 0, 0, 0),
            Insn::Tax => RawInsn::new(BPF_MISC | BPF_TAX, 0, 0, 0),
            Insn::Txa => RawInsn::new(BPF_MISC | BPF_TXA, 0, 0, 0),
            Insn::Raw(raw) => raw,
        }
    }

    /// True for `ret` instructions.
    pub fn is_return(&self) -> bool {
        matches!(self, Insn::RetK(_) | Insn::RetA | Insn::RetX)
    }

    /// Absolute targets `(taken, not_taken)` of a jump standing at `pc`, or `None` for other
    /// instructions. `ja` has the same target twice. Targets are computed in `u64` so a
    /// huge `ja` offset cannot wrap.
    pub fn jump_targets(&self, pc: usize) -> Option<(u64, u64)> {
        match *self {
            Insn::Ja(k) => Some((jump_target(pc, k), jump_target(pc, k))),
            Insn::Jump { jt, jf, .. } => Some((
                jump_target(pc, u32::from(jt)),
                jump_target(pc, u32::from(jf)),
            )),
            _ => None,
        }
    }

    /// The instructions a jump standing at `pc` names in its `bpf_asm` text
    /// ([`Insn::display_at`]), which a disassembly must define as labels.
    pub fn named_targets(&self, pc: usize) -> Vec<u64> {
        match (*self, self.jump_targets(pc)) {
            (Insn::Jump { cond, jt, jf, .. }, Some((taken, not_taken))) => {
                match named_sides(cond, jt == 0, jf == 0) {
                    (true, false) => vec![taken],
                    (false, true) => vec![not_taken],
                    _ => vec![taken, not_taken],
                }
            }
            (_, Some((target, _))) => vec![target],
            _ => Vec::new(),
        }
    }

    /// The mnemonic and the operand text in `dialect`, without jump targets (a conditional
    /// jump's operand is what A is compared with; `ja` has none). An unknown opcode is shown as
    /// a `bpf_asm` comment, since no mnemonic produces it.
    pub fn mnemonic_and_operand(&self, dialect: Dialect) -> (&'static str, String) {
        match dialect {
            Dialect::BpfAsm => self.bpf_asm_mnemonic_and_operand(),
            Dialect::Tcpdump => tcpdump::mnemonic_and_operand(self),
        }
    }

    /// [`Insn::mnemonic_and_operand`] in `bpf_asm` syntax.
    fn bpf_asm_mnemonic_and_operand(&self) -> (&'static str, String) {
        match *self {
            Insn::LoadAbs { size, offset } => {
                let operand = match Ancillary::from_offset(offset).and_then(Ancillary::keyword) {
                    Some(word) => format!("#{word}"),
                    None => format!("[{}]", signed_offset(offset)),
                };
                (size.load_mnemonic(), operand)
            }
            Insn::LoadInd { size, offset } => (
                size.load_mnemonic(),
                format!("[x + {}]", signed_offset(offset)),
            ),
            Insn::LoadImm(k) => ("ld", format!("#{k:#x}")),
            Insn::LoadMem(k) => ("ld", format!("M[{k}]")),
            Insn::LoadLen => ("ld", "#len".to_string()),
            Insn::LoadXImm(k) => ("ldx", format!("#{k:#x}")),
            Insn::LoadXMem(k) => ("ldx", format!("M[{k}]")),
            Insn::LoadXLen => ("ldx", "#len".to_string()),
            Insn::LoadXMsh(k) => ("ldx", format!("4*([{}]&0xf)", signed_offset(k))),
            Insn::Store(k) => ("st", format!("M[{k}]")),
            Insn::StoreX(k) => ("stx", format!("M[{k}]")),
            Insn::Alu { op, operand } => (op.mnemonic(), operand.to_string()),
            Insn::Neg => ("neg", String::new()),
            Insn::Ja(_) => ("ja", String::new()),
            Insn::Jump { cond, operand, .. } => (cond.mnemonic(), operand.to_string()),
            Insn::RetK(k) => ("ret", format!("#{k}")),
            Insn::RetA => ("ret", "a".to_string()),
            Insn::RetX => ("ret", "x".to_string()),
            Insn::Tax => ("tax", String::new()),
            Insn::Txa => ("txa", String::new()),
            Insn::Raw(RawInsn { code, jt, jf, k }) => (
                ";",
                format!("unknown opcode {code:#06x} jt={jt} jf={jf} k={k:#x}"),
            ),
        }
    }

    /// Shows the instruction in `bpf_asm` syntax as it stands at index `pc`: jump targets are
    /// printed as labels `L<index>` (the disassembler defines those labels), conditional jumps
    /// in the one-label forms of [`write_jump`] where one side falls through.
    pub fn display_at(&self, pc: usize) -> DisplayAt<'_> {
        DisplayAt {
            insn: self,
            pc: Some(pc),
        }
    }
}

/// The instruction a jump standing at `pc` reaches with `offset`: `pc + 1 + offset`, in `u64`
/// so that no offset can wrap. The one place this sum is written.
pub const fn jump_target(pc: usize, offset: u32) -> u64 {
    pc as u64 + 1 + offset as u64
}

/// The offset a jump standing at `pc` needs to reach instruction `target`, or `None` when the
/// target is not after `pc` (classic BPF jumps only forward). The inverse of [`jump_target`].
pub const fn jump_offset(pc: usize, target: u64) -> Option<u64> {
    target.checked_sub(pc as u64 + 1)
}

/// The text form an instruction is shown in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `bpf_asm` syntax: assembles back to the same instruction.
    BpfAsm,
    /// The `tcpdump -d` listing's: `#pktlen`, `[proto]`-style ancillary names, arithmetic
    /// constants in signed decimal, `ldxb`, a bare `ret` for `ret a`.
    Tcpdump,
}

impl JumpCond {
    /// The `bpf_asm` mnemonic of the comparison's negation, which takes one label jumped to
    /// when the comparison is false (`jneq`, `jlt`, `jle`); `jset` has none.
    pub const fn inverse_mnemonic(self) -> Option<&'static str> {
        match self {
            JumpCond::Eq => Some("jneq"),
            JumpCond::Ge => Some("jlt"),
            JumpCond::Gt => Some("jle"),
            JumpCond::Set => None,
        }
    }

    /// The comparison a mnemonic names, and whether it is the inverse form (`jneq`, `jne`,
    /// `jlt`, `jle`: one label, taken when the comparison is false). Case-insensitive.
    pub fn from_mnemonic(word: &str) -> Option<(JumpCond, bool)> {
        let word = word.to_ascii_lowercase();
        if word == "jne" {
            return Some((JumpCond::Eq, true));
        }
        JumpCond::ALL.into_iter().find_map(|cond| {
            if cond.mnemonic() == word {
                Some((cond, false))
            } else if cond.inverse_mnemonic() == Some(word.as_str()) {
                Some((cond, true))
            } else {
                None
            }
        })
    }
}

/// Which targets of a conditional jump its `bpf_asm` text names, `(taken, not_taken)`, given
/// which sides fall through to the next instruction: one side when the other falls through
/// (`jeq #k, T`, or `jneq`/`jlt`/`jle #k, F`), both otherwise (`jset` has no inverse form).
pub const fn named_sides(
    cond: JumpCond,
    jt_falls_through: bool,
    jf_falls_through: bool,
) -> (bool, bool) {
    match (jt_falls_through, jf_falls_through) {
        (false, true) => (true, false),
        (true, false) if cond.inverse_mnemonic().is_some() => (false, true),
        _ => (true, true),
    }
}

/// Writes a conditional jump in `bpf_asm` syntax, its targets named `jt` and `jf`, `None`
/// standing for a side that falls through to the next instruction; the forms are those of
/// [`named_sides`], a named side that falls through is called `next`. Returns whether `next`
/// was written (the caller must then define that label at the next instruction).
pub fn write_jump(
    out: &mut dyn fmt::Write,
    cond: JumpCond,
    operand: Operand,
    jt: Option<&dyn fmt::Display>,
    jf: Option<&dyn fmt::Display>,
    next: &dyn fmt::Display,
) -> Result<bool, fmt::Error> {
    let (jt_next, jf_next) = (jt.is_none(), jf.is_none());
    let (jt, jf) = (jt.unwrap_or(next), jf.unwrap_or(next));
    match (named_sides(cond, jt_next, jf_next), cond.inverse_mnemonic()) {
        ((true, false), _) => {
            write!(out, "{} {operand}, {jt}", cond.mnemonic())?;
            Ok(false)
        }
        ((false, true), Some(inverse)) => {
            write!(out, "{inverse} {operand}, {jf}")?;
            Ok(false)
        }
        _ => {
            write!(out, "{} {operand}, {jt}, {jf}", cond.mnemonic())?;
            Ok(jt_next || jf_next)
        }
    }
}

/// Display adapter returned by [`Insn::display_at`].
pub struct DisplayAt<'a> {
    insn: &'a Insn,
    pc: Option<usize>,
}

/// A load/store offset: negative offsets (as `i32`) are shown signed, which `bpf_asm` reads
/// back to the same `u32`.
fn signed_offset(k: u32) -> i64 {
    let signed = k as i32;
    if signed < 0 {
        i64::from(signed)
    } else {
        i64::from(k)
    }
}

impl fmt::Display for Operand {
    /// `#0x..` for a constant, `x` for the register.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operand::K(k) => write!(f, "#{k:#x}"),
            Operand::X => write!(f, "x"),
        }
    }
}

/// A jump target as [`Insn::display_at`] names it: `L<index>` at a known place, else `+offset`.
struct TargetName {
    pc: Option<usize>,
    offset: u32,
}

impl fmt::Display for TargetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.pc {
            Some(pc) => write!(f, "L{}", jump_target(pc, self.offset)),
            None => write!(f, "+{}", self.offset),
        }
    }
}

impl fmt::Display for DisplayAt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = |offset| TargetName {
            pc: self.pc,
            offset,
        };
        match *self.insn {
            Insn::Ja(k) => write!(f, "ja {}", name(k)),
            Insn::Jump {
                cond,
                operand,
                jt,
                jf,
            } => {
                let (jt, jf, next) = (name(u32::from(jt)), name(u32::from(jf)), name(0));
                fn side(target: &TargetName) -> Option<&dyn fmt::Display> {
                    (target.offset != 0).then_some(target as &dyn fmt::Display)
                }
                write_jump(f, cond, operand, side(&jt), side(&jf), &next).map(|_| ())
            }
            insn => match insn.mnemonic_and_operand(Dialect::BpfAsm) {
                (mnemonic, operand) if operand.is_empty() => f.write_str(mnemonic),
                (mnemonic, operand) => write!(f, "{mnemonic} {operand}"),
            },
        }
    }
}

impl fmt::Display for Insn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        DisplayAt {
            insn: self,
            pc: None,
        }
        .fmt(f)
    }
}

impl From<RawInsn> for Insn {
    fn from(raw: RawInsn) -> Insn {
        Insn::decode(raw)
    }
}

impl From<Insn> for RawInsn {
    fn from(insn: Insn) -> RawInsn {
        insn.encode()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_canonical_opcode_round_trips() {
        let mut known = 0;
        for code in 0u16..=0xff {
            let raw = RawInsn::new(code, 0, 0, 7);
            let insn = Insn::decode(raw);
            if matches!(insn, Insn::Raw(_)) {
                continue;
            }
            known += 1;
            let back = insn.encode();
            assert_eq!(back.code, code, "{insn:?}");
        }
        // 3 ABS + 3 IND + IMM + MEM + LEN, 4 LDX, ST, STX, 10 ALU K + 10 ALU X + NEG,
        // JA + 4 K + 4 X jumps, 3 RET, TAX, TXA.
        assert_eq!(known, 9 + 4 + 2 + 21 + 9 + 3 + 2);
    }

    #[test]
    fn unknown_patterns_stay_raw() {
        for code in [0x08u16, 0x0f, 0x8c, 0x1e, 0xd4, 0x105, 0xffff] {
            let raw = RawInsn::new(code, 1, 2, 3);
            assert_eq!(Insn::decode(raw), Insn::Raw(raw));
            assert_eq!(Insn::decode(raw).encode(), raw);
        }
    }

    #[test]
    fn ancillary_offsets_match_the_kernel_numbers() {
        assert_eq!(SKF_AD_OFF, 0xffff_f000);
        assert_eq!(SKF_NET_OFF, 0xfff0_0000);
        assert_eq!(SKF_LL_OFF, 0xffe0_0000);
        assert_eq!(Ancillary::VlanTpid.offset(), 0xffff_f03c);
        assert_eq!(
            Ancillary::from_offset(0xffff_f004),
            Some(Ancillary::PktType)
        );
        assert_eq!(Ancillary::from_offset(0xffff_f040), None);
    }

    #[test]
    fn display_is_bpf_asm_syntax() {
        let show = |code, jt, jf, k, pc| {
            Insn::decode(RawInsn::new(code, jt, jf, k))
                .display_at(pc)
                .to_string()
        };
        assert_eq!(show(0x28, 0, 0, 12, 0), "ldh [12]");
        assert_eq!(show(0x15, 0, 3, 0x800, 1), "jneq #0x800, L5");
        assert_eq!(show(0x15, 2, 3, 0x800, 1), "jeq #0x800, L4, L5");
        assert_eq!(show(0x45, 0, 3, 0x800, 1), "jset #0x800, L2, L5");
        assert_eq!(show(0x25, 0, 0, 1, 1), "jgt #0x1, L2, L2");
        assert_eq!(show(0xb1, 0, 0, 0, 0), "ldx 4*([0]&0xf)");
        assert_eq!(show(0x30, 0, 0, SKF_AD_OFF, 0), "ldb #proto");
        assert_eq!(show(0x20, 0, 0, SKF_NET_OFF + 9, 0), "ld [-1048567]");
        assert_eq!(show(0x06, 0, 0, 65535, 0), "ret #65535");
        assert_eq!(show(0x05, 0, 0, 2, 3), "ja L6");
    }
}
