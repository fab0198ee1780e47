//! The `dns` generator: DNS queries whose first question name matches one of the patterns.
//!
//! Pattern language (one pattern = one DNS name, labels separated by `.`):
//! - a literal label matches itself, byte for byte (case-sensitive unless `-i`);
//! - `*` as a whole label matches any one label (1 to 63 characters: never the empty root
//!   label that ends the name, never a compression pointer);
//! - `*{m-n}` as a whole label matches one label of m..=n characters; labels are never empty,
//!   so `*{0-n}` is `*{1-n}` (and `*{0-0}` is refused: it could never match), and never longer
//!   than 63, so a maximum above 63 (`*{4-255}`, the original bpftools' own example) means
//!   "up to the longest label";
//! - `?` matches any one character inside a label;
//! - `**` as the last label matches any suffix (`example.**` matches example.com and
//!   example.co.uk, not www.example.com);
//! - `*` inside a label (`foo*`) is a literal `*`;
//! - `%XX` is the byte with hex value XX (`ex%2Eample` is the single label `ex.ample`);
//! - leading and trailing dots are ignored;
//! - anything else (spaces, commas, quotes, `/`, `:`, non-ASCII letters...) is refused: a
//!   pattern is one name, written as it would be typed in a zone file; a byte that really is
//!   in a name is written `%XX`.
//!
//! Names are compared on the wire (length-prefixed labels), in the first question only, four
//! bytes at a time. With `-i`, letters match in either case (ASCII only).
//!
//! The programs expect UDP, as the rules that carry them say (`-p udp --dport 53`): on IPv6
//! the header walk refuses any other next header; on IPv4 the protocol and fragment fields
//! are not read (that would make programs longer than the original's), so an IPv4 packet that
//! is not UDP, or a later fragment, is compared as if it were.
//!
//! Errors: an empty label, a label over 63 bytes, a name over 255 bytes on the wire, `*{m-n}`
//! with m > n, m > 63 or n = 0 (no label fits), a bad percent escape, `**` not last, no
//! pattern, a character that is not in names (with a hint for lists, URLs and quotes). Errors
//! quote at most 40 characters of the pattern ([`crate::asm::quote`]).

use std::fmt::Write;

use thiserror::Error;

use crate::asm::labels::Target;
use crate::asm::quote;
use crate::dns::field;
use crate::gen::builder::Builder;
use crate::gen::GenOptions;
use crate::insn::{AluOp, Insn, JumpCond, Operand, Size};

/// Why a pattern is not valid.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("pattern '{}': {message}", quote(pattern))]
pub struct PatternError {
    /// The pattern as given.
    pub pattern: String,
    /// What is wrong and what was expected.
    pub message: String,
}

/// One byte to compare: the packet byte, OR-ed with `mask`, must equal `value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaskedByte {
    /// Expected value (with the mask bits set).
    pub value: u8,
    /// Bits that do not matter (0x20 for letters under `-i`, 0xff for `?`).
    pub mask: u8,
}

/// The length bounds of a `*{m-n}` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Fewest characters (1 to 63: `*{0-n}` is `*{1-n}`).
    pub min: u8,
    /// Most characters (`min` to 63).
    pub max: u8,
    /// The maximum as written (above 63 it means 63, the longest label).
    pub written_max: u32,
}

/// The longest label (RFC 1035): 63 bytes.
pub const MAX_LABEL: u8 = 63;

/// One label of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// A literal label (its characters, without the length byte).
    Literal(Vec<MaskedByte>),
    /// Any one label; with bounds, of `min..=max` characters.
    Any(Option<Bounds>),
    /// Any suffix (`**` as the last label).
    AnySuffix,
}

/// A parsed pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    /// The pattern as given.
    pub text: String,
    /// Its labels.
    pub parts: Vec<Part>,
}

fn pattern_error(pattern: &str, message: impl Into<String>) -> PatternError {
    PatternError {
        pattern: pattern.to_string(),
        message: message.into(),
    }
}

fn parse_bounds(pattern: &str, label: &str) -> Result<Bounds, PatternError> {
    let inner = &label[2..label.len() - 1];
    let fail = |message: String| {
        pattern_error(pattern, format!("bad label '{}': {message}", quote(label)))
    };
    let number = |text: &str| {
        let text = text.trim();
        (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
            .then(|| text.parse::<u32>().ok())
            .flatten()
    };
    let (min, max) = inner
        .split_once('-')
        .and_then(|(min, max)| Some((number(min)?, number(max)?)))
        .ok_or_else(|| {
            fail("expected '*{m-n}': a label of m to n characters (m <= n, numbers)".into())
        })?;
    if min > max {
        return Err(fail(format!(
            "the minimum {min} is above the maximum {max}: expected m <= n"
        )));
    }
    if max == 0 {
        return Err(fail(
            "no label fits: a label is never empty (expected a maximum of 1 or more)".into(),
        ));
    }
    if min > u32::from(MAX_LABEL) {
        return Err(fail(format!(
            "no label fits: a label is at most {MAX_LABEL} characters (expected a minimum of {MAX_LABEL} or less)"
        )));
    }
    Ok(Bounds {
        min: (min as u8).max(1),
        max: max.min(u32::from(MAX_LABEL)) as u8,
        written_max: max,
    })
}

fn literal(pattern: &str, label: &str, ignore_case: bool) -> Result<Vec<MaskedByte>, PatternError> {
    let bytes = label.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        let (value, any) = match byte {
            b'%' => {
                let escape = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                let value = escape
                    .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| {
                        let found: String = label[i..].chars().take(3).collect();
                        pattern_error(
                            pattern,
                            format!("bad escape '{found}' in label '{}': expected '%' and two hex digits", quote(label)),
                        )
                    })?;
                i += 3;
                (value, false)
            }
            b'?' => {
                i += 1;
                (0xff, true)
            }
            other if other.is_ascii_alphanumeric() || matches!(other, b'-' | b'_' | b'*') => {
                i += 1;
                (other, false)
            }
            _ => return Err(not_a_name_character(pattern, label, i)),
        };
        out.push(if any {
            MaskedByte {
                value: 0xff,
                mask: 0xff,
            }
        } else if ignore_case && value.is_ascii_alphabetic() {
            MaskedByte {
                value: value.to_ascii_lowercase() | 0x20,
                mask: 0x20,
            }
        } else {
            MaskedByte { value, mask: 0 }
        });
    }
    if out.len() > 63 {
        return Err(pattern_error(
            pattern,
            format!(
                "label '{}' is {} bytes long, expected at most 63",
                quote(label),
                out.len()
            ),
        ));
    }
    Ok(out)
}

/// The error for the character at byte `at` of `label`, which cannot be written bare in a
/// name: the usual ways a pattern that is not a name is given get a hint of their own.
fn not_a_name_character(pattern: &str, label: &str, at: usize) -> PatternError {
    let found = label[at..].chars().next().unwrap_or('?');
    let shown = if found.is_ascii_graphic() || found == ' ' {
        found.to_string()
    } else {
        found.escape_default().to_string()
    };
    let hint = if pattern.contains("://") || found == '/' || found == ':' {
        "a URL or a path is not a name: give the host name alone (e.g. 'www.example.net')"
            .to_string()
    } else if matches!(found, '"' | '\'' | '`') {
        "quotes are not part of a name: the shell already removed its own, remove these".to_string()
    } else if found == '{' || found == '}' {
        "a length-bounded wildcard is a whole label: '*{m-n}' (e.g. '*{3-10}.example.com')"
            .to_string()
    } else if found == ',' || found.is_whitespace() {
        "one name per pattern: give each as an argument of its own (e.g. 'a.example.net' 'b.example.org')".to_string()
    } else {
        let mut utf8 = [0; 4];
        let escaped: String = found
            .encode_utf8(&mut utf8)
            .bytes()
            .map(|b| format!("%{b:02X}"))
            .collect();
        format!(
            "a name's labels are letters, digits, '-' and '_' (with '*' and '?' as wildcards): write a byte that really is in the name as %XX ({escaped})"
        )
    };
    pattern_error(
        pattern,
        format!(
            "'{shown}' cannot be in a name (label '{}'): {hint}",
            quote(label)
        ),
    )
}

/// True when `pattern` has an upper-case ASCII letter outside `%XX` escapes (an escape names
/// the exact byte wanted).
pub fn has_upper_case(pattern: &str) -> bool {
    let bytes = pattern.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => i += 3,
            b if b.is_ascii_uppercase() => return true,
            _ => i += 1,
        }
    }
    false
}

/// Parses one pattern (see the module docs).
pub fn parse_pattern(text: &str, ignore_case: bool) -> Result<Pattern, PatternError> {
    let trimmed = text.trim_matches('.');
    if trimmed.is_empty() {
        return Err(pattern_error(
            text,
            "empty name: expected at least one label",
        ));
    }
    let labels: Vec<&str> = trimmed.split('.').collect();
    let mut parts = Vec::new();
    for (index, label) in labels.iter().enumerate() {
        let part = match *label {
            "" => {
                return Err(pattern_error(
                    text,
                    "empty label (two dots in a row): expected a label between dots",
                ))
            }
            "*" => Part::Any(None),
            "**" if index + 1 == labels.len() => Part::AnySuffix,
            "**" => {
                return Err(pattern_error(
                    text,
                    "'**' must be the last label: it matches any suffix",
                ));
            }
            l if l.starts_with("*{") && l.ends_with('}') => Part::Any(Some(parse_bounds(text, l)?)),
            l => Part::Literal(literal(text, l, ignore_case)?),
        };
        parts.push(part);
    }
    // Length on the wire: length bytes, literal bytes, the shortest wildcard labels, the root.
    let wire: usize = parts
        .iter()
        .map(|p| match p {
            Part::Literal(bytes) => 1 + bytes.len(),
            Part::Any(bounds) => 1 + bounds.map_or(1, |b| usize::from(b.min)),
            Part::AnySuffix => 0,
        })
        .sum::<usize>()
        + 1;
    if wire > 255 {
        return Err(pattern_error(
            text,
            format!("name is {wire} bytes on the wire, expected at most 255"),
        ));
    }
    Ok(Pattern {
        text: text.to_string(),
        parts,
    })
}

/// The literal byte runs of a pattern, split at wildcards.
enum Segment {
    Bytes(Vec<MaskedByte>),
    Skip(Option<Bounds>),
    AnySuffix,
}

fn segments(pattern: &Pattern) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut run: Vec<MaskedByte> = Vec::new();
    for part in &pattern.parts {
        match part {
            Part::Literal(bytes) => {
                run.push(MaskedByte {
                    value: bytes.len() as u8,
                    mask: 0,
                });
                run.extend(bytes);
            }
            Part::Any(bounds) => {
                if !run.is_empty() {
                    out.push(Segment::Bytes(std::mem::take(&mut run)));
                }
                out.push(Segment::Skip(*bounds));
            }
            Part::AnySuffix => {
                if !run.is_empty() {
                    out.push(Segment::Bytes(std::mem::take(&mut run)));
                }
                out.push(Segment::AnySuffix);
                return out;
            }
        }
    }
    run.push(MaskedByte { value: 0, mask: 0 });
    out.push(Segment::Bytes(run));
    out
}

fn show_bytes(bytes: &[MaskedByte]) -> String {
    let mut text = String::new();
    for b in bytes {
        if b.mask == 0xff {
            text.push('?');
        } else if b.value.is_ascii_graphic() && b.value != b'\\' {
            text.push(char::from(b.value));
        } else {
            let _ = write!(text, "\\x{:02x}", b.value);
        }
    }
    text
}

/// Emits comparisons of `bytes` at `[x + offset]`, 4, 2, then 1 byte at a time; jumps to
/// `fail` on the first difference.
pub(crate) fn compare_bytes(b: &mut Builder, bytes: &[MaskedByte], mut offset: u32, fail: &str) {
    let mut rest = bytes;
    while !rest.is_empty() {
        let (size, width) = match rest.len() {
            4.. => (Size::Word, 4),
            2..=3 => (Size::Half, 2),
            _ => (Size::Byte, 1),
        };
        let (chunk, tail) = rest.split_at(width);
        let value = chunk
            .iter()
            .fold(0u32, |acc, b| (acc << 8) | u32::from(b.value | b.mask));
        let mask = chunk
            .iter()
            .fold(0u32, |acc, b| (acc << 8) | u32::from(b.mask));
        b.insn(Insn::LoadInd { size, offset });
        if mask != 0 {
            b.insn(Insn::Alu {
                op: AluOp::Or,
                operand: Operand::K(mask),
            });
        }
        b.jump_unless_eq(value, fail);
        offset += width as u32;
        rest = tail;
    }
}

/// Emits the match of one pattern, with the name's first byte at `[x + start]`; jumps to
/// `fail` when it does not match, returns `verdict` when it does.
fn emit_pattern(b: &mut Builder, pattern: &Pattern, start: u32, fail: &str, verdict: u32) {
    // The name's next byte is at [x + offset]: constant steps are folded into load offsets.
    let mut offset = start;
    for segment in segments(pattern) {
        match segment {
            Segment::Bytes(bytes) => {
                b.comment(format!("match '{}'", show_bytes(&bytes)));
                compare_bytes(b, &bytes, offset, fail);
                offset += bytes.len() as u32;
            }
            Segment::Skip(bounds) => {
                // A label is 1 to 63 bytes: a length of 0 is the end of the name, 64 and more
                // are compression pointers or garbage.
                let (min, max) = bounds.map_or((1, MAX_LABEL), |b| (b.min, b.max));
                let capped = bounds.is_some_and(|bounds| bounds.written_max > u32::from(MAX_LABEL));
                b.comment(if capped {
                    format!(
                        "skip one label of {min} to {max} characters (a maximum above {MAX_LABEL} means {MAX_LABEL}, the longest label)"
                    )
                } else {
                    format!("skip one label of {min} to {max} characters")
                });
                b.insn(Insn::LoadInd {
                    size: Size::Byte,
                    offset,
                });
                if min == max {
                    b.jump_unless_eq(u32::from(min), fail);
                } else {
                    if min == 1 {
                        b.jump(
                            JumpCond::Eq,
                            Operand::K(0),
                            Target::Label(fail.to_string()),
                            Target::Next,
                        );
                    } else {
                        b.jump(
                            JumpCond::Ge,
                            Operand::K(u32::from(min)),
                            Target::Next,
                            Target::Label(fail.to_string()),
                        );
                    }
                    b.jump(
                        JumpCond::Gt,
                        Operand::K(u32::from(max)),
                        Target::Label(fail.to_string()),
                        Target::Next,
                    );
                }
                b.insn(Insn::Alu {
                    op: AluOp::Add,
                    operand: Operand::X,
                });
                b.insn(Insn::Alu {
                    op: AluOp::Add,
                    operand: Operand::K(offset + 1),
                });
                b.insn(Insn::Tax);
                offset = 0;
            }
            Segment::AnySuffix => b.comment("any suffix"),
        }
    }
    b.insn(Insn::RetK(verdict));
}

/// The UDP header's length: DNS messages start this many bytes after it.
pub const UDP_LEN: u32 = etherparse::UdpHeader::LEN as u32;

/// IPv6 extension headers skipped before UDP (hop-by-hop, routing, fragment with offset 0,
/// destination options) by default. Each one the walk can skip costs 16 instructions; the
/// generators' `--ext-headers N` chooses 0 to 3.
pub const IPV6_EXTENSION_HEADERS: usize = 2;

/// Emits code that sets X so that `[x + k]`, with the returned `k`, addresses the byte `base`
/// bytes after the UDP header: on IPv4 X is the header length (any IHL) and `k` is
/// `offset + base`; on IPv6 X is the UDP header's offset after the fixed header and up to
/// `ext_headers` extension headers, and `k` is `base`. On IPv6, a next header other than UDP
/// and a non-first fragment jump to `fail`; an extension header still there after the walk
/// jumps to `unwalked` when given (else to `fail`).
pub(crate) fn emit_udp_offset(
    b: &mut Builder,
    opts: &GenOptions,
    ext_headers: usize,
    base: u32,
    fail: &str,
    unwalked: Option<&str>,
) -> u32 {
    let off = opts.offset;
    if !opts.inet6 {
        b.comment(format!(
            "x = IPv4 header length: [x + {}] is the UDP header + {base}",
            off + base
        ));
        b.insn(Insn::LoadXMsh(off));
        return off + base;
    }
    b.comment(format!(
        "IPv6: skip up to {ext_headers} extension headers (hop-by-hop, routing, destination options, first fragment)"
    ));
    b.insn(Insn::LoadAbs {
        size: Size::Byte,
        offset: off + 6,
    });
    b.insn(Insn::LoadXImm(off + 40));
    let udp = b.new_label("udp");
    for _ in 0..ext_headers {
        let frag = b.new_label("fragment");
        let opt = b.new_label("options");
        let step = b.new_label("next_header");
        let label = |l: &str| Target::Label(l.to_string());
        b.jump(JumpCond::Eq, Operand::K(17), label(&udp), Target::Next);
        b.jump(JumpCond::Eq, Operand::K(44), label(&frag), Target::Next);
        b.jump(JumpCond::Eq, Operand::K(0), label(&opt), Target::Next);
        b.jump(JumpCond::Eq, Operand::K(43), label(&opt), Target::Next);
        b.jump(JumpCond::Eq, Operand::K(60), label(&opt), label(fail));
        b.label(&frag);
        b.comment("fragment header: only the first fragment carries the query");
        b.insn(Insn::LoadInd {
            size: Size::Half,
            offset: 2,
        });
        b.jump(JumpCond::Set, Operand::K(0xfff8), label(fail), Target::Next);
        b.insn(Insn::LoadImm(8));
        b.ja(&step);
        b.label(&opt);
        b.insn(Insn::LoadInd {
            size: Size::Byte,
            offset: 1,
        });
        b.insn(Insn::Alu {
            op: AluOp::Lsh,
            operand: Operand::K(3),
        });
        b.insn(Insn::Alu {
            op: AluOp::Add,
            operand: Operand::K(8),
        });
        b.label(&step);
        b.insn(Insn::Alu {
            op: AluOp::Add,
            operand: Operand::X,
        });
        b.insn(Insn::Store(1));
        b.insn(Insn::LoadInd {
            size: Size::Byte,
            offset: 0,
        });
        b.insn(Insn::LoadXMem(1));
    }
    if let Some(unwalked) = unwalked {
        b.comment("more extension headers than the walk skips: matched (they cannot hide a query)");
        let label = |l: &str| Target::Label(l.to_string());
        b.jump(JumpCond::Eq, Operand::K(17), label(&udp), Target::Next);
        for header in [0, 43, 44] {
            b.jump(
                JumpCond::Eq,
                Operand::K(header),
                label(unwalked),
                Target::Next,
            );
        }
        b.jump(JumpCond::Eq, Operand::K(60), label(unwalked), label(fail));
    } else {
        b.comment("only UDP carries the queries these programs match");
        b.jump(
            JumpCond::Eq,
            Operand::K(17),
            Target::Label(udp.clone()),
            Target::Label(fail.to_string()),
        );
    }
    b.label(&udp);
    b.comment(format!(
        "x = offset of the UDP header: [x + {base}] is the UDP header + {base}"
    ));
    base
}

/// Builds the program for `patterns` (at least one). On IPv6 with `unwalked_match`, a query
/// behind more extension headers than `ext_headers` gets the verdict 65535 (the rule's
/// target applies, with or without negation).
pub fn build(
    patterns: &[Pattern],
    opts: &GenOptions,
    ext_headers: usize,
    unwalked_match: bool,
    b: &mut Builder,
) {
    let (yes, no) = if opts.negate { (0, 65535) } else { (65535, 0) };
    let nomatch = b.new_label("nomatch");
    let unwalked = (opts.inet6 && unwalked_match).then(|| b.new_label("unwalked"));
    b.context("dns prologue");
    let start = emit_udp_offset(
        b,
        opts,
        ext_headers,
        UDP_LEN + field::QUESTIONS as u32,
        &nomatch,
        unwalked.as_deref(),
    );
    b.comment(format!("[x + {start}] = the first question's name"));
    if patterns.len() > 1 {
        b.insn(Insn::StoreX(0));
    }
    for (index, pattern) in patterns.iter().enumerate() {
        b.context(format!("pattern '{}'", pattern.text));
        let last = index + 1 == patterns.len();
        let fail = if last {
            nomatch.clone()
        } else {
            b.new_label("try")
        };
        b.comment(format!("pattern '{}'", pattern.text));
        if index > 0 {
            b.insn(Insn::LoadXMem(0));
        }
        emit_pattern(b, pattern, start, &fail, yes);
        if !last {
            b.label(&fail);
        }
    }
    b.label(&nomatch);
    b.insn(Insn::RetK(no));
    if let Some(unwalked) = unwalked {
        b.label(&unwalked);
        b.insn(Insn::RetK(65535));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(pattern: &str) -> String {
        parse_pattern(pattern, false)
            .expect_err(pattern)
            .to_string()
    }

    #[test]
    fn patterns_that_are_not_names_are_refused() {
        let list = refused("*.www.example.net,*.example.org");
        assert!(list.contains("',' cannot be in a name"), "{list}");
        assert!(list.contains("one name per pattern"), "{list}");
        let spaced = refused("www.example.net example.org");
        assert!(spaced.contains("one name per pattern"), "{spaced}");
        let url = refused("http://www.example.net/");
        assert!(url.contains("a URL or a path is not a name"), "{url}");
        for quoted_name in ["\"www.example.net\"", "'www.example.net'"] {
            let message = refused(quoted_name);
            assert!(
                message.contains("quotes are not part of a name"),
                "{message}"
            );
        }
        let bounds = refused("*{3-5.example.net");
        assert!(bounds.contains("'*{m-n}'"), "{bounds}");
        let accent = refused("caf\u{e9}.example");
        assert!(accent.contains("%C3%A9"), "{accent}");
    }

    #[test]
    fn names_and_escapes_still_parse() {
        for pattern in [
            "*.www.example.net",
            "ex%2Eample.net",
            "ex%20ample.net",
            "foo*.example.net",
            "ex?mple.net",
            "_dmarc.example-1.net",
            "*{8-16}.example.net",
            "example.**",
            ".example.org.",
        ] {
            assert!(parse_pattern(pattern, true).is_ok(), "{pattern}");
        }
    }

    #[test]
    fn errors_quote_a_long_pattern_cut() {
        let long = format!("{}.example,net", "a".repeat(10_000_000));
        let message = refused(&long);
        assert!(message.len() < 400, "{} bytes", message.len());
        assert!(message.contains("..."), "{message}");
    }
}
