//! `bpfasm`: assemble, disassemble, convert, check and trace classic BPF programs.

use std::ffi::OsString;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::ExitCode;

use clap::Parser;

use crate::asm::{format_program, parse_bytecode, Assembler, Format};
use crate::cli::{parse_args, CliError, EXIT_ERROR, EXIT_OK};
use crate::insn::{Ancillary, Insn, RawInsn};
use crate::vm::{self, Input, Profile, Program};

const EXAMPLES: &str = "\
Examples:
  bpfasm prog.s                       assemble; print the xt_bpf/tc bytecode text
  bpfasm -c prog.s                    print a C array, as bpf_asm -c
  bpfasm --format listing prog.s      print a tcpdump -d style listing
  bpfasm -d '4,40 0 0 12,21 0 1 2048,6 0 0 65535,6 0 0 0'
                                      disassemble bytecode given on the command line
  tcpdump -ddd -y EN10MB udp | bpfasm -d --format bytecode
                                      convert tcpdump's output to xt_bpf text
  bpfasm --check --profile xt_bpf prog.s
                                      check the kernel's rules for iptables -m bpf
  bpfasm --trace 4500001c... prog.s   run on one packet (hex, from the IP header for
                                      xt_bpf programs) and show every step";

/// Assemble, disassemble and check classic BPF programs.
#[derive(Debug, Parser)]
#[command(
    name = "bpfasm",
    version,
    about = "Assemble, disassemble, convert, check and trace classic BPF programs",
    long_about = "Assembles bpf_asm syntax (or a tcpdump -d listing) into bytecode, or with -d reads \
bytecode in any text form (xt_bpf 'N,c t f k,...', tcpdump -ddd, C arrays) and prints it in the \
chosen format. Errors name the place (file:line:col or instruction) and exit with status 2.",
    after_help = EXAMPLES
)]
struct Args {
    /// Assembly file, or with -d bytecode text or a file holding it; '-' or nothing reads stdin.
    input: Option<String>,

    /// Read bytecode instead of assembly (default output: assembly).
    #[arg(short = 'd', long)]
    disassemble: bool,

    /// Print a C array, as bpf_asm -c (same as --format c).
    #[arg(short = 'c', conflicts_with = "format")]
    c_array: bool,

    /// Output format.
    #[arg(short = 'f', long, value_parser = format_value_parser())]
    format: Option<Format>,

    /// Check the program against the kernel's rules and print nothing else; exit 2 listing
    /// every violation.
    #[arg(long, conflicts_with = "trace")]
    check: bool,

    /// Profile for --check and --trace: socket (4096 instructions) or xt_bpf (64).
    #[arg(long, value_parser = profile_value_parser(), default_value = "socket")]
    profile: Profile,

    /// Run the program on one packet given as hex and print every step and the verdict.
    #[arg(long, value_name = "HEX")]
    trace: Option<String>,
}

/// clap's parser for a library value named by one of `all`'s names, with their descriptions
/// as help (the library types know nothing of clap).
fn named_value_parser<T>(
    all: &[T],
    name: fn(T) -> &'static str,
    description: fn(T) -> &'static str,
) -> impl clap::builder::TypedValueParser<Value = T>
where
    T: std::str::FromStr + Copy + Send + Sync + 'static,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
    PossibleValuesParser::new(
        all.iter()
            .map(|&value| PossibleValue::new(name(value)).help(description(value))),
    )
    .try_map(|text| text.parse::<T>())
}

/// clap's parser for `--format` (also used by bpfgen).
pub(crate) fn format_value_parser() -> impl clap::builder::TypedValueParser<Value = Format> {
    named_value_parser(&Format::ALL, Format::name, Format::description)
}

/// clap's parser for `--profile`.
fn profile_value_parser() -> impl clap::builder::TypedValueParser<Value = Profile> {
    named_value_parser(&Profile::ALL, Profile::name, Profile::description)
}

/// Runs `bpfasm` with `args` (including the program name).
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

    let prog: Vec<RawInsn> = if args.disassemble {
        let (name, text) = match args.input.as_deref() {
            Some(arg) if arg_is_inline(arg) => ("command line".to_string(), arg.to_string()),
            other => {
                let mut input = open_input(other, stdin)?;
                let name = input.name.clone();
                let mut text = String::new();
                read_lines(&mut input, MAX_BYTECODE, |line| {
                    if text.len() + line.len() > MAX_BYTECODE {
                        return Err(format!(
                            "{name}: longer than {MAX_BYTECODE} bytes: expected bytecode text (4096 instructions in any form are far shorter)"
                        ));
                    }
                    text.push_str(line);
                    Ok(())
                })?;
                (input.name, text)
            }
        };
        parse_bytecode(&text).map_err(|e| format!("{name}: {e}"))?
    } else {
        let mut input = open_input(args.input.as_deref(), stdin)?;
        let mut assembler = Assembler::new();
        let name = input.name.clone();
        // The assembler's errors carry their own line:col.
        read_lines(&mut input, MAX_LINE, |line| {
            assembler.push_line(line).map_err(|e| format!("{name}:{e}"))
        })?;
        assembler.finish().map_err(|e| format!("{name}:{e}"))?
    };

    if args.check {
        return match vm::validate(&prog, args.profile) {
            Ok(()) => Ok(ExitCode::from(EXIT_OK)),
            Err(err) => {
                for violation in &err.violations {
                    writeln!(stderr, "bpfasm: {violation}")?;
                }
                Ok(ExitCode::from(EXIT_ERROR))
            }
        };
    }

    if let Some(hex_text) = &args.trace {
        let packet = crate::pcap::hex::decode_packet(hex_text)?;
        let program = Program::new(&prog, args.profile)?;
        // Ancillary loads read socket metadata a hex packet does not carry.
        let ancillary: Vec<String> = prog
            .iter()
            .filter_map(|raw| match Insn::decode(*raw) {
                Insn::LoadAbs { offset, .. } => Ancillary::from_offset(offset),
                _ => None,
            })
            .map(|a| a.tcpdump_name().to_string())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        if !ancillary.is_empty() {
            writeln!(
                stderr,
                "bpfasm: note: ancillary loads ({}) read 0 here: a packet given as hex has no socket metadata",
                ancillary.join(", ")
            )?;
        }
        let trace = vm::trace(&program, &Input::l3(&packet));
        stdout.write_all(trace.to_string().as_bytes())?;
        stdout.flush()?;
        return Ok(ExitCode::from(EXIT_OK));
    }

    let format = match (args.c_array, args.format, args.disassemble) {
        (true, _, _) => Format::C,
        (false, Some(format), _) => format,
        (false, None, true) => Format::Asm,
        (false, None, false) => Format::Bytecode,
    };
    if matches!(format, Format::Asm | Format::Listing) {
        // Text forms cannot show every bit pattern: say so rather than change the program
        // silently when the text is assembled again.
        for (index, raw) in prog.iter().enumerate() {
            let insn = Insn::decode(*raw);
            let canonical = insn.encode();
            if matches!(insn, Insn::Raw(_)) {
                writeln!(
                    stderr,
                    "bpfasm: warning: instruction {index} (code {:#06x}) is not a classic BPF instruction: it is shown as a comment, and assembling the text leaves it out",
                    raw.code
                )?;
            } else if canonical != *raw {
                writeln!(
                    stderr,
                    "bpfasm: warning: instruction {index} ({}) is stored as {} {} {} {} with bits no text form shows; the text assembles to {} {} {} {}",
                    insn.display_at(index),
                    raw.code,
                    raw.jt,
                    raw.jf,
                    raw.k,
                    canonical.code,
                    canonical.jt,
                    canonical.jf,
                    canonical.k
                )?;
            }
        }
    }
    stdout.write_all(format_program(&prog, format).as_bytes())?;
    stdout.flush()?;
    Ok(ExitCode::from(EXIT_OK))
}

/// Longest line of assembly read: longer lines are refused rather than held.
const MAX_LINE: usize = 64 * 1024;
/// Most bytecode text read: a 4096-instruction program in its longest form (a C array with
/// comments) is a few hundred KiB.
const MAX_BYTECODE: usize = 1024 * 1024;

/// An input being read, and its name for messages.
struct Source<'a> {
    name: String,
    reader: Box<dyn BufRead + 'a>,
}

/// Opens the input file, or standard input for `-` or nothing.
fn open_input<'a>(path: Option<&str>, stdin: &'a mut dyn Read) -> Result<Source<'a>, CliError> {
    Ok(match path {
        None | Some("-") => Source {
            name: "<stdin>".to_string(),
            reader: Box::new(BufReader::new(stdin)),
        },
        Some(path) => Source {
            name: path.to_string(),
            reader: Box::new(BufReader::new(
                File::open(path).map_err(|e| format!("cannot read '{path}': {e}"))?,
            )),
        },
    })
}

/// Reads `source` line by line, each line at most `max_line` bytes, and hands each to `take`
/// (with its line end), stopping at the first error. Binary input is refused as soon as it is
/// seen: a NUL byte, or bytes that cannot be UTF-8 whatever follows them. Only the current line
/// is held.
fn read_lines(
    source: &mut Source<'_>,
    max_line: usize,
    mut take: impl FnMut(&str) -> Result<(), String>,
) -> Result<(), CliError> {
    let name = source.name.clone();
    let fail = |line: usize, what: String| CliError::from(format!("{name}: line {line}: {what}"));
    let mut buf = Vec::new();
    let mut number = 0usize;
    loop {
        buf.clear();
        number += 1;
        loop {
            let (used, ends_line) = {
                let chunk = source
                    .reader
                    .fill_buf()
                    .map_err(|e| format!("cannot read '{name}': {e}"))?;
                if chunk.is_empty() {
                    break;
                }
                let (piece, ends_line) = match chunk.iter().position(|&b| b == b'\n') {
                    Some(end) => (&chunk[..=end], true),
                    None => (chunk, false),
                };
                // Never more than one byte past the limit.
                let room = max_line.saturating_sub(buf.len());
                let piece = &piece[..piece.len().min(room + 1)];
                buf.extend_from_slice(piece);
                (piece.len(), ends_line && buf.ends_with(b"\n"))
            };
            source.reader.consume(used);
            if let Some(at) = buf.iter().position(|&b| b == 0) {
                return Err(fail(
                    number,
                    format!("not text (a NUL byte at column {}): expected text", at + 1),
                ));
            }
            if let Err(e) = std::str::from_utf8(&buf) {
                if e.error_len().is_some() {
                    return Err(fail(
                        number,
                        format!(
                            "not text (bytes that are not UTF-8 at column {}): expected text",
                            e.valid_up_to() + 1
                        ),
                    ));
                }
            }
            if buf.len() > max_line {
                return Err(fail(
                    number,
                    format!("longer than {max_line} bytes: expected lines of text"),
                ));
            }
            if ends_line {
                break;
            }
        }
        if buf.is_empty() {
            return Ok(());
        }
        let line = std::str::from_utf8(&buf).map_err(|e| {
            fail(
                number,
                format!(
                    "not text (bytes that are not UTF-8 at column {}): expected text",
                    e.valid_up_to() + 1
                ),
            )
        })?;
        take(line).map_err(CliError::from)?;
    }
}

/// True when the -d argument is bytecode text rather than a path: not `-`, not an existing file,
/// and shaped like bytecode (separators between numbers).
fn arg_is_inline(arg: &str) -> bool {
    arg != "-"
        && !std::path::Path::new(arg).exists()
        && arg.contains(|c: char| c == ',' || c.is_whitespace())
}
