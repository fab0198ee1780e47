//! The interpreter, with the Linux kernel's run-time semantics.
//!
//! A [`Program`] is validated once ([`crate::vm::validate()`]) and pre-decoded into a compact form
//! with absolute jump targets, so running it needs no decoding and no checks beyond the packet
//! bounds, allocates nothing and cannot fail.
//!
//! Kept here: the program's input ([`Input`], [`Context`]), the packet loads, and running ops
//! (the dispatch loop). Not here: what an instruction decodes to (`vm::op`), which sequences
//! become superinstructions (`vm::fuse`), the kernel's rules (`vm::validate`). The
//! dispatch loop must stay one `match` over the ops, allocate nothing and never panic on a
//! validated program.
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

use crate::insn::{Ancillary, Insn, RawInsn, Size, SKF_LL_OFF, SKF_NET_OFF};
use crate::vm::fuse::{self, Load, Segment, Side};
use crate::vm::op::{decode, load_jump_ops, Op};
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

/// A validated, pre-decoded program.
#[derive(Debug, Clone)]
pub struct Program {
    /// One op per instruction: what the tracer runs.
    plain: Vec<Op>,
    /// The same with the superinstructions: what runs do.
    pub(crate) fast: Vec<Op>,
    /// The checks and spans the fast ops refer to.
    pub(crate) side: Box<Side>,
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
fn word(data: &[u8], at: usize) -> Option<u32> {
    let b = data.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

#[inline(always)]
fn half(data: &[u8], at: usize) -> Option<u32> {
    let b = data.get(at..at.checked_add(2)?)?;
    Some(u32::from(u16::from_be_bytes([b[0], b[1]])))
}

#[inline(always)]
fn byte(data: &[u8], at: usize) -> Option<u32> {
    data.get(at).map(|&b| u32::from(b))
}

#[inline(always)]
fn read(bytes: &[u8], at: usize, size: Size) -> Option<u32> {
    match size {
        Size::Byte => byte(bytes, at),
        Size::Half => half(bytes, at),
        Size::Word => word(bytes, at),
    }
}

/// The kernel's packet load: offset as a signed number, negative ranges relative to headers.
#[inline(never)]
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

/// An `[x + k]` load: the wrapped sum read from the program's data when it is a non-negative
/// `i32` (the usual case), else through [`load`]'s header-relative ranges.
#[inline(always)]
fn load_ind(
    input: &Input<'_>,
    data: &[u8],
    x: u32,
    k: u32,
    size: Size,
    fast: fn(&[u8], usize) -> Option<u32>,
) -> Option<u32> {
    let offset = x.wrapping_add(k);
    // The read first: in the usual case it succeeds and the sign test is the only other one.
    match fast(data, offset as usize) {
        Some(v) if (offset as i32) >= 0 => Some(v),
        _ if (offset as i32) >= 0 => None,
        _ => load(input, offset, size),
    }
}

/// A check's value: its load (`None` past the packet) under its mask.
#[inline(always)]
fn segment_value(segment: &Segment, input: &Input<'_>, data: &[u8], x: u32) -> Option<u32> {
    let value = match segment.load {
        Load::Abs(Size::Word, k) => word(data, k as usize),
        Load::Abs(Size::Half, k) => half(data, k as usize),
        Load::Abs(Size::Byte, k) => byte(data, k as usize),
        Load::Ind(Size::Word, k) => load_ind(input, data, x, k, Size::Word, word),
        Load::Ind(Size::Half, k) => load_ind(input, data, x, k, Size::Half, half),
        Load::Ind(Size::Byte, k) => load_ind(input, data, x, k, Size::Byte, byte),
    }?;
    Some(value & segment.mask)
}

/// The target of a conditional jump not taken. Marking that side of the branch as the less
/// likely one (through a call to an empty cold function, which the optimizer reads as a
/// branch weight) keeps the jump a branch in the machine code rather than a conditional move:
/// a branch is predicted, so the next instruction starts before the packet byte it depends on
/// has arrived, where a conditional move would make every instruction wait for the previous
/// one's load.
#[inline(always)]
fn not_taken(target: u16) -> u16 {
    unlikely_side();
    target
}

#[cold]
#[inline(always)]
fn unlikely_side() {}

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

#[inline(never)]
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

/// A conditional jump's comparison of `a` with `k`, by its [`JumpCond`] variant's name.
macro_rules! compare {
    (Eq, $a:expr, $k:expr) => {
        $a == $k
    };
    (Gt, $a:expr, $k:expr) => {
        $a > $k
    };
    (Ge, $a:expr, $k:expr) => {
        $a >= $k
    };
    (Set, $a:expr, $k:expr) => {
        $a & $k != 0
    };
}

impl Program {
    /// Validates `prog` for `profile` and prepares it to run.
    pub fn new(prog: &[RawInsn], profile: Profile) -> Result<Program, ValidationError> {
        validate(prog, profile)?;
        let insns: Vec<Insn> = prog.iter().map(|raw| Insn::decode(*raw)).collect();
        let plain: Vec<Op> = insns
            .iter()
            .enumerate()
            .map(|(pc, &insn)| decode(insn, pc))
            .collect();
        let (fast, side) = fuse::select(&insns, &plain);
        Ok(Program {
            plain,
            fast,
            side: Box::new(side),
            raw: prog.to_vec(),
        })
    }

    /// The program's instructions.
    pub fn insns(&self) -> &[RawInsn] {
        &self.raw
    }

    /// Number of instructions.
    pub fn len(&self) -> usize {
        self.plain.len()
    }

    /// Always false: a validated program has at least one instruction.
    pub fn is_empty(&self) -> bool {
        self.plain.is_empty()
    }

    /// Runs on a packet that starts at the program's offset 0 (see [`Input::l3`]).
    pub fn run(&self, packet: &[u8]) -> u32 {
        self.run_with(&Input::l3(packet))
    }

    /// Runs on a packet with its context and returns the verdict.
    #[inline(always)]
    pub fn run_with(&self, input: &Input<'_>) -> u32 {
        self.run_explained(input).0
    }

    /// Runs and says why the run ended.
    #[inline(always)]
    pub fn run_explained(&self, input: &Input<'_>) -> (u32, Exit) {
        let data = input.frame.get(input.start..).unwrap_or(&[]);
        // The superinstructions read offsets as non-negative i32, which every offset inside a
        // packet of at most 2^31 bytes is.
        if data.len() <= i32::MAX as usize {
            self.exec(&self.fast, data, input, &mut ())
        } else {
            self.run_huge(data, input)
        }
    }

    /// A run on a packet of more than 2^31 bytes: the instructions one at a time.
    #[cold]
    #[inline(never)]
    fn run_huge(&self, data: &[u8], input: &Input<'_>) -> (u32, Exit) {
        self.exec(&self.plain, data, input, &mut ())
    }

    /// A run that shows `obs` every instruction, one at a time.
    pub(crate) fn observe<O: Observer>(&self, input: &Input<'_>, obs: &mut O) -> (u32, Exit) {
        let data = input.frame.get(input.start..).unwrap_or(&[]);
        self.exec(&self.plain, data, input, obs)
    }

    /// Runs `ops` (this program's plain or fast ops) on `data`, the packet from the program's
    /// offset 0.
    #[inline(always)]
    fn exec<O: Observer>(
        &self,
        ops: &[Op],
        data: &[u8],
        input: &Input<'_>,
        obs: &mut O,
    ) -> (u32, Exit) {
        let (mut a, mut x) = (0u32, 0u32);
        let mut mem = [0u32; 16];
        let mut pc = 0usize;

        // A load into A (or X) at `pc`: the value, or the end of the run with verdict 0.
        macro_rules! loaded {
            ($value:expr) => {
                match $value {
                    Some(v) => v,
                    None => return (0, Exit::OutOfBounds(pc)),
                }
            };
        }
        // An instruction that changes A or X and goes on to the next one.
        macro_rules! step {
            ($effect:expr) => {{
                $effect;
                obs.step(pc, a, x, None);
                pc += 1;
            }};
        }
        // A conditional jump at `pc`.
        macro_rules! branch {
            ($taken:expr, $t:expr, $f:expr) => {{
                obs.step(pc, a, x, None);
                pc = usize::from(if $taken { $t } else { not_taken($f) });
            }};
        }
        // A fused load (at `pc`) and conditional jump on `$k` (at `pc + 1`).
        macro_rules! load_branch {
            ($value:expr, $cond:ident, $k:expr, $t:expr, $f:expr) => {{
                a = loaded!($value);
                obs.step(pc, a, x, None);
                obs.step(pc + 1, a, x, None);
                let taken: bool = compare!($cond, a, $k);
                pc = usize::from(if taken { $t } else { not_taken($f) });
            }};
        }
        // The packet load of a fused op: `[k]` (abs) or `[x + k]` (ind), of a size.
        macro_rules! read {
            (abs, Word, $k:expr) => {
                word(data, $k as usize)
            };
            (abs, Half, $k:expr) => {
                half(data, $k as usize)
            };
            (abs, Byte, $k:expr) => {
                byte(data, $k as usize)
            };
            (ind, Word, $k:expr) => {
                load_ind(input, data, x, $k, Size::Word, word)
            };
            (ind, Half, $k:expr) => {
                load_ind(input, data, x, $k, Size::Half, half)
            };
            (ind, Byte, $k:expr) => {
                load_ind(input, data, x, $k, Size::Byte, byte)
            };
        }

        // A check of an interval: on to `pc + skip` or to `fail`.
        macro_rules! range {
            ($value:expr, $lo:expr, $width:expr, $fail:expr, $skip:expr) => {{
                a = loaded!($value);
                pc = if a.wrapping_sub($lo) <= $width {
                    pc + usize::from($skip)
                } else {
                    usize::from(not_taken($fail))
                };
            }};
        }

        // The step over a label whose `ldb [x + k]` stands at `$at`: on past the `tax`, or to
        // the failure target.
        macro_rules! step_label {
            ($at:expr, $k:expr, $n:expr, $lo:expr, $w:expr, $fail:expr, $skip:expr) => {{
                a = match load_ind(input, data, x, $k, Size::Byte, byte) {
                    Some(v) => v,
                    None => return (0, Exit::OutOfBounds($at)),
                };
                if a.wrapping_sub(u32::from($lo)) <= u32::from($w) {
                    // add x; add #n; tax
                    a = a.wrapping_add(x).wrapping_add($n);
                    x = a;
                    pc += usize::from($skip);
                } else {
                    pc = usize::from(not_taken($fail));
                }
            }};
        }

        // Span `$i` on the bytes from `$base` plus its start: compared at once when they are
        // all in the packet, else (or when A is needed at the failure target) its checks one
        // at a time.
        macro_rules! span {
            ($i:expr, $base:expr) => {{
                let span = &self.side.spans[usize::from($i)];
                let bytes = ($base as usize)
                    .checked_add(span.start as usize)
                    .and_then(|from| data.get(from..from.checked_add(span.len as usize)?));
                if let Some(bytes) = bytes {
                    if span.matches(bytes) {
                        if let Some(k) = span.next_returns {
                            return (k, Exit::Return(usize::from(span.next)));
                        }
                        a = span.last;
                        pc = usize::from(span.next);
                        continue;
                    }
                    if !span.a_read_at_fail {
                        if let Some(k) = span.fail_returns {
                            return (k, Exit::Return(usize::from(span.fail)));
                        }
                        pc = usize::from(span.fail);
                        continue;
                    }
                }
                pc = usize::from(span.next);
                for segment in span.segments.iter() {
                    a = match segment_value(segment, input, data, x) {
                        Some(v) => v,
                        None => return (0, Exit::OutOfBounds(usize::from(segment.at))),
                    };
                    if !segment.test.passes(a) {
                        pc = usize::from(span.fail);
                        break;
                    }
                }
            }};
        }

        // The loop's one match, with an arm per fused load-and-jump op of the table.
        macro_rules! dispatch {
            ($(($fused:ident, $load:ident, $jump:ident, $base:ident, $size:ident, $cond:ident),)*) => {
                match ops[pc] {
                    Op::LdAbsW(k) => step!(a = loaded!(word(data, k as usize))),
                    Op::LdAbsH(k) => step!(a = loaded!(half(data, k as usize))),
                    Op::LdAbsB(k) => step!(a = loaded!(byte(data, k as usize))),
                    Op::LdIndW(k) => step!(a = loaded!(load_ind(input, data, x, k, Size::Word, word))),
                    Op::LdIndH(k) => step!(a = loaded!(load_ind(input, data, x, k, Size::Half, half))),
                    Op::LdIndB(k) => step!(a = loaded!(load_ind(input, data, x, k, Size::Byte, byte))),
                    Op::LdAbsNeg(size, k) => step!(a = loaded!(load(input, k, size))),
                    Op::LdAnc(anc) => step!(a = ancillary(anc, input, a, x)),
                    Op::LdImm(k) => step!(a = k),
                    Op::LdMem(i) => step!(a = mem[usize::from(i)]),
                    Op::LdLen => step!(a = input.wire_len),
                    Op::LdxImm(k) => step!(x = k),
                    Op::LdxMem(i) => step!(x = mem[usize::from(i)]),
                    Op::LdxLen => step!(x = input.wire_len),
                    Op::LdxMsh(k) => step!(x = 4 * (loaded!(byte(data, k as usize)) & 0xf)),
                    Op::LdxMshNeg(k) => step!(x = 4 * (loaded!(load(input, k, Size::Byte)) & 0xf)),
                    Op::St(i) => {
                        mem[usize::from(i)] = a;
                        obs.step(pc, a, x, Some((usize::from(i), a)));
                        pc += 1;
                    }
                    Op::Stx(i) => {
                        mem[usize::from(i)] = x;
                        obs.step(pc, a, x, Some((usize::from(i), x)));
                        pc += 1;
                    }
                    Op::AddK(k) => step!(a = a.wrapping_add(k)),
                    Op::SubK(k) => step!(a = a.wrapping_sub(k)),
                    Op::MulK(k) => step!(a = a.wrapping_mul(k)),
                    Op::DivK(k) => step!(a /= k),
                    Op::ModK(k) => step!(a %= k),
                    Op::AndK(k) => step!(a &= k),
                    Op::OrK(k) => step!(a |= k),
                    Op::XorK(k) => step!(a ^= k),
                    Op::LshK(k) => step!(a = a.wrapping_shl(k)),
                    Op::RshK(k) => step!(a = a.wrapping_shr(k)),
                    Op::AddX => step!(a = a.wrapping_add(x)),
                    Op::SubX => step!(a = a.wrapping_sub(x)),
                    Op::MulX => step!(a = a.wrapping_mul(x)),
                    Op::DivX => match a.checked_div(x) {
                        Some(v) => step!(a = v),
                        None => return (0, Exit::DivisionByZero(pc)),
                    },
                    Op::ModX => match a.checked_rem(x) {
                        Some(v) => step!(a = v),
                        None => return (0, Exit::DivisionByZero(pc)),
                    },
                    Op::AndX => step!(a &= x),
                    Op::OrX => step!(a |= x),
                    Op::XorX => step!(a ^= x),
                    // The kernel masks the shift count with 31.
                    Op::LshX => step!(a = a.wrapping_shl(x & 31)),
                    Op::RshX => step!(a = a.wrapping_shr(x & 31)),
                    Op::Neg => step!(a = a.wrapping_neg()),
                    Op::Ja(target) => {
                        obs.step(pc, a, x, None);
                        pc = usize::from(target);
                    }
                    Op::JeqK(k, t, f) => branch!(a == k, t, f),
                    Op::JgtK(k, t, f) => branch!(a > k, t, f),
                    Op::JgeK(k, t, f) => branch!(a >= k, t, f),
                    Op::JsetK(k, t, f) => branch!(a & k != 0, t, f),
                    Op::JeqX(t, f) => branch!(a == x, t, f),
                    Op::JgtX(t, f) => branch!(a > x, t, f),
                    Op::JgeX(t, f) => branch!(a >= x, t, f),
                    Op::JsetX(t, f) => branch!(a & x != 0, t, f),
                    Op::RetK(k) => {
                        obs.step(pc, a, x, None);
                        return (k, Exit::Return(pc));
                    }
                    Op::RetA => {
                        obs.step(pc, a, x, None);
                        return (a, Exit::Return(pc));
                    }
                    Op::Tax => step!(x = a),
                    Op::Txa => step!(a = x),
                    $(Op::$fused(o, k, t, f) => load_branch!(read!($base, $size, o), $cond, k, t, f),)*
                    // The ops below are only in the fast path, which has no recording observer.
                    Op::AddXKTax(k) => {
                        a = a.wrapping_add(x).wrapping_add(k);
                        x = a;
                        pc += 3;
                    }
                    // Bound by reference, the op's fields are read where they are used, after the
                    // load's bounds test, rather than all at once.
                    Op::RangeAbsW(k, ref lo, ref w, ref f, ref n) => {
                        range!(word(data, k as usize), *lo, *w, *f, *n)
                    }
                    Op::RangeAbsH(k, ref lo, ref w, ref f, ref n) => {
                        range!(half(data, k as usize), *lo, *w, *f, *n)
                    }
                    Op::RangeAbsB(k, ref lo, ref w, ref f, ref n) => {
                        range!(byte(data, k as usize), *lo, *w, *f, *n)
                    }
                    Op::RangeIndW(k, ref lo, ref w, ref f, ref n) => {
                        range!(
                            load_ind(input, data, x, k, Size::Word, word),
                            *lo,
                            *w,
                            *f,
                            *n
                        )
                    }
                    Op::RangeIndH(k, ref lo, ref w, ref f, ref n) => {
                        range!(
                            load_ind(input, data, x, k, Size::Half, half),
                            *lo,
                            *w,
                            *f,
                            *n
                        )
                    }
                    Op::RangeIndB(k, ref lo, ref w, ref f, ref n) => {
                        range!(
                            load_ind(input, data, x, k, Size::Byte, byte),
                            *lo,
                            *w,
                            *f,
                            *n
                        )
                    }
                    Op::StepLabel(k, ref n, ref lo, ref w, ref f, ref skip) => {
                        step_label!(pc, k, *n, *lo, *w, *f, *skip)
                    }
                    Op::MshStepLabel(k, ref n, ref m, ref lo, ref w, ref f, ref skip) => {
                        x = 4 * (loaded!(byte(data, usize::from(*m))) & 0xf);
                        step_label!(pc + 1, k, *n, *lo, *w, *f, *skip)
                    }
                    Op::Check(i) => {
                        let check = &self.side.checks[usize::from(i)];
                        let segment = &check.segment;
                        a = loaded!(segment_value(segment, input, data, x));
                        pc = usize::from(if segment.test.passes(a) {
                            segment.next
                        } else {
                            not_taken(check.fail)
                        });
                    }
                    Op::SpanAbs(i) => span!(i, 0),
                    Op::SpanInd(i) => span!(i, x as usize),
                }
            };
        }

        // Validation guarantees every jump lands inside the program and the last instruction
        // returns, so `pc` always indexes `ops`.
        loop {
            load_jump_ops!(dispatch)
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

    #[test]
    fn fused_loads_and_jumps_keep_every_step_and_their_targets() {
        // Each load + jump pair runs as one op; a jump landing on the second half (L5) still
        // runs the jump alone, and a trace still shows both steps.
        let src = "ldb [0]\njeq #1, L5\nldh [1]\njgt #0x0203, L7, L8\nret #1\nL5: jset #1, L7, L8\nret #2\nL7: ret #7\nL8: ldx #1\nld [x + 0]\njge #0x02030405, L11\nret #9\nL11: ldb [x + 4]\njset #0x80, L14\nret #11\nL14: ret #14";
        let prog = Program::new(&assemble(src).unwrap(), Profile::Socket).unwrap();
        let cases: [(&[u8], u32); 5] = [
            (&[1, 2, 3], 7),
            (&[2, 2, 4], 7),
            (&[2, 2, 3, 4, 5, 0x80], 14),
            (&[2, 2, 3, 4, 5, 0x7f], 11),
            (&[2, 2, 3, 4], 0),
        ];
        for (packet, verdict) in cases {
            assert_eq!(prog.run(packet), verdict, "{packet:?}");
            let trace = crate::vm::trace(&prog, &Input::l3(packet));
            assert_eq!(trace.verdict, verdict);
        }
        let trace = crate::vm::trace(&prog, &Input::l3(&[2, 2, 3, 4, 5, 0x80]));
        let pcs: Vec<usize> = trace.steps.iter().map(|s| s.pc).collect();
        assert_eq!(pcs, [0, 1, 2, 3, 8, 9, 10, 12, 13, 15]);
        assert_eq!(trace.steps[3].a, 0x0203);
        let short = crate::vm::trace(&prog, &Input::l3(&[2, 2, 3, 4]));
        assert_eq!(short.exit, Exit::OutOfBounds(9));
    }
}
