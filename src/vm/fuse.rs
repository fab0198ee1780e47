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

use crate::insn::{AluOp, Insn, JumpCond, Operand, Regs, Size};

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
    use crate::vm::Exit;

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

    /// proptest's deterministic generator, so a failure can be replayed.
    struct Rng(proptest::test_runner::TestRng);

    impl Rng {
        fn next(&mut self) -> u64 {
            proptest::prelude::Rng::next_u64(&mut self.0)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn chance(&mut self, percent: u64) -> bool {
            self.below(100) < percent
        }
    }

    /// Jump targets while a program is built: the next instruction or one of the exits.
    #[derive(Clone, Copy)]
    enum To {
        Next,
        Exit(usize),
    }

    /// A program made of the idioms the superinstructions stand for (checks with masks and
    /// several jumps, runs of checks on one base, `add x; add #k; tax`, the step over a DNS
    /// label), with constants taken from `packet` often enough that runs get far, and exits
    /// that read A or not.
    fn idiom_program(rng: &mut Rng, packet: &[u8]) -> Vec<crate::insn::RawInsn> {
        use crate::insn::RawInsn;
        let value_at = |at: usize, n: usize| {
            (0..n).fold(0u32, |v, i| {
                (v << 8) | u32::from(packet.get(at + i).copied().unwrap_or(0))
            })
        };
        let mut body: Vec<(u16, To, To, u32)> = Vec::new();
        // X somewhere small (or, rarely, near the top of u32 so [x + k] wraps or goes negative).
        let x = match rng.below(10) {
            0 => 0xffff_fff0 + rng.below(16) as u32,
            1 => 0x8000_0000,
            _ => rng.below(12) as u32,
        };
        body.push((0x01, To::Next, To::Next, x)); // ldx #x

        // A and X on the path where every check passes, so later constants match the packet.
        let (mut a_now, mut x_now) = (0u32, x);
        let exits = 4;
        for _ in 0..1 + rng.below(8) {
            match rng.below(10) {
                0 => {
                    // add x; add #k; tax
                    let k = rng.below(8) as u32;
                    body.push((0x0c, To::Next, To::Next, 0));
                    body.push((0x04, To::Next, To::Next, k));
                    body.push((0x07, To::Next, To::Next, 0));
                    a_now = a_now.wrapping_add(x_now).wrapping_add(k);
                    x_now = a_now;
                }
                1 => {
                    x_now = rng.below(12) as u32;
                    body.push((0x01, To::Next, To::Next, x_now));
                }
                2 => {
                    // A DNS name's label step: ldb [x + k]; jeq #0, E; jgt #m, E; add x;
                    // add #n; tax.
                    if rng.chance(40) {
                        // ldx 4*([m]&0xf) first, as an IPv4 program starts.
                        let m = rng.below(24) as u32;
                        body.push((0xb1, To::Next, To::Next, m));
                        x_now = 4 * (value_at(m as usize, 1) & 0xf);
                    }
                    let exit = To::Exit(rng.below(exits) as usize);
                    let (k, n) = (rng.below(24) as u32, 1 + rng.below(8) as u32);
                    let byte = value_at(x_now.wrapping_add(k) as usize, 1);
                    let most = if rng.chance(70) {
                        63
                    } else {
                        rng.below(256) as u32
                    };
                    body.push((0x50, To::Next, To::Next, k));
                    body.push((0x15, exit, To::Next, 0));
                    body.push((0x25, exit, To::Next, most));
                    body.push((0x0c, To::Next, To::Next, 0));
                    body.push((0x04, To::Next, To::Next, n));
                    body.push((0x07, To::Next, To::Next, 0));
                    x_now = x_now.wrapping_add(byte).wrapping_add(n);
                    a_now = x_now;
                }
                _ => {
                    // A run of checks on one base, often with one exit.
                    let indirect = rng.chance(60);
                    let exit = rng.below(exits) as usize;
                    let mut offset = rng.below(24) as u32;
                    // Half the runs are pure spans: one `jeq` on the packet's value each.
                    let pure = rng.chance(50);
                    for _ in 0..1 + rng.below(6) {
                        let (size_code, n) = match rng.below(4) {
                            0 => (0x10, 1),
                            1 => (0x08, 2),
                            _ => (0x00, 4),
                        };
                        let base = if indirect { 0x40 } else { 0x20 };
                        body.push((base | size_code, To::Next, To::Next, offset));
                        let at = if indirect {
                            x_now.wrapping_add(offset)
                        } else {
                            offset
                        } as usize;
                        let mut value = value_at(at, n);
                        if rng.chance(20) {
                            let mask = rng.next() as u32;
                            body.push((0x54, To::Next, To::Next, mask)); // and #mask
                            value &= mask;
                        }
                        a_now = value;
                        if pure {
                            body.push((0x15, To::Next, To::Exit(exit), value));
                        }
                        for _ in 0..if pure { 0 } else { 1 + rng.below(3) } {
                            let (code, k) = match rng.below(8) {
                                0 => (0x25, value.wrapping_sub(rng.below(3) as u32)), // jgt
                                1 => (0x35, value.wrapping_add(rng.below(3) as u32)), // jge
                                2 => (0x45, rng.next() as u32),                       // jset
                                3 => (0x15, rng.next() as u32 & 0xff),                // jeq
                                _ => (0x15, value),                                   // jeq
                            };
                            let leave = if rng.chance(85) {
                                To::Exit(exit)
                            } else {
                                To::Exit(rng.below(exits) as usize)
                            };
                            if rng.chance(70) {
                                body.push((code, To::Next, leave, k));
                            } else {
                                body.push((code, leave, To::Next, k));
                            }
                        }
                        offset += if rng.chance(80) {
                            n as u32
                        } else {
                            rng.below(6) as u32
                        };
                    }
                }
            }
        }
        body.push((0x06, To::Next, To::Next, 1)); // ret #1
                                                  // The exits: ret a; ret #2; add #1, ret a; ld #5, ret a.
        let exit_code: [&[(u16, u32)]; 4] = [
            &[(0x16, 0)],
            &[(0x06, 2)],
            &[(0x04, 1), (0x16, 0)],
            &[(0x00, 5), (0x16, 0)],
        ];
        let mut starts = Vec::new();
        let mut at = body.len();
        for code in exit_code {
            starts.push(at);
            at += code.len();
        }
        let mut prog = Vec::new();
        for (pc, &(code, t, f, k)) in body.iter().enumerate() {
            let offset = |to: To| match to {
                To::Next => 0,
                To::Exit(e) => (starts[e] - pc - 1) as u8,
            };
            prog.push(RawInsn::new(code, offset(t), offset(f), k));
        }
        for code in exit_code {
            for &(code, k) in code {
                prog.push(RawInsn::new(code, 0, 0, k));
            }
        }
        prog
    }

    /// The fast path (superinstructions) and the tracer (one instruction at a time) agree on
    /// the verdict and on why the run ended, on programs made of the idioms and packets that
    /// pass their checks in part, in whole, or end short.
    #[test]
    fn superinstructions_give_the_instructions_outcome() {
        use crate::vm::{trace, Input, Profile, Program};
        let mut rng = Rng(proptest::test_runner::TestRng::deterministic_rng(
            proptest::test_runner::RngAlgorithm::ChaCha,
        ));
        let (mut spans, mut checks, mut runs) = (0, 0, 0);
        let (mut label_steps, mut msh_label_steps, mut spans_returning) = (0, 0, 0);
        let mut outcomes = Vec::new();
        for _ in 0..3000 {
            let packet: Vec<u8> = (0..rng.below(48)).map(|_| rng.below(256) as u8).collect();
            let raw = idiom_program(&mut rng, &packet);
            let program = Program::new(&raw, Profile::Socket).expect("valid program");
            spans += program.side.spans.len();
            checks += program.side.checks.len();
            let ops =
                |f: fn(&crate::vm::run::Op) -> bool| program.fast.iter().filter(|op| f(op)).count();
            label_steps += ops(|op| matches!(op, crate::vm::run::Op::StepLabel(..)));
            msh_label_steps += ops(|op| matches!(op, crate::vm::run::Op::MshStepLabel(..)));
            spans_returning += program
                .side
                .spans
                .iter()
                .filter(|s| s.next_returns.is_some() || s.fail_returns.is_some())
                .count();
            for variant in 0..8 {
                let mut packet = packet.clone();
                match variant {
                    0 => {}
                    1..=3 if !packet.is_empty() => {
                        let at = rng.below(packet.len() as u64) as usize;
                        packet[at] ^= 1 << rng.below(8);
                    }
                    4 | 5 => packet.truncate(rng.below(packet.len() as u64 + 1) as usize),
                    _ => packet.extend((0..rng.below(8)).map(|_| rng.below(256) as u8)),
                }
                for start in [0, 1] {
                    let input = Input {
                        frame: &packet,
                        start: start.min(packet.len()),
                        net: Some(0),
                        link: Some(0),
                        wire_len: packet.len() as u32,
                        ctx: Default::default(),
                    };
                    let fast = program.run_explained(&input);
                    let steps = trace(&program, &input);
                    assert_eq!(
                        fast,
                        (steps.verdict, steps.exit),
                        "program {raw:?} on packet {packet:?} from {start}"
                    );
                    outcomes.push(fast);
                    runs += 1;
                }
            }
        }
        // The programs did use the superinstructions, and runs ended every way.
        assert!(
            spans > 500
                && checks > 1000
                && label_steps > 600
                && msh_label_steps > 400
                && spans_returning > 150,
            "{spans} spans ({spans_returning} that return), {checks} checks, {label_steps} label \
             steps, {msh_label_steps} after ldx 4*([m]&0xf)"
        );
        let count = |f: &dyn Fn(&(u32, Exit)) -> bool| outcomes.iter().filter(|o| f(o)).count();
        assert!(count(&|(_, e)| matches!(e, Exit::OutOfBounds(_))) > 1000);
        assert!(count(&|(v, _)| *v == 1) > 1000, "every check passed");
        assert!(count(&|(v, _)| *v == 2) > 1000, "a check failed");
        assert!(runs > 40_000);
    }
}
