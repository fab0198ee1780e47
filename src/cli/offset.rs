//! `offset`: where a byte string sits in each packet, from the start and from the end, to
//! build `suffix` and `tcpdump` rules.
//!
//! Input: pcap/pcapng captures (recognised by their magic number) or hex lines as pcap2hex
//! prints them. The first occurrence in each packet is reported; packets without it are
//! reported with `-` (or left out with `-i`). A summary of the most common offsets goes to
//! stderr (`-q` silences it).

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::process::ExitCode;

use clap::Parser;

use crate::asm::quote;
use crate::cli::{for_each_line, parse_args, CliError, LinesError, EXIT_NO_MATCH, EXIT_OK};
use crate::pcap::hex::{self, Line, StreamKind, MAX_LINE};
use crate::pcap::{link, Reader};

const EXAMPLES: &str = "\
Output: one line per packet, tab-separated: the packet number, the offset of the first
occurrence from the start of the packet, and from its end (negative: the occurrence starts
that many bytes before the end); '-' for both when the packet does not hold it. -p and -s add
the hex of the bytes before the occurrence and of the occurrence to the end of the packet
(the bytes a 'bpfgen suffix' rule matches). A summary of the most common offsets goes to
stderr.

Offsets count from the first byte of the frame as captured (where tcpdump expressions and
'bpfgen -o' programs start), or with --l3 from the IP header (where iptables -m bpf programs
start). Hex lines are Ethernet frames unless --linktype says otherwise.

Examples:
  offset 'www\\x07example\\x03net' flood.pcap | cut -f2 | sort -n | uniq -c   (packets per offset)
  offset -x 076578616d706c65 --l3 -s flood.pcap | head -3
  pcap2hex flood.pcap | offset -i example

Exit status: 0 when some packet holds the string, 1 when none does, 2 on error.";

/// Find a byte string in packets: its offset from the start and from the end of each.
#[derive(Debug, Parser)]
#[command(
    name = "offset",
    version,
    about = "Find a byte string in packets and print its offset from the start and the end",
    after_help = EXAMPLES
)]
struct Args {
    /// The string to find: text with escapes (\xNN, \t, \n, \r, \0, \\), or hex with -x.
    pattern: String,
    /// Captures (pcap, pcapng) or hex-line files; stdin when none.
    files: Vec<String>,
    /// The string is given in hex.
    #[arg(short = 'x', long)]
    hex: bool,
    /// Offsets from the IP header (what iptables -m bpf programs see) instead of the frame.
    #[arg(long)]
    l3: bool,
    /// Link type of hex-line input (captures say theirs): ether, raw, sll, sll2, ...
    #[arg(short = 'l', long, default_value = "ether", value_name = "TYPE", value_parser = link::parse)]
    linktype: u32,
    /// Also print the hex of the bytes before the occurrence.
    #[arg(short = 'p', long)]
    prefix: bool,
    /// Also print the hex of the bytes from the occurrence to the end of the packet.
    #[arg(short = 's', long)]
    suffix: bool,
    /// Leave out the packets that do not hold the string.
    #[arg(short = 'i', long = "ignore")]
    ignore: bool,
    /// No summary on stderr.
    #[arg(short = 'q', long)]
    quiet: bool,
}

/// Reads the text form of the pattern: bytes as typed, with backslash escapes.
pub fn unescape(text: &str) -> Result<Vec<u8>, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let escape = bytes.get(i + 1).copied();
        match escape {
            Some(b'x') => {
                let digits = bytes
                    .get(i + 2..i + 4)
                    .filter(|d| d.iter().all(u8::is_ascii_hexdigit))
                    .ok_or_else(|| format!("at character {}: '\\x' needs two hex digits", i + 1))?;
                let mut byte = Vec::with_capacity(1);
                hex::decode_into(digits, &mut byte).map_err(|e| e.to_string())?;
                out.extend_from_slice(&byte);
                i += 4;
                continue;
            }
            Some(b't') => out.push(b'\t'),
            Some(b'n') => out.push(b'\n'),
            Some(b'r') => out.push(b'\r'),
            Some(b'0') => out.push(0),
            Some(b'\\') => out.push(b'\\'),
            Some(other) => {
                return Err(format!(
                    "at character {}: unknown escape '\\{}' (known: \\xNN \\t \\n \\r \\0 \\\\)",
                    i + 1,
                    char::from(other).escape_debug()
                ))
            }
            None => return Err("a lone '\\' at the end".into()),
        }
        i += 2;
    }
    Ok(out)
}

/// Offsets seen, for the summary.
#[derive(Default)]
struct Tally {
    packets: u64,
    found: u64,
    from_start: HashMap<usize, u64>,
    from_end: HashMap<usize, u64>,
}

impl Tally {
    fn most_common(counts: &HashMap<usize, u64>) -> Vec<(usize, u64)> {
        let mut all: Vec<(usize, u64)> = counts.iter().map(|(&k, &v)| (k, v)).collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        all.truncate(3);
        all
    }
}

struct Search<'a> {
    args: &'a Args,
    /// The string, searched in time linear in the packet's length whatever its own.
    pattern: memchr::memmem::Finder<'static>,
    tally: Tally,
    line: Vec<u8>,
}

impl Search<'_> {
    /// Reports one packet (`frame` captured with `linktype`, `fcs_len` bytes of FCS).
    fn packet(
        &mut self,
        out: &mut dyn Write,
        number: u64,
        linktype: u32,
        fcs_len: u32,
        frame: &[u8],
    ) -> Result<(), CliError> {
        self.tally.packets += 1;
        let data = if self.args.l3 {
            let without_fcs = &frame[..frame.len().saturating_sub(fcs_len as usize)];
            match link::network_header(linktype, without_fcs) {
                Some(net) => &without_fcs[net.offset..],
                // No IP header: nothing an iptables program would see.
                None => &[][..],
            }
        } else {
            frame
        };
        let found = self.pattern.find(data);
        if found.is_none() && self.args.ignore {
            return Ok(());
        }
        let line = &mut self.line;
        line.clear();
        match found {
            Some(at) => {
                self.tally.found += 1;
                let from_end = data.len() - at;
                *self.tally.from_start.entry(at).or_default() += 1;
                *self.tally.from_end.entry(from_end).or_default() += 1;
                write!(line, "{number}\t{at}\t-{from_end}")?;
                if self.args.prefix {
                    line.push(b'\t');
                    hex::encode_into(&data[..at], line);
                }
                if self.args.suffix {
                    line.push(b'\t');
                    hex::encode_into(&data[at..], line);
                }
            }
            None => {
                write!(line, "{number}\t-\t-")?;
                if self.args.prefix {
                    line.extend_from_slice(b"\t-");
                }
                if self.args.suffix {
                    line.extend_from_slice(b"\t-");
                }
            }
        }
        line.push(b'\n');
        out.write_all(line)?;
        Ok(())
    }

    fn input(
        &mut self,
        name: &str,
        input: &mut dyn Read,
        out: &mut dyn Write,
    ) -> Result<(), CliError> {
        let (kind, input) = hex::sniff(input).map_err(|e| format!("{name}: cannot read: {e}"))?;
        if kind == StreamKind::Capture {
            let mut reader = Reader::new(input).map_err(|e| format!("{name}: {e}"))?;
            while let Some(packet) = reader.next_packet().map_err(|e| format!("{name}: {e}"))? {
                let (number, linktype, fcs_len) = (packet.number, packet.linktype, packet.fcs_len);
                self.packet(out, number, linktype, fcs_len, packet.data)?;
            }
            return Ok(());
        }
        // Hex lines, one packet each, numbered as the packets in the input.
        let mut input = BufReader::with_capacity(1 << 16, input);
        let mut frame = Vec::new();
        let mut number = 0u64;
        for_each_line(&mut input, MAX_LINE, |line_number, text| {
            let at = |e: String| format!("{name}: line {line_number}: {e}");
            let Line::Packet { hex: digits, .. } =
                hex::parse_line(text).map_err(|e| at(e.to_string()))?
            else {
                return Ok(());
            };
            frame.clear();
            hex::decode_into(digits, &mut frame).map_err(|e| at(e.to_string()))?;
            number += 1;
            let linktype = self.args.linktype;
            self.packet(out, number, linktype, 0, &frame)
        })
        .map_err(|e| match e {
            LinesError::Read { line, error } => {
                format!("{name}: line {line}: cannot read: {error}").into()
            }
            LinesError::TooLong { line } => {
                format!("{name}: line {line}: longer than {MAX_LINE} bytes").into()
            }
            LinesError::Line(e) => e,
        })
    }
}

/// Runs `offset` with `args` (including the program name).
pub fn main(
    args: impl IntoIterator<Item = OsString>,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Result<ExitCode, CliError> {
    let args: Args = match parse_args(args, stdout, stderr)? {
        Ok(args) => args,
        Err(code) => return Ok(code),
    };
    let pattern = if args.hex {
        hex::decode(&args.pattern).map_err(|e| format!("-x '{}': {e}", quote(&args.pattern)))?
    } else {
        unescape(&args.pattern).map_err(|e| format!("'{}': {e}", quote(&args.pattern)))?
    };
    if pattern.is_empty() {
        return Err("an empty string: give the bytes to find".into());
    }
    let mut search = Search {
        args: &args,
        pattern: memchr::memmem::Finder::new(&pattern).into_owned(),
        tally: Tally::default(),
        line: Vec::with_capacity(1 << 12),
    };
    let mut out = BufWriter::with_capacity(1 << 16, stdout);
    let names: Vec<&str> = if args.files.is_empty() {
        vec!["-"]
    } else {
        args.files.iter().map(String::as_str).collect()
    };
    let mut stdin = Some(stdin);
    for path in names {
        if path == "-" {
            let input = stdin
                .take()
                .ok_or("'-' (standard input) given more than once")?;
            search.input("<stdin>", input, &mut out)?;
        } else {
            let mut file = File::open(path).map_err(|e| format!("cannot open '{path}': {e}"))?;
            search.input(path, &mut file, &mut out)?;
        }
    }
    out.flush()?;
    let tally = &search.tally;
    if !args.quiet {
        let show = |counts: &HashMap<usize, u64>, sign: &str| -> String {
            Tally::most_common(counts)
                .iter()
                .map(|(offset, n)| format!("{sign}{offset} ({n})"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if tally.found > 0 {
            writeln!(
                stderr,
                "offset: found in {} of {} packets; from the start: {}; from the end: {}",
                tally.found,
                tally.packets,
                show(&tally.from_start, ""),
                show(&tally.from_end, "-")
            )?;
        } else {
            writeln!(stderr, "offset: found in 0 of {} packets", tally.packets)?;
        }
    }
    Ok(ExitCode::from(if tally.found > 0 {
        EXIT_OK
    } else {
        EXIT_NO_MATCH
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(unescape(r"a\x00\t\\b").unwrap(), b"a\x00\t\\b");
        assert_eq!(unescape(r"\x07example").unwrap(), b"\x07example");
        assert!(unescape(r"\x0").unwrap_err().contains("two hex digits"));
        assert!(unescape(r"\q").unwrap_err().contains("unknown escape"));
        assert!(unescape("\\").is_err());
    }
}
