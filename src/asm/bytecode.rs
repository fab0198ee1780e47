//! Bytecode text -> program, for every bytecode form users paste.
//!
//! Forms, detected from the text:
//! - xt_bpf / tc / `bpf_asm` default: `N,code jt jf k,code jt jf k,...` — read as iptables reads
//!   `--bytecode`: the count first, then comma-separated groups of four numbers; whitespace and
//!   newlines anywhere between numbers are tolerated, so is a trailing comma; the count must equal
//!   the number of groups;
//! - `tcpdump -ddd`: the count on the first line, then `code jt jf k` per line;
//! - C arrays (`bpf_asm -c`, `tcpdump -dd`): `{ code, jt, jf, k },` per instruction, numbers in
//!   decimal or `0x` hex.
//!
//! One pair of quotes around the whole text (`"..."` or `'...'`, as `iptables -S` prints a
//! `--bytecode` value) is not part of it.
//!
//! Every value is range-checked (code <= 65535, jt/jf <= 255, k <= 2^32-1). Instructions are
//! numbered from 0, as in listings.

use thiserror::Error;

use crate::asm::quote;
use crate::insn::RawInsn;

/// Why bytecode text could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BytecodeError {
    /// The text holds no program at all.
    #[error("empty bytecode: expected 'N,code jt jf k,...', tcpdump -ddd or a C array")]
    Empty,
    /// The leading instruction count is not a number.
    #[error("bad instruction count '{token}': expected a decimal number before the first ','")]
    BadCount {
        /// The text found.
        token: String,
    },
    /// The count says 0.
    #[error("instruction count is 0: expected at least 1 instruction")]
    ZeroCount,
    /// The count is followed by no instruction.
    #[error(
        "instruction count {count}, but no instruction follows: expected 'N,code jt jf k,...'"
    )]
    NoInstructions {
        /// The declared count.
        count: usize,
    },
    /// A C-array instruction's `{` is never closed.
    #[error(
        "instruction {index}: '{{ {token}' has no closing '}}': expected '{{ code, jt, jf, k }}'"
    )]
    Unclosed {
        /// Instruction number (from 0).
        index: usize,
        /// The instruction's text after its `{` (shortened).
        token: String,
    },
    /// The count and the instructions disagree.
    #[error("instruction count {count} {relation} the {found} instructions given")]
    CountMismatch {
        /// The declared count.
        count: usize,
        /// How many instructions there are.
        found: usize,
        /// "is less than" or "exceeds".
        relation: &'static str,
    },
    /// An instruction does not have four fields.
    #[error("instruction {index}: '{token}' has {fields} fields, expected 4 (code jt jf k)")]
    FieldCount {
        /// Instruction number (from 0).
        index: usize,
        /// The instruction's text.
        token: String,
        /// Fields found.
        fields: usize,
    },
    /// A field is not a number or is out of range.
    #[error("instruction {index}: bad {field} '{token}': expected {expected}")]
    BadField {
        /// Instruction number (from 0).
        index: usize,
        /// Which field (code, jt, jf, k).
        field: &'static str,
        /// The text found.
        token: String,
        /// What would have been accepted.
        expected: &'static str,
    },
}

const FIELDS: [(&str, u64, &str); 4] = [
    ("code", 0xffff, "a number 0..65535"),
    ("jt", 0xff, "a number 0..255"),
    ("jf", 0xff, "a number 0..255"),
    ("k", 0xffff_ffff, "a number 0..4294967295"),
];

fn parse_number(token: &str, allow_hex: bool) -> Option<u64> {
    let token = token.trim();
    if allow_hex {
        if let Some(hex) = token
            .strip_prefix("0x")
            .or_else(|| token.strip_prefix("0X"))
        {
            return u64::from_str_radix(hex, 16).ok();
        }
    }
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    token.parse().ok()
}

fn parse_fields(
    index: usize,
    text: &str,
    fields: &[&str],
    allow_hex: bool,
) -> Result<RawInsn, BytecodeError> {
    if fields.len() != 4 {
        return Err(BytecodeError::FieldCount {
            index,
            token: quote(text.trim()),
            fields: fields.len(),
        });
    }
    let mut values = [0u64; 4];
    for (slot, (token, (field, max, expected))) in values.iter_mut().zip(fields.iter().zip(FIELDS))
    {
        match parse_number(token, allow_hex) {
            Some(value) if value <= max => *slot = value,
            _ => {
                return Err(BytecodeError::BadField {
                    index,
                    field,
                    token: quote(token.trim()),
                    expected,
                })
            }
        }
    }
    Ok(RawInsn::new(
        values[0] as u16,
        values[1] as u8,
        values[2] as u8,
        values[3] as u32,
    ))
}

fn check_count(count: usize, found: usize) -> Result<(), BytecodeError> {
    if found == 0 {
        return Err(BytecodeError::NoInstructions { count });
    }
    match count.cmp(&found) {
        std::cmp::Ordering::Equal => Ok(()),
        std::cmp::Ordering::Less => Err(BytecodeError::CountMismatch {
            count,
            found,
            relation: "is less than",
        }),
        std::cmp::Ordering::Greater => Err(BytecodeError::CountMismatch {
            count,
            found,
            relation: "exceeds",
        }),
    }
}

fn parse_count(token: &str) -> Result<usize, BytecodeError> {
    let count = parse_number(token, false)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| BytecodeError::BadCount {
            token: quote(token.trim()),
        })?;
    if count == 0 {
        return Err(BytecodeError::ZeroCount);
    }
    Ok(count)
}

fn parse_xt_bpf(text: &str) -> Result<Vec<RawInsn>, BytecodeError> {
    let mut groups = text.split(',');
    let count = parse_count(groups.next().unwrap_or(""))?;
    let mut groups: Vec<&str> = groups.collect();
    if groups.last().is_some_and(|g| g.trim().is_empty()) {
        groups.pop();
    }
    let prog = groups
        .iter()
        .enumerate()
        .map(|(index, group)| {
            let fields: Vec<&str> = group.split_whitespace().collect();
            parse_fields(index, group, &fields, false)
        })
        .collect::<Result<Vec<_>, _>>()?;
    check_count(count, prog.len())?;
    Ok(prog)
}

fn parse_ddd(text: &str) -> Result<Vec<RawInsn>, BytecodeError> {
    let mut lines = text.lines().filter(|line| !line.trim().is_empty());
    let count = parse_count(lines.next().unwrap_or(""))?;
    let prog = lines
        .enumerate()
        .map(|(index, line)| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            parse_fields(index, line, &fields, false)
        })
        .collect::<Result<Vec<_>, _>>()?;
    check_count(count, prog.len())?;
    Ok(prog)
}

fn parse_c_array(text: &str) -> Result<Vec<RawInsn>, BytecodeError> {
    let mut prog = Vec::new();
    // A whole declaration (`struct sock_filter code[] = { {...}, ... };`): read what is between
    // its outer braces.
    let mut rest = match text.find('{') {
        Some(open) if text[open + 1..].trim_start().starts_with('{') => {
            let inner = &text[open + 1..];
            &inner[..inner.rfind('}').unwrap_or(inner.len())]
        }
        _ => text,
    };
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let index = prog.len();
        let close = after.find('}').ok_or_else(|| BytecodeError::Unclosed {
            index,
            token: quote(after.trim()),
        })?;
        let body = &after[..close];
        let fields: Vec<&str> = body.split(',').collect();
        prog.push(parse_fields(index, body, &fields, true)?);
        rest = &after[close + 1..];
    }
    if prog.is_empty() {
        return Err(BytecodeError::Empty);
    }
    Ok(prog)
}

/// The text inside one pair of matching quotes around it, as `iptables -S` prints a
/// `--bytecode` value (`"19,177 0 0 0,..."`), pasted with them; else the text itself.
fn without_quotes(text: &str) -> &str {
    for quote_char in ['"', '\''] {
        if let Some(inner) = text
            .strip_prefix(quote_char)
            .and_then(|rest| rest.strip_suffix(quote_char))
        {
            return inner.trim();
        }
    }
    text
}

/// Reads a program in any bytecode text form (see the module docs).
pub fn parse_bytecode(text: &str) -> Result<Vec<RawInsn>, BytecodeError> {
    let trimmed = without_quotes(text.trim());
    if trimmed.is_empty() {
        return Err(BytecodeError::Empty);
    }
    if trimmed.contains('{') {
        return parse_c_array(trimmed);
    }
    let first_line = trimmed.lines().next().unwrap_or("");
    if first_line.contains(',') {
        parse_xt_bpf(trimmed)
    } else {
        parse_ddd(trimmed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_whole_c_declaration() {
        let want = vec![RawInsn::new(0x28, 0, 0, 12), RawInsn::new(6, 0, 0, 0)];
        let text = "struct sock_filter code[] = {\n\t{ 0x28, 0, 0, 0x0000000c },\n\t{ 0x06, 0, 0, 0x00000000 },\n};\n";
        assert_eq!(parse_bytecode(text).unwrap(), want);
        assert_eq!(
            parse_bytecode("{ 0x28, 0, 0, 12 },\n{ 0x6, 0, 0, 0 },").unwrap(),
            want
        );
    }

    #[test]
    fn reads_bytecode_pasted_with_the_quotes_of_iptables_s() {
        let bare = parse_bytecode("2,40 0 0 12,6 0 0 65535").unwrap();
        for pasted in [
            "\"2,40 0 0 12,6 0 0 65535\"",
            "'2,40 0 0 12,6 0 0 65535,'",
            " \"2,40 0 0 12,6 0 0 65535\"\n",
        ] {
            assert_eq!(parse_bytecode(pasted), Ok(bare.clone()), "{pasted}");
        }
        assert!(parse_bytecode("\"2,40 0 0 12,6 0 0 65535").is_err());
    }

    #[test]
    fn reads_xt_bpf_with_whitespace_and_trailing_comma() {
        let want = vec![RawInsn::new(40, 0, 0, 12), RawInsn::new(6, 0, 0, 0)];
        assert_eq!(parse_bytecode("2,40 0 0 12,6 0 0 0,\n").unwrap(), want);
        assert_eq!(parse_bytecode("2,40 0 0 12,6 0 0 0").unwrap(), want);
        assert_eq!(
            parse_bytecode(" 2,\n40  0 0\t12 ,\n 6 0 0 0 ,").unwrap(),
            want
        );
    }

    #[test]
    fn count_must_match() {
        assert_eq!(
            parse_bytecode("3,40 0 0 12,6 0 0 0,")
                .unwrap_err()
                .to_string(),
            "instruction count 3 exceeds the 2 instructions given"
        );
        assert_eq!(
            parse_bytecode("1,40 0 0 12,6 0 0 0,")
                .unwrap_err()
                .to_string(),
            "instruction count 1 is less than the 2 instructions given"
        );
        assert_eq!(parse_bytecode("0,").unwrap_err(), BytecodeError::ZeroCount);
    }

    #[test]
    fn fields_are_range_checked() {
        assert_eq!(
            parse_bytecode("1,65536 0 0 0,").unwrap_err().to_string(),
            "instruction 0: bad code '65536': expected a number 0..65535"
        );
        assert_eq!(
            parse_bytecode("2,6 0 0 0,6 0 256 0")
                .unwrap_err()
                .to_string(),
            "instruction 1: bad jf '256': expected a number 0..255"
        );
        assert!(parse_bytecode("1,6 0 0 4294967296").is_err());
        assert!(parse_bytecode("1,6 0 0 -1").is_err());
        assert_eq!(
            parse_bytecode("1,6 0 0,").unwrap_err().to_string(),
            "instruction 0: '6 0 0' has 3 fields, expected 4 (code jt jf k)"
        );
    }

    #[test]
    fn reads_ddd_and_c_arrays() {
        let want = vec![RawInsn::new(40, 0, 0, 12), RawInsn::new(21, 0, 1, 2048)];
        assert_eq!(parse_bytecode("2\n40 0 0 12\n21 0 1 2048\n").unwrap(), want);
        assert_eq!(
            parse_bytecode("{ 0x28, 0, 0, 0x0000000c },\n{ 0x15, 0, 1, 0x00000800 },\n").unwrap(),
            want
        );
        assert_eq!(
            parse_bytecode("{ 0000,  0,  0, 0000000000 },").unwrap(),
            vec![RawInsn::new(0, 0, 0, 0)]
        );
        assert!(parse_bytecode("3\n40 0 0 12\n").is_err());
    }

    #[test]
    fn messages_say_what_is_wrong_and_quote_little() {
        assert_eq!(
            parse_bytecode("{ 0x28, 0, 0, 12 }, { 0x6, 0, 0, 0")
                .unwrap_err()
                .to_string(),
            "instruction 1: '{ 0x6, 0, 0, 0' has no closing '}': expected '{ code, jt, jf, k }'"
        );
        assert_eq!(
            parse_bytecode("1,").unwrap_err().to_string(),
            "instruction count 1, but no instruction follows: expected 'N,code jt jf k,...'"
        );
        let long = "9".repeat(301);
        for text in [format!("1,6 0 0 {long}"), format!("{long},6 0 0 0")] {
            let message = parse_bytecode(&text).unwrap_err().to_string();
            assert!(message.len() < 150, "{message}");
            assert!(
                message.contains(&format!("'{}...'", &long[..40])),
                "{message}"
            );
        }
    }
}
