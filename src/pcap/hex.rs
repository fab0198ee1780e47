//! Packets as hex text: the one hex decoder and encoder of the tools, and the line formats
//! they read.
//!
//! Rules of the decoder ([`decode_into`]): hex digits of either case, two per byte; blanks
//! (space, tab, CR, LF) and colons may appear anywhere between digits and are ignored; any
//! other character is an error naming its byte offset; an odd number of digits is an error.
//! Decoding is table-driven and runs without allocating beyond the output.
//!
//! Line format ([`parse_line`]), as `pcap2hex` prints it and `hex2pcap`/`parsedns` read it:
//! - blank lines and lines whose first non-blank character is `#` or `;` carry no packet;
//! - anything after the first tab (`pcap2hex --ascii`'s text column) is ignored;
//! - an optional timestamp column comes first: `SECONDS.FRACTION` (1 to 9 fraction digits)
//!   followed by a blank, as `pcap2hex --timestamps` prints it. A packet's hex never holds a
//!   `.`, so the column is recognised without an option.
//!
//! Telling hex lines from a capture ([`sniff`]): by the first bytes of the stream, the one
//! routine of every tool that reads either.
//!
//! Offset-column hexdumps ([`parse_offset_line`]), as `od -Ax -tx1`, `hexdump -C` and
//! text2pcap's input: a hex offset of 4 or more digits, then bytes as 2-digit tokens; the
//! first token that is not a byte ends the bytes (an ASCII column).

use std::io::{self, Read};
use std::time::Duration;

use thiserror::Error;

/// The largest packet the tools read or write: libpcap's largest snapshot length, the largest
/// record tcpdump accepts in a pcap file (for the link types used here).
pub const MAX_PACKET: usize = 262_144;

/// The longest text line read: the hex of a [`MAX_PACKET`]-byte packet with a separator
/// after every byte (3 characters per byte), its ASCII column (1 per byte), and a timestamp
/// column (64 more) fit in it.
pub const MAX_LINE: usize = 4 * MAX_PACKET + 64;

/// A decoding error.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HexError {
    /// A character that is neither a hex digit nor a separator.
    #[error("column {}: '{}' is not a hex digit", .offset + 1, .found.escape_debug())]
    BadDigit {
        /// Byte offset of the character in the decoded text.
        offset: usize,
        /// Hex digits before it.
        digit: usize,
        /// The character (U+FFFD when the text is not UTF-8 there).
        found: char,
    },
    /// An odd number of hex digits.
    #[error("{digits} hex digits: expected an even number (two per byte)")]
    OddDigits {
        /// How many digits there were.
        digits: usize,
    },
}

impl HexError {
    /// This error of decoding `hex`, the packet part of a line that starts at byte `column`
    /// of the line (as [`parse_line`] gives them), told by the line's column.
    pub fn in_line(self, hex: &[u8], column: usize) -> LineHexError {
        match self {
            HexError::BadDigit { offset, found, .. } => LineHexError::BadDigit {
                column: column + offset + 1,
                found,
                byte: hex[offset],
            },
            other => LineHexError::Digits(other),
        }
    }

    /// This error of decoding a whole packet given as hex (a command-line argument).
    pub fn in_packet(self) -> PacketHexError {
        PacketHexError(self)
    }
}

/// A decoding error in a line of hex text (see [`HexError::in_line`]).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LineHexError {
    /// A character that is neither a hex digit nor a separator. It is shown as the byte
    /// itself when it is not ASCII: in binary input or another encoding the byte says more
    /// than the character it may start.
    #[error("column {column}: {} is not a hex digit", shown_character(*.found, *.byte))]
    BadDigit {
        /// Its column in the line, from 1.
        column: usize,
        /// The character (U+FFFD when the text is not UTF-8 there).
        found: char,
        /// The byte it starts with.
        byte: u8,
    },
    /// Any other error: the decoder's own message says it.
    #[error(transparent)]
    Digits(HexError),
}

fn shown_character(found: char, byte: u8) -> String {
    if byte.is_ascii() {
        format!("'{}'", found.escape_debug())
    } else {
        format!("byte {byte:#04x}")
    }
}

/// A decoding error of a packet given whole as hex, told by digit (see [`decode_packet`]).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("bad packet hex: {}", packet_message(&.0))]
pub struct PacketHexError(pub HexError);

fn packet_message(error: &HexError) -> String {
    match error {
        HexError::BadDigit { digit, found, .. } => {
            format!("'{found}' at digit {digit} is not a hex digit")
        }
        HexError::OddDigits { digits } => {
            format!("{digits} digits, expected an even number (two per byte)")
        }
    }
}

const SEPARATOR: u8 = 0x10;
const INVALID: u8 = 0xff;

/// Value of each byte as a hex digit, [`SEPARATOR`] for blanks and colons, else [`INVALID`].
static TABLE: [u8; 256] = {
    let mut table = [INVALID; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        table[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table[b' ' as usize] = SEPARATOR;
    table[b'\t' as usize] = SEPARATOR;
    table[b'\r' as usize] = SEPARATOR;
    table[b'\n' as usize] = SEPARATOR;
    table[b':' as usize] = SEPARATOR;
    table
};

/// The character starting at `offset` of `text`, for messages.
fn char_at(text: &[u8], offset: usize) -> char {
    let tail = &text[offset..text.len().min(offset + 4)];
    let valid = match std::str::from_utf8(tail) {
        Ok(s) => s,
        Err(e) => std::str::from_utf8(&tail[..e.valid_up_to()]).unwrap_or(""),
    };
    valid.chars().next().unwrap_or(char::REPLACEMENT_CHARACTER)
}

/// Decodes 32 digits (no separator) into 16 bytes; false if any is not a hex digit. Written
/// without table lookups or early exits so that the compiler turns it into vector code.
fn decode_block(src: &[u8], dst: &mut [u8]) -> bool {
    let mut values = [0u8; 32];
    let mut bad = 0u8;
    for (value, &c) in values.iter_mut().zip(src) {
        let digit = c.wrapping_sub(b'0') < 10;
        let letter = (c | 0x20).wrapping_sub(b'a') < 6;
        bad |= u8::from(!(digit | letter));
        // '0'-'9' are 0x30-0x39, 'a'-'f'/'A'-'F' are 0x61-0x66/0x41-0x46: the low nibble,
        // plus 9 for letters (bit 6 set).
        *value = (c & 0xf) + ((c >> 6) & 1) * 9;
    }
    if bad != 0 {
        return false;
    }
    for (byte, pair) in dst.iter_mut().zip(values.chunks_exact(2)) {
        *byte = pair[0] << 4 | pair[1];
    }
    true
}

/// Decodes `text` (see the module rules) and appends the bytes to `out`. On error, `out` may
/// hold part of the bytes.
pub fn decode_into(text: &[u8], out: &mut Vec<u8>) -> Result<(), HexError> {
    let start = out.len();
    // Fast path: runs of digits with no separator, written into room made in advance; 32
    // digits at a time, then pairs.
    out.resize(start + text.len() / 2, 0);
    let mut done = 0;
    for (src, dst) in text.chunks_exact(32).zip(out[start..].chunks_exact_mut(16)) {
        if !decode_block(src, dst) {
            break;
        }
        done += 16;
    }
    for (pair, byte) in text[done * 2..]
        .chunks_exact(2)
        .zip(out[start + done..].iter_mut())
    {
        let (high, low) = (TABLE[usize::from(pair[0])], TABLE[usize::from(pair[1])]);
        if (high | low) & 0xf0 != 0 {
            break;
        }
        *byte = high << 4 | low;
        done += 1;
    }
    out.truncate(start + done);
    // The rest (separators, errors), digit by digit.
    let mut digits = done * 2;
    let mut pending: Option<u8> = None;
    for (offset, &c) in text.iter().enumerate().skip(done * 2) {
        match TABLE[usize::from(c)] {
            SEPARATOR => {}
            INVALID => {
                return Err(HexError::BadDigit {
                    offset,
                    digit: digits,
                    found: char_at(text, offset),
                })
            }
            value => {
                digits += 1;
                match pending.take() {
                    Some(high) => out.push(high << 4 | value),
                    None => pending = Some(value),
                }
            }
        }
    }
    if pending.is_some() {
        return Err(HexError::OddDigits { digits });
    }
    Ok(())
}

/// The first `needle` in `haystack`, 32 bytes at a time (vector code) before the exact place.
pub fn find_byte(haystack: &[u8], needle: u8) -> Option<usize> {
    let mut base = 0;
    for chunk in haystack.chunks(32) {
        if chunk.iter().fold(false, |seen, &c| seen | (c == needle)) {
            return chunk.iter().position(|&c| c == needle).map(|at| base + at);
        }
        base += chunk.len();
    }
    None
}

/// Decodes `text` (see the module rules).
pub fn decode(text: &str) -> Result<Vec<u8>, HexError> {
    let mut out = Vec::with_capacity(text.len() / 2);
    decode_into(text.as_bytes(), &mut out)?;
    Ok(out)
}

/// Decodes a packet given whole as hex, as a command-line argument (see the module rules).
pub fn decode_packet(text: &str) -> Result<Vec<u8>, PacketHexError> {
    decode(text).map_err(HexError::in_packet)
}

/// Appends `bytes` as lower-case hex digits to `out`.
pub fn encode_into(bytes: &[u8], out: &mut Vec<u8>) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let start = out.len();
    out.resize(start + bytes.len() * 2, 0);
    for (pair, &b) in out[start..].chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0xf)];
    }
}

/// What a stream of packets holds, told by its first bytes (see [`sniff`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// A pcap or pcapng capture, or the start of one (or a gzip-compressed file, which the
    /// reader names): for [`crate::pcap::Reader`], which refuses it if it is not whole.
    Capture,
    /// Anything else: hex lines (see [`parse_line`]).
    HexLines,
}

/// The stream [`sniff`] hands back: the bytes it read ahead, then the rest of the input.
pub type Sniffed<R> = io::Chain<io::Take<io::Cursor<[u8; 4]>>, R>;

/// Tells a capture from hex lines by the first bytes of `input`
/// ([`crate::pcap::starts_like_capture`]), and hands back the input whole, those bytes
/// included. Up to 4 bytes are read ahead, in as many reads as it takes (a pipe may deliver
/// fewer at a time); a shorter input is judged by what it has.
pub fn sniff<R: Read>(mut input: R) -> io::Result<(StreamKind, Sniffed<R>)> {
    let mut start = [0u8; 4];
    let mut got = 0;
    while got < start.len() {
        match input.read(&mut start[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    let kind = if crate::pcap::starts_like_capture(&start[..got]) {
        StreamKind::Capture
    } else {
        StreamKind::HexLines
    };
    Ok((kind, io::Cursor::new(start).take(got as u64).chain(input)))
}

/// What a line of hex text holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line<'a> {
    /// A blank or comment line.
    Empty,
    /// A packet.
    Packet {
        /// The timestamp column, when there is one.
        timestamp: Option<Duration>,
        /// The hex digits (with any separators), trimmed.
        hex: &'a [u8],
        /// Byte offset of `hex` in the line, for column numbers.
        column: usize,
    },
}

/// A line error (the timestamp column).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("column {column}: {message}")]
pub struct LineError {
    /// Column (from 1) of the problem.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

fn is_blank(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

/// Parses `SECONDS.FRACTION` (1 to 9 fraction digits).
fn parse_timestamp(token: &[u8]) -> Option<Duration> {
    let dot = token.iter().position(|&c| c == b'.')?;
    let (secs, frac) = (&token[..dot], &token[dot + 1..]);
    if secs.is_empty()
        || frac.is_empty()
        || frac.len() > 9
        || !secs.iter().chain(frac).all(u8::is_ascii_digit)
    {
        return None;
    }
    let secs: u64 = std::str::from_utf8(secs).ok()?.parse().ok()?;
    let mut nanos: u32 = std::str::from_utf8(frac).ok()?.parse().ok()?;
    for _ in frac.len()..9 {
        nanos *= 10;
    }
    Some(Duration::new(secs, nanos))
}

/// Parses one line (without its newline) as the module docs say.
pub fn parse_line(line: &[u8]) -> Result<Line<'_>, LineError> {
    let data = match find_byte(line, b'\t') {
        Some(tab) => &line[..tab],
        None => line,
    };
    let Some(first) = data.iter().position(|&c| !is_blank(c)) else {
        return Ok(Line::Empty);
    };
    if data[first] == b'#' || data[first] == b';' {
        return Ok(Line::Empty);
    }
    let last = data.iter().rposition(|&c| !is_blank(c)).unwrap_or(first);
    let mut column = first;
    let mut hex = &data[first..=last];
    let mut timestamp = None;
    // A timestamp column: digits then '.' (never in hex), up to the first blank.
    let leading_digits = hex.iter().take_while(|c| c.is_ascii_digit()).count();
    if hex.get(leading_digits) == Some(&b'.') {
        let token_end = hex.iter().position(|&c| is_blank(c)).unwrap_or(hex.len());
        let token = &hex[..token_end];
        timestamp = Some(parse_timestamp(token).ok_or_else(|| LineError {
            column: column + 1,
            message: format!(
                "bad timestamp '{}': expected SECONDS.FRACTION (up to 9 fraction digits)",
                String::from_utf8_lossy(token).escape_default()
            ),
        })?);
        let rest = &hex[token_end..];
        let skip = rest
            .iter()
            .position(|&c| !is_blank(c))
            .unwrap_or(rest.len());
        column += token_end + skip;
        hex = &rest[skip..];
    }
    Ok(Line::Packet {
        timestamp,
        hex,
        column,
    })
}

/// One line of an offset-column hexdump: its offset, and the bytes' text (2-digit tokens and
/// the blanks between them) with its byte offset in the line. `None` when the line does not
/// start with a hex offset of 4 or more digits (after optional blanks).
pub fn parse_offset_line(line: &[u8]) -> Option<(u64, &[u8], usize)> {
    let start = line.iter().position(|&c| !is_blank(c))?;
    let rest = &line[start..];
    let end = rest.iter().position(|&c| is_blank(c)).unwrap_or(rest.len());
    let offset_text = &rest[..end];
    if offset_text.len() < 4 || offset_text.len() > 16 {
        return None;
    }
    if !offset_text.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let offset = u64::from_str_radix(std::str::from_utf8(offset_text).ok()?, 16).ok()?;
    // The bytes: 2-digit tokens separated by blanks, up to the first other token.
    let bytes_start = start + end;
    let mut pos = bytes_start;
    let mut bytes_end = bytes_start;
    loop {
        while pos < line.len() && is_blank(line[pos]) {
            pos += 1;
        }
        let token_end = line[pos..]
            .iter()
            .position(|&c| is_blank(c))
            .map_or(line.len(), |n| pos + n);
        let token = &line[pos..token_end];
        if token.len() != 2 || !token.iter().all(u8::is_ascii_hexdigit) {
            break;
        }
        bytes_end = token_end;
        pos = token_end;
    }
    Some((offset, &line[bytes_start..bytes_end], bytes_start))
}

/// True when `line` looks like the first line of an offset-column hexdump: offset zero with
/// 4 or more digits, then at least one 2-digit byte, and nothing but 2-digit bytes before any
/// ASCII column. A line of plain hex with blanks (`0011 2233`) is not one.
pub fn starts_offset_dump(line: &[u8]) -> bool {
    match parse_offset_line(line) {
        Some((0, bytes, _)) => bytes.iter().any(|c| !is_blank(*c)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_with_separators_anywhere_and_reports_places() {
        assert_eq!(decode("0a1B ff:00").unwrap(), [0x0a, 0x1b, 0xff, 0x00]);
        // Long runs go through the block decoder: every digit, both cases, errors inside.
        let bytes: Vec<u8> = (0..=255u8).collect();
        let mut text = Vec::new();
        encode_into(&bytes, &mut text);
        assert_eq!(decode(std::str::from_utf8(&text).unwrap()).unwrap(), bytes);
        let upper = String::from_utf8(text.clone()).unwrap().to_uppercase();
        assert_eq!(decode(&upper).unwrap(), bytes);
        for bad in [b'g', b'/', b':', b'@', b'G', b'`', 0xff] {
            let mut broken = text.clone();
            broken[77] = bad;
            let err = decode_into(&broken, &mut Vec::new()).unwrap_err();
            if bad == b':' {
                assert_eq!(err, HexError::OddDigits { digits: 511 });
            } else {
                assert!(matches!(
                    err,
                    HexError::BadDigit {
                        offset: 77,
                        digit: 77,
                        ..
                    }
                ));
            }
        }
        assert_eq!(find_byte(&[0u8; 100], 1), None);
        let mut hay = [0u8; 100];
        hay[70] = 9;
        assert_eq!(find_byte(&hay, 9), Some(70));
        assert_eq!(decode("").unwrap(), Vec::<u8>::new());
        assert_eq!(decode("0 a").unwrap(), [0x0a]);
        assert_eq!(
            decode("00zz"),
            Err(HexError::BadDigit {
                offset: 2,
                digit: 2,
                found: 'z'
            })
        );
        assert_eq!(
            decode("00 é").unwrap_err().to_string(),
            "column 4: 'é' is not a hex digit"
        );
        assert_eq!(
            decode("001").unwrap_err(),
            HexError::OddDigits { digits: 3 }
        );
        let mut out = vec![7];
        decode_into(b"0102", &mut out).unwrap();
        assert_eq!(out, [7, 1, 2]);
        let mut text = Vec::new();
        encode_into(&[0, 0xab, 0xff], &mut text);
        assert_eq!(text, b"00abff");
    }

    #[test]
    fn errors_told_by_line_column_or_packet_digit() {
        let line = b"0011 22\xc3\xa9";
        let err = decode_into(&line[2..], &mut Vec::new()).unwrap_err();
        assert_eq!(
            err.clone().in_line(&line[2..], 2).to_string(),
            "column 8: byte 0xc3 is not a hex digit"
        );
        let err = decode_into(b"0g", &mut Vec::new()).unwrap_err();
        assert_eq!(
            err.in_line(b"0g", 4).to_string(),
            "column 6: 'g' is not a hex digit"
        );
        let err = decode_into(b"001", &mut Vec::new()).unwrap_err();
        assert_eq!(
            err.in_line(b"001", 0).to_string(),
            "3 hex digits: expected an even number (two per byte)"
        );
        assert_eq!(
            decode_packet("00 1z").unwrap_err().to_string(),
            "bad packet hex: 'z' at digit 3 is not a hex digit"
        );
        assert_eq!(
            decode_packet("001").unwrap_err().to_string(),
            "bad packet hex: 3 digits, expected an even number (two per byte)"
        );
        assert_eq!(decode_packet("00:ff").unwrap(), [0, 0xff]);
    }

    /// A reader that hands out one byte per read, as a slow pipe may.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(buf.len()).min(1);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn sniffing_tells_captures_from_hex_and_keeps_every_byte() {
        let pcapng = [0x0a, 0x0d, 0x0d, 0x0a, 0x1c, 0, 0, 0];
        let ns_pcap = [0x4d, 0x3c, 0xb2, 0xa1, 2, 0];
        let cases: [(&[u8], StreamKind); 6] = [
            (&pcapng, StreamKind::Capture),
            (&ns_pcap, StreamKind::Capture),
            (&[0x1f, 0x8b, 8, 0], StreamKind::Capture),
            // A hex file whose first line is blank starts like pcapng, but not for 4 bytes.
            (b"\n4500", StreamKind::HexLines),
            (b"# packets\n", StreamKind::HexLines),
            (b"", StreamKind::HexLines),
        ];
        for (input, kind) in cases {
            let (found, mut stream) = sniff(Trickle(input)).unwrap();
            assert_eq!(found, kind, "{input:02x?}");
            let mut all = Vec::new();
            stream.read_to_end(&mut all).unwrap();
            assert_eq!(all, input);
        }
    }

    #[test]
    fn lines_with_comments_ascii_and_timestamps() {
        assert_eq!(parse_line(b"  # note").unwrap(), Line::Empty);
        assert_eq!(parse_line(b"\t0011").unwrap(), Line::Empty);
        assert_eq!(
            parse_line(b" 0011 22\tascii").unwrap(),
            Line::Packet {
                timestamp: None,
                hex: b"0011 22",
                column: 1
            }
        );
        assert_eq!(
            parse_line(b"1700000000.000000005  0011").unwrap(),
            Line::Packet {
                timestamp: Some(Duration::new(1_700_000_000, 5)),
                hex: b"0011",
                column: 22
            }
        );
        assert_eq!(
            parse_line(b"1.5 00").unwrap(),
            Line::Packet {
                timestamp: Some(Duration::new(1, 500_000_000)),
                hex: b"00",
                column: 4
            }
        );
        assert!(parse_line(b"1.2.3 00").is_err());
        assert!(parse_line(b"1.0123456789 00").is_err());
    }

    #[test]
    fn offset_dumps() {
        assert_eq!(
            parse_offset_line(b"000010 45 00 1c"),
            Some((16, &b" 45 00 1c"[..], 6))
        );
        assert_eq!(
            parse_offset_line(b"00000000  45 00  |E.|"),
            Some((0, &b"  45 00"[..], 8))
        );
        assert_eq!(parse_offset_line(b"00001c"), Some((28, &b""[..], 6)));
        assert!(starts_offset_dump(b"0000000 45 00"));
        assert!(!starts_offset_dump(b"0011 2233"));
        assert!(!starts_offset_dump(b"000000"));
        assert!(!starts_offset_dump(b"00 11 22"));
    }
}
