//! Superinstructions: the program's common idioms recognised once, when it is prepared, and
//! run as one op each by the interpreter's fast path ([`crate::vm::Program::run_with`]).
//!
//! - A *check* is a packet load into A, an optional `and #mask`, then one or more conditional
//!   jumps on constants that all fall through to the next instruction or go to one and the same
//!   target (`ldb [x + 34]; jeq #0, F; jgt #63, F`). Their conditions together let A through
//!   when it lies in one interval (or, for a lone `jset`, when it has bits in common with a
//!   constant), so the check is one load and one comparison.
//! - A *span* is a run of two or more checks that each let through one value (`ld [x + 0];
//!   jneq #0x3777777, F; ld [x + 4]; jneq ...`), on the same base (all `[k]` or all `[x + k]`)
//!   and with the same failure target. When all its bytes are in the packet it is one masked
//!   comparison of packet bytes with the expected bytes, 8 at a time. Otherwise (a load would
//!   end the run) and when it fails while A is still read at the failure target, its checks run
//!   one by one, so the outcome, A and the reason a run ends stay exactly the instructions'.
//!
//! The instructions inside a superinstruction keep their own ops for jumps that land on them,
//! and the tracer runs the instructions one by one, so it shows every step.
//!
//! Kept here: recognising checks and spans, the liveness of A they need, and [`select`], which
//! picks each index's superinstruction (fused load-and-jump ops come from the one table in
//! [`crate::vm::op`]). Not here: running them ([`crate::vm::run`]). A superinstruction must
//! give exactly the verdict, A and reason for ending of the instructions it stands for;
//! src/vm/tests.rs checks that against the tracer on generated programs.

use crate::insn::{AluOp, Insn, JumpCond, Operand, Regs, Size};
use crate::vm::op::{load_jump_ops, Op};

/// Most jumps one check takes in (which bounds the work of preparing a program).
const MAX_CHECK_JUMPS: u16 = 16;

/// Most checks in one span.
const MAX_SPAN_CHECKS: usize = 16;

/// Where a check loads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Load {
    /// `[k]` with `k` a non-negative `i32`.
    Abs(Size, u32),
    /// `[x + k]`.
    Ind(Size, u32),
}

impl Load {
    fn of(insn: Insn) -> Option<Load> {
        match insn {
            Insn::LoadAbs { size, offset } if (offset as i32) >= 0 => Some(Load::Abs(size, offset)),
            Insn::LoadInd { size, offset } => Some(Load::Ind(size, offset)),
            _ => None,
        }
    }

    fn size(self) -> Size {
        match self {
            Load::Abs(size, _) | Load::Ind(size, _) => size,
        }
    }

    /// The constant `k` of the load.
    #[inline(always)]
    pub(crate) fn offset(self) -> u32 {
        match self {
            Load::Abs(_, k) | Load::Ind(_, k) => k,
        }
    }
}

/// When a check's value goes on to the next instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Test {
    /// When `value - lo <= width` (wrapping): `value` in `[lo, lo + width]`.
    Range {
        /// Lowest value let through.
        lo: u32,
        /// Highest minus lowest.
        width: u32,
    },
    /// When `(value & bits != 0) == set`.
    Bits {
        /// The `jset` constant.
        bits: u32,
        /// Whether the bits must be set (or clear) to go on.
        set: bool,
    },
}

impl Test {
    /// Whether `value` goes on to the next instruction.
    #[inline(always)]
    pub(crate) fn passes(self, value: u32) -> bool {
        match self {
            Test::Range { lo, width } => value.wrapping_sub(lo) <= width,
            Test::Bits { bits, set } => (value & bits != 0) == set,
        }
    }
}

/// A load, a mask and the test of the jumps after them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Segment {
    /// Index of the load (for the reason a run ends).
    pub(crate) at: u16,
    /// The load.
    pub(crate) load: Load,
    /// The `and` constant, all ones without one.
    pub(crate) mask: u32,
    /// What lets the value through.
    pub(crate) test: Test,
    /// Index after the last jump: where a value that passes goes.
    pub(crate) next: u16,
    /// Number of jumps.
    jumps: u16,
}

/// A check: one segment and where a value that fails goes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Check {
    /// The segment.
    pub(crate) segment: Segment,
    /// Where a value that fails goes.
    pub(crate) fail: u16,
}

/// A word a span compares at once: 8 bytes (`u64`) or 16 (`u128`), read little-endian.
pub(crate) trait Word:
    Copy + Eq + std::ops::BitAnd<Output = Self> + std::fmt::Debug
{
    /// Its size in bytes.
    const BYTES: usize;
    /// The word in `bytes`, when they are exactly `BYTES` long.
    fn from_le(bytes: &[u8]) -> Option<Self>;
}

impl Word for u64 {
    const BYTES: usize = 8;
    #[inline(always)]
    fn from_le(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(u64::from_le_bytes)
    }
}

impl Word for u128 {
    const BYTES: usize = 16;
    #[inline(always)]
    fn from_le(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(u128::from_le_bytes)
    }
}

/// One word of a span: `(packet bytes, little-endian) & mask == expected`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window<W> {
    pub(crate) mask: W,
    pub(crate) expected: W,
}

impl<W: Word> Window<W> {
    /// The window over the bytes at `at` of a span's masks and expected bytes.
    fn new(mask: &[u8], expected: &[u8], at: usize) -> Option<Self> {
        let word = |bytes: &[u8]| W::from_le(bytes.get(at..at.checked_add(W::BYTES)?)?);
        Some(Window {
            mask: word(mask)?,
            expected: word(expected)?,
        })
    }

    /// Whether `bytes`, exactly one word, hold what the window expects.
    #[inline(always)]
    fn holds(self, bytes: &[u8]) -> bool {
        W::from_le(bytes).is_some_and(|word| word & self.mask == self.expected)
    }

    /// Whether the first word of `bytes` holds what the window expects.
    #[inline(always)]
    fn holds_first(self, bytes: &[u8]) -> bool {
        bytes.get(..W::BYTES).is_some_and(|first| self.holds(first))
    }

    /// Whether the last word of `bytes` holds what the window expects.
    #[inline(always)]
    fn holds_last(self, bytes: &[u8]) -> bool {
        bytes
            .len()
            .checked_sub(W::BYTES)
            .and_then(|at| bytes.get(at..))
            .is_some_and(|last| self.holds(last))
    }
}

/// How a span's bytes are compared, by its length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Compare {
    /// 8 to 16 bytes: the first 8 and the last 8 (which may overlap).
    Short(Window<u64>, Window<u64>),
    /// 17 to 32 bytes: the first 16 and the last 16.
    Medium(Window<u128>, Window<u128>),
    /// Longer: each whole 8-byte word, then the last 8 bytes when the length is not a
    /// multiple of 8.
    Long(Box<[Window<u64>]>, Option<Window<u64>>),
}

/// Consecutive single-value checks with one failure target, compared as bytes.
#[derive(Debug, Clone)]
pub(crate) struct Span {
    /// The checks, in order, for the exact path.
    pub(crate) segments: Box<[Segment]>,
    /// Whether the loads are `[x + k]`.
    pub(crate) indirect: bool,
    /// Lowest offset `k` of the loads.
    pub(crate) start: u32,
    /// Bytes from `start` to the end of the farthest load (at least 8).
    pub(crate) len: u32,
    /// The comparison of its bytes.
    pub(crate) compare: Compare,
    /// A after the last check passes: the value it lets through.
    pub(crate) last: u32,
    /// Where a failing value goes.
    pub(crate) fail: u16,
    /// Where the span goes when every check passes.
    pub(crate) next: u16,
    /// Whether A is read at `fail` before it is written: then a failure must run the checks
    /// one by one to give A the failing check's value.
    pub(crate) a_read_at_fail: bool,
    /// The verdict of a `ret #k` at `next`, which a passing span returns at once.
    pub(crate) next_returns: Option<u32>,
    /// The verdict of a `ret #k` at `fail`, which a failing span returns at once.
    pub(crate) fail_returns: Option<u32>,
}

impl Span {
    /// Whether `bytes`, the span's `len` bytes of the packet (exactly `len`: the caller cuts
    /// them), hold what it expects.
    #[inline(always)]
    pub(crate) fn matches(&self, bytes: &[u8]) -> bool {
        match &self.compare {
            Compare::Short(head, tail) => head.holds_first(bytes) && tail.holds_last(bytes),
            Compare::Medium(head, tail) => head.holds_first(bytes) && tail.holds_last(bytes),
            Compare::Long(words, tail) => {
                words
                    .iter()
                    .zip(bytes.chunks_exact(8))
                    .all(|(w, eight)| w.holds(eight))
                    && tail.is_none_or(|w| w.holds_last(bytes))
            }
        }
    }
}

/// The superinstructions' tables, behind one pointer.
#[derive(Debug, Clone, Default)]
pub(crate) struct Side {
    pub(crate) checks: Vec<Check>,
    pub(crate) spans: Vec<Span>,
}

/// The fast path's ops of a program: `plain` (one op per instruction of `insns`, from
/// [`crate::vm::op::decode`]) with each superinstruction at the index of its first
/// instruction, and the tables its checks and spans refer to. In order of preference at each
/// index: a span, the step over a DNS label, a compound check, `ldx 4*([m]&0xf)` before a
/// label step, `add x; add #k; tax`, a load followed by a jump on a constant.
pub(crate) fn select(insns: &[Insn], plain: &[Op]) -> (Vec<Op>, Side) {
    let a_read = a_read_before_written(insns);
    let mut checks = Vec::new();
    let mut spans = Vec::new();
    // At most 4096 instructions, so at most 4096 checks and spans: indexes fit u16.
    let mut fast = Vec::with_capacity(plain.len());
    for (pc, &op) in plain.iter().enumerate() {
        let op = if let Some(span) = span_at(insns, pc, &a_read) {
            let indirect = span.indirect;
            spans.push(span);
            let index = (spans.len() - 1) as u16;
            if indirect {
                Op::SpanInd(index)
            } else {
                Op::SpanAbs(index)
            }
        } else if let Some(step) = step_label(insns, pc) {
            step
        } else if let Some(check) = check_at(insns, pc).filter(Check::is_compound) {
            let segment = check.segment;
            // A check spans at most a load, an and and MAX_CHECK_JUMPS jumps.
            let skip = (usize::from(segment.next) - pc) as u8;
            match (segment.mask, segment.test) {
                (u32::MAX, Test::Range { lo, width }) => {
                    let fail = check.fail;
                    match segment.load {
                        Load::Abs(Size::Word, k) => Op::RangeAbsW(k, lo, width, fail, skip),
                        Load::Abs(Size::Half, k) => Op::RangeAbsH(k, lo, width, fail, skip),
                        Load::Abs(Size::Byte, k) => Op::RangeAbsB(k, lo, width, fail, skip),
                        Load::Ind(Size::Word, k) => Op::RangeIndW(k, lo, width, fail, skip),
                        Load::Ind(Size::Half, k) => Op::RangeIndH(k, lo, width, fail, skip),
                        Load::Ind(Size::Byte, k) => Op::RangeIndB(k, lo, width, fail, skip),
                    }
                }
                _ => {
                    checks.push(check);
                    Op::Check((checks.len() - 1) as u16)
                }
            }
        } else if let (Op::LdxMsh(m), Some(Op::StepLabel(k, n, lo, width, fail, skip))) =
            (op, step_label(insns, pc + 1))
        {
            match (u16::try_from(m), skip.checked_add(1)) {
                (Ok(m), Some(skip)) => Op::MshStepLabel(k, n, m, lo, width, fail, skip),
                _ => op,
            }
        } else if let (Op::AddX, Some(&Op::AddK(k)), Some(Op::Tax)) =
            (op, plain.get(pc + 1), plain.get(pc + 2))
        {
            Op::AddXKTax(k)
        } else {
            plain
                .get(pc + 1)
                .and_then(|&jump| fuse_load_jump(op, jump))
                .unwrap_or(op)
        };
        fast.push(op);
    }
    (fast, Side { checks, spans })
}

/// A packet load followed by a conditional jump on a constant, as one op (a row of
/// [`load_jump_ops`]).
macro_rules! fuse_load_jump {
    ($(($fused:ident, $load:ident, $jump:ident, $base:ident, $size:ident, $cond:ident),)*) => {
        fn fuse_load_jump(load: Op, jump: Op) -> Option<Op> {
            match (load, jump) {
                $((Op::$load(offset), Op::$jump(k, t, f)) => Some(Op::$fused(offset, k, t, f)),)*
                _ => None,
            }
        }
    };
}
load_jump_ops!(fuse_load_jump);

/// The [`Op::StepLabel`] standing at `pc`, if there is one.
fn step_label(insns: &[Insn], pc: usize) -> Option<Op> {
    let check = check_at(insns, pc)?;
    let segment = check.segment;
    let (Load::Ind(Size::Byte, k), u32::MAX, Test::Range { lo, width }) =
        (segment.load, segment.mask, segment.test)
    else {
        return None;
    };
    let next = usize::from(segment.next);
    let (
        Some(Insn::Alu {
            op: AluOp::Add,
            operand: Operand::X,
        }),
        Some(&Insn::Alu {
            op: AluOp::Add,
            operand: Operand::K(n),
        }),
        Some(Insn::Tax),
    ) = (insns.get(next), insns.get(next + 1), insns.get(next + 2))
    else {
        return None;
    };
    // A byte is at most 255: the interval's part above it does not count.
    let lo = u8::try_from(lo).ok()?;
    let width = width.min(u32::from(255 - lo)) as u8;
    let skip = u8::try_from(next + 3 - pc).ok()?;
    Some(Op::StepLabel(k, n, lo, width, check.fail, skip))
}

fn width(size: Size) -> u32 {
    match size {
        Size::Word => 4,
        Size::Half => 2,
        Size::Byte => 1,
    }
}

/// The set of values a conditional jump on `k` lets go on to the next instruction, when the
/// other side (`exit_when` being the condition's outcome there) leaves.
fn narrow(range: (u32, u32), cond: JumpCond, k: u32, exit_when: bool) -> Option<(u32, u32)> {
    let (lo, hi) = range;
    let (lo, hi) = match (cond, exit_when) {
        // Goes on unless A == k: representable when k is at an edge or outside.
        (JumpCond::Eq, true) => {
            if k < lo || k > hi {
                (lo, hi)
            } else if lo == hi {
                return None;
            } else if k == lo {
                (lo + 1, hi)
            } else if k == hi {
                (lo, hi - 1)
            } else {
                return None;
            }
        }
        (JumpCond::Eq, false) => (lo.max(k), hi.min(k)),
        (JumpCond::Gt, true) => (lo, hi.min(k)),
        (JumpCond::Gt, false) => (lo.max(k.checked_add(1)?), hi),
        (JumpCond::Ge, true) => (lo, hi.min(k.checked_sub(1)?)),
        (JumpCond::Ge, false) => (lo.max(k), hi),
        (JumpCond::Set, _) => return None,
    };
    (lo <= hi).then_some((lo, hi))
}

/// The check standing at `pc`, if there is one, with its failure target.
pub(crate) fn check_at(insns: &[Insn], pc: usize) -> Option<Check> {
    let load = Load::of(*insns.get(pc)?)?;
    let mut at = pc + 1;
    let mut mask = u32::MAX;
    if let Some(Insn::Alu {
        op: AluOp::And,
        operand: Operand::K(m),
    }) = insns.get(at)
    {
        mask = *m;
        at += 1;
    }
    let mut range = (0u32, u32::MAX);
    let mut bits = None;
    let mut fail = None;
    let mut jumps = 0u16;
    while jumps < MAX_CHECK_JUMPS {
        let Some(
            &insn @ Insn::Jump {
                cond,
                operand: Operand::K(k),
                ..
            },
        ) = insns.get(at)
        else {
            break;
        };
        let (t, f) = insn.jump_targets(at)?;
        let next = at as u64 + 1;
        let (exit_when, target) = match (t == next, f == next) {
            (true, false) => (false, f),
            (false, true) => (true, t),
            _ => break,
        };
        if fail.is_some_and(|fail| fail != target) || bits.is_some() {
            break;
        }
        if cond == JumpCond::Set {
            if jumps > 0 {
                break;
            }
            bits = Some(Test::Bits {
                bits: k,
                set: !exit_when,
            });
        } else {
            match narrow(range, cond, k, exit_when) {
                Some(narrowed) => range = narrowed,
                None => break,
            }
        }
        fail = Some(target);
        jumps += 1;
        at += 1;
    }
    let fail = u16::try_from(fail?).ok()?;
    let test = bits.unwrap_or(Test::Range {
        lo: range.0,
        width: range.1 - range.0,
    });
    Some(Check {
        segment: Segment {
            at: u16::try_from(pc).ok()?,
            load,
            mask,
            test,
            next: u16::try_from(at).ok()?,
            jumps,
        },
        fail,
    })
}

impl Check {
    /// Whether this check is worth more than the plain load-and-jump op: a mask, or more than
    /// one jump.
    pub(crate) fn is_compound(&self) -> bool {
        self.segment.mask != u32::MAX || self.segment.jumps > 1
    }

    /// The one value this check lets through, if it is a single value that fits the load.
    fn single_value(&self) -> Option<u32> {
        let Test::Range { lo, width: 0 } = self.segment.test else {
            return None;
        };
        let bytes = width(self.segment.load.size());
        let loaded = if bytes == 4 {
            u32::MAX
        } else {
            (1 << (8 * bytes)) - 1
        };
        // A value outside the mask or the load's width is never let through: not a span.
        (lo & !(self.segment.mask & loaded) == 0).then_some(lo)
    }
}

/// The span starting at `pc`, when two or more single-value checks follow each other there
/// and cover at least 8 bytes. `a_read` tells whether A is read at an instruction before it
/// is written (see [`a_read_before_written`]).
pub(crate) fn span_at(insns: &[Insn], pc: usize, a_read: &[bool]) -> Option<Span> {
    let first = check_at(insns, pc)?;
    let indirect = matches!(first.segment.load, Load::Ind(..));
    let mut segments = Vec::new();
    // Expected bytes and masks by offset from the lowest k, which is not known until the
    // end: collect (k, size, mask, value) first.
    let mut parts: Vec<(u32, Size, u32, u32)> = Vec::new();
    let mut last = 0;
    let mut at = pc;
    while segments.len() < MAX_SPAN_CHECKS {
        let Some(check) = check_at(insns, at) else {
            break;
        };
        let Some(value) = check.single_value() else {
            break;
        };
        if check.fail != first.fail || matches!(check.segment.load, Load::Ind(..)) != indirect {
            break;
        }
        let load = check.segment.load;
        // Offsets near the top of u32 would wrap; leave them to the exact path.
        if load.offset() > i32::MAX as u32 - 8 {
            break;
        }
        let part = (load.offset(), load.size(), check.segment.mask, value);
        if conflicts(&parts, part) {
            break;
        }
        parts.push(part);
        segments.push(check.segment);
        last = value;
        at = usize::from(check.segment.next);
    }
    if segments.len() < 2 {
        return None;
    }
    let start = parts.iter().map(|p| p.0).min()?;
    let end = parts.iter().map(|p| p.0 + width(p.1)).max()?;
    let len = end - start;
    if len < 8 {
        return None;
    }
    let mut expected = vec![0u8; len as usize];
    let mut mask = vec![0u8; len as usize];
    for &(k, size, m, value) in &parts {
        let n = width(size) as usize;
        let rel = (k - start) as usize;
        let value = &value.to_be_bytes()[4 - n..];
        let m = &m.to_be_bytes()[4 - n..];
        for i in 0..n {
            expected[rel + i] |= value[i] & m[i];
            mask[rel + i] |= m[i];
        }
    }
    let n = len as usize;
    let compare = match n {
        ..=16 => Compare::Short(
            Window::new(&mask, &expected, 0)?,
            Window::new(&mask, &expected, n - 8)?,
        ),
        17..=32 => Compare::Medium(
            Window::new(&mask, &expected, 0)?,
            Window::new(&mask, &expected, n - 16)?,
        ),
        _ => Compare::Long(
            (0..n / 8)
                .map(|i| Window::new(&mask, &expected, 8 * i))
                .collect::<Option<_>>()?,
            match n % 8 {
                0 => None,
                _ => Some(Window::new(&mask, &expected, n - 8)?),
            },
        ),
    };
    let next = segments.last()?.next;
    Some(Span {
        segments: segments.into_boxed_slice(),
        indirect,
        start,
        len,
        compare,
        last,
        fail: first.fail,
        next,
        a_read_at_fail: a_read.get(usize::from(first.fail)).copied().unwrap_or(true),
        next_returns: returns(insns, next),
        fail_returns: returns(insns, first.fail),
    })
}

/// The verdict of the instruction at `pc` when it is a `ret #k`.
fn returns(insns: &[Insn], pc: u16) -> Option<u32> {
    match insns.get(usize::from(pc)) {
        Some(Insn::RetK(k)) => Some(*k),
        _ => None,
    }
}

/// Whether `part` expects other bits than the parts before it where they overlap.
fn conflicts(parts: &[(u32, Size, u32, u32)], part: (u32, Size, u32, u32)) -> bool {
    let bytes = |(k, size, mask, value): (u32, Size, u32, u32)| {
        let n = width(size) as usize;
        let value = value.to_be_bytes();
        let mask = mask.to_be_bytes();
        (0..n).map(move |i| (u64::from(k) + i as u64, value[4 - n + i], mask[4 - n + i]))
    };
    parts.iter().any(|&other| {
        bytes(other).any(|(at, v1, m1)| {
            bytes(part).any(|(at2, v2, m2)| at == at2 && (v1 ^ v2) & m1 & m2 != 0)
        })
    })
}

/// For each instruction, whether the value of A it starts with can be read (by it or by a
/// later instruction) before A is written: a backward liveness pass, which is one pass since
/// every jump goes forward.
pub(crate) fn a_read_before_written(insns: &[Insn]) -> Vec<bool> {
    let mut live = vec![false; insns.len()];
    for pc in (0..insns.len()).rev() {
        let after = |target: u64| {
            usize::try_from(target)
                .ok()
                .and_then(|t| live.get(t))
                .copied()
        };
        let insn = insns[pc];
        let effects = insn.effects();
        let out = match insn.jump_targets(pc) {
            // A return ends the run: nothing after it reads A.
            _ if effects.returns => false,
            Some((t, f)) => after(t).unwrap_or(true) || after(f).unwrap_or(true),
            None => live.get(pc + 1).copied().unwrap_or(false),
        };
        // An unknown opcode reads everything, so A is live there.
        live[pc] = effects.reads.contains(Regs::A) || (!effects.writes.contains(Regs::A) && out);
    }
    live
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asm::assemble;

    fn insns(src: &str) -> Vec<Insn> {
        assemble(src)
            .unwrap()
            .into_iter()
            .map(Insn::decode)
            .collect()
    }

    #[test]
    fn checks_reduce_their_jumps_to_one_interval() {
        let prog = insns("ldb [x + 34]\njeq #0, fail\njgt #63, fail\nret #1\nfail: ret #0");
        let check = check_at(&prog, 0).unwrap();
        assert_eq!(check.fail, 4);
        assert_eq!(check.segment.next, 3);
        assert_eq!(check.segment.test, Test::Range { lo: 1, width: 62 });
        assert!(check.is_compound());
        // A jeq in the middle of the interval is not one interval: the check stops before it.
        let prog = insns("ldb [0]\njgt #63, fail\njeq #7, fail\nret #1\nfail: ret #0");
        let check = check_at(&prog, 0).unwrap();
        assert_eq!(check.segment.next, 2);
        assert_eq!(check.segment.test, Test::Range { lo: 0, width: 63 });
        // Different failure targets end the check too.
        let prog = insns("ldh [0]\njge #10, a\njeq #3, b\nret #1\na: ret #2\nb: ret #3");
        let check = check_at(&prog, 0).unwrap();
        assert_eq!(check.segment.next, 2);
        assert_eq!(check.segment.test, Test::Range { lo: 0, width: 9 });
        // jset alone, with a mask.
        let prog = insns("ld [x + 2]\nand #0xff00\njset #0x100, fail\nret #1\nfail: ret #0");
        let check = check_at(&prog, 0).unwrap();
        assert_eq!(check.segment.mask, 0xff00);
        assert_eq!(
            check.segment.test,
            Test::Bits {
                bits: 0x100,
                set: false
            }
        );
        // Nothing to check: a load alone, or a jump that leaves both ways.
        assert!(check_at(&insns("ld [0]\nret a"), 0).is_none());
        assert!(check_at(
            &insns("ld [0]\njeq #1, b, c\nret #1\nb: ret #2\nc: ret #0"),
            0
        )
        .is_none());
    }

    #[test]
    fn spans_compare_the_expected_bytes_under_their_masks() {
        let src = "ld [x + 0]\njneq #0x3777777, fail\nld [x + 4]\njneq #0x7657861, fail\nldh [x + 8]\nand #0xff0f\njneq #0x6d05, fail\nldb [x + 10]\njneq #0, fail\nret #1\nfail: ret #0";
        let prog = insns(src);
        let live = a_read_before_written(&prog);
        let span = span_at(&prog, 0, &live).unwrap();
        assert_eq!(span.segments.len(), 4);
        assert_eq!((span.start, span.len, span.last), (0, 11, 0));
        assert_eq!((span.fail, span.next), (10, 9));
        assert!(!span.a_read_at_fail);
        // The first 8 bytes (0..8) and the last 8 (3..11).
        assert!(matches!(span.compare, Compare::Short(..)));
        assert_eq!((span.next_returns, span.fail_returns), (Some(1), Some(0)));
        let bytes = [3, b'w', b'w', b'w', 7, b'e', b'x', b'a', 0x6d, 0xf5, 0];
        // 0xf5 & 0x0f == 0x05: the masked-out nibble does not count.
        assert!(span.matches(&bytes));
        for at in 0..bytes.len() {
            let mut other = bytes;
            other[at] ^= 0x10;
            // Only the masked-out nibble at 9 may change.
            assert_eq!(span.matches(&other), at == 9, "byte {at} changed");
        }
        // Conflicting expectations on the same bytes end the span.
        let prog = insns("ld [0]\njneq #1, fail\nld [0]\njneq #2, fail\nld [4]\njneq #0, fail\nret #1\nfail: ret a");
        let live = a_read_before_written(&prog);
        assert!(span_at(&prog, 0, &live).is_none());
        assert!(live[7]);
    }

    #[test]
    fn spans_of_every_length_compare_each_byte() {
        // Spans of 4-byte checks then 1-byte checks, 8 to 64 bytes long: each compare shape.
        for len in 8usize..=64 {
            let bytes: Vec<u8> = (0..len)
                .map(|i| (i as u8).wrapping_mul(37) ^ 0x5a)
                .collect();
            let mut src = String::new();
            let mut at = 0;
            while at < len {
                if len - at >= 4 && (at / 4) % 5 != 3 {
                    let v = u32::from_be_bytes([
                        bytes[at],
                        bytes[at + 1],
                        bytes[at + 2],
                        bytes[at + 3],
                    ]);
                    src += &format!("ld [x + {at}]\njneq #{v}, fail\n");
                    at += 4;
                } else {
                    src += &format!("ldb [x + {at}]\njneq #{}, fail\n", bytes[at]);
                    at += 1;
                }
            }
            src += "ret #1\nfail: ret #0";
            let prog = insns(&src);
            let live = a_read_before_written(&prog);
            let Some(span) = span_at(&prog, 0, &live) else {
                // More than MAX_SPAN_CHECKS checks: the span stops early, which is tested below.
                assert!(prog.len() / 2 > MAX_SPAN_CHECKS, "no span for {len} bytes");
                continue;
            };
            if span.len as usize != len {
                assert!(
                    span.segments.len() == MAX_SPAN_CHECKS,
                    "{len}: {}",
                    span.len
                );
            }
            let n = span.len as usize;
            let shape_ok = match span.compare {
                Compare::Short(..) => n <= 16,
                Compare::Medium(..) => (17..=32).contains(&n),
                Compare::Long(..) => n > 32,
            };
            assert!(shape_ok, "{n} bytes: {:?}", span.compare);
            assert!(span.matches(&bytes[..n]), "{n} bytes");
            for i in 0..n {
                let mut other = bytes[..n].to_vec();
                other[i] ^= 0x01;
                assert!(!span.matches(&other), "{n} bytes, byte {i} changed");
            }
        }
    }

    #[test]
    fn liveness_of_a_follows_every_path() {
        let prog = insns("ldx #1\njeq #1, l1\nld #2\nret a\nl1: tax\nret #0");
        let live = a_read_before_written(&prog);
        assert_eq!(live, [true, true, false, true, true, false]);
        let prog = insns("ja l1\nret a\nl1: ld [0]\nret a");
        assert_eq!(a_read_before_written(&prog), [false, true, false, true]);
        // What follows a return is not its successor.
        let prog = insns("ld [0]\njeq #1, l1\nret #2\nl1: ret a");
        assert_eq!(a_read_before_written(&prog), [false, true, false, true]);
    }
}
