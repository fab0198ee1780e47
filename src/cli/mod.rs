//! What the binaries share: error reporting and exit codes, broken-pipe handling, reading
//! text lines in bounded memory.
//!
//! Exit codes follow grep/ripgrep: 0 = success (or something matched), 1 = ran fine but
//! nothing matched, 2 = error. A broken pipe on output (`tool | head`) is not an error: the
//! tool stops quietly with status 0; a closed standard output (`tool >&-`) is one. Errors print
//! one line, `TOOL: message`, on stderr.

use std::error::Error;
use std::io;
use std::process::ExitCode;

use crate::asm;

/// Success, or something matched.
pub const EXIT_OK: u8 = 0;
/// Ran fine, nothing matched.
pub const EXIT_NO_MATCH: u8 = 1;
/// Bad input, bad usage or an I/O failure.
pub const EXIT_ERROR: u8 = 2;

/// The error type tools return: anything displayable, reported as one line.
pub type CliError = Box<dyn Error + Send + Sync + 'static>;

/// True when the error (or any error it wraps) is a broken pipe on output.
pub fn is_broken_pipe(err: &(dyn Error + 'static)) -> bool {
    let mut current: Option<&(dyn Error + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(io_err) = e.downcast_ref::<io::Error>() {
            if io_err.kind() == io::ErrorKind::BrokenPipe {
                return true;
            }
            // io::Error::source() skips the error it wraps; look at that one too.
            if let Some(inner) = io_err.get_ref() {
                current = Some(inner);
                continue;
            }
        }
        current = e.source();
    }
    false
}

/// An error message made safe for one terminal line: newlines folded to spaces, other control
/// characters (which could come from hostile input, e.g. ESC sequences) shown escaped.
pub fn one_line_message(message: &str) -> String {
    message
        .replace(['\r', '\n'], " ")
        .chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// The longest word an error message shows whole: past it, a word is an input echoed back (a
/// file name, a value, a line) and is cut as [`asm::quote`] cuts, its closing punctuation kept.
pub const MAX_MESSAGE_WORD: usize = 256;

/// `message` with every word (between spaces) longer than [`MAX_MESSAGE_WORD`] characters cut:
/// an error names what it is about; it does not echo a whole input back (a 10 MB argument
/// would make a 10 MB line).
pub fn cut_long_words(message: &str) -> String {
    message
        .split(' ')
        .map(|word| {
            if word.chars().count() <= MAX_MESSAGE_WORD {
                return word.to_string();
            }
            let body = word.trim_end_matches(['\'', '"', ',', ':', ';', ')']);
            format!("{}{}", asm::quote(body), &word[body.len()..])
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The packet part of a line of hex (before any tab, after any timestamp column, trimmed), or
/// `None` for a blank line or a comment (`#` or `;` first): the rule of every tool that reads
/// hex lines ([`crate::pcap::hex::parse_line`]). A line whose timestamp column is malformed is
/// returned whole, so that decoding it names the bad character.
pub fn hex_line_data(line: &str) -> Option<&str> {
    match crate::pcap::hex::parse_line(line.as_bytes()) {
        Ok(crate::pcap::hex::Line::Empty) => None,
        Ok(crate::pcap::hex::Line::Packet { hex, column, .. }) => {
            Some(&line[column..column + hex.len()])
        }
        Err(_) => {
            let data = line.split('\t').next().unwrap_or("").trim();
            Some(data)
        }
    }
}

/// The error for line `line` of hex lines (parsedns, hex2pcap) longer than
/// [`crate::pcap::hex::MAX_LINE`], saying what fits in the limit.
pub fn hex_line_too_long(line: u64) -> String {
    use crate::pcap::hex::{MAX_LINE, MAX_PACKET};
    format!(
        "line {line}: longer than {MAX_LINE} bytes (the hex of a {MAX_PACKET}-byte packet with separators and an ASCII column fits in it)"
    )
}

/// Why [`for_each_line`] stopped before the end of its input.
#[derive(Debug)]
pub enum LinesError<E> {
    /// Reading failed while line `line` (counted from 1) was being read.
    Read {
        /// The line being read.
        line: u64,
        /// The error of the reader.
        error: io::Error,
    },
    /// Line `line` is longer than the limit; no more of it was read.
    TooLong {
        /// The line.
        line: u64,
    },
    /// The callback refused a line: its error.
    Line(E),
}

/// Calls `each` with every line of `input` and its number (from 1), without its `\n` or `\r\n`,
/// stopping at the first error. A last line without a line end is a line; an input that ends
/// with a line end has no empty line after it.
///
/// Memory stays bounded whatever the input: a line is handed over where it lies in the reader's
/// buffer, and only a line that crosses the buffer's end is copied, into a buffer that never
/// holds more than `max_line` bytes. A line longer than `max_line` bytes (its `\r` counted) is
/// refused as soon as that is seen, before more of it is read.
pub fn for_each_line<R: io::BufRead + ?Sized, E>(
    input: &mut R,
    max_line: usize,
    mut each: impl FnMut(u64, &[u8]) -> Result<(), E>,
) -> Result<(), LinesError<E>> {
    let without_cr =
        |line: &[u8]| -> usize { line.len() - usize::from(line.last() == Some(&b'\r')) };
    let mut number = 0u64;
    // The start of a line that crosses the buffer's end.
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let buf = match input.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => {
                return Err(LinesError::Read {
                    line: number + 1,
                    error,
                })
            }
        };
        if buf.is_empty() {
            if !carry.is_empty() {
                number += 1;
                each(number, &carry[..without_cr(&carry)]).map_err(LinesError::Line)?;
            }
            return Ok(());
        }
        let mut start = 0;
        while let Some(newline) = crate::pcap::hex::find_byte(&buf[start..], b'\n') {
            let end = start + newline;
            number += 1;
            if carry.len() + newline > max_line {
                return Err(LinesError::TooLong { line: number });
            }
            let line = if carry.is_empty() {
                &buf[start..end]
            } else {
                carry.extend_from_slice(&buf[start..end]);
                &carry[..]
            };
            each(number, &line[..without_cr(line)]).map_err(LinesError::Line)?;
            carry.clear();
            start = end + 1;
        }
        if carry.len() + (buf.len() - start) > max_line {
            return Err(LinesError::TooLong { line: number + 1 });
        }
        carry.extend_from_slice(&buf[start..]);
        let used = buf.len();
        input.consume(used);
    }
}

/// A rendered clap error as one line: its text up to the usage part, lines joined (so that,
/// e.g., the missing arguments named on the line after "not provided:" are kept).
pub fn clap_error_line(rendered: &str) -> String {
    rendered
        .lines()
        .take_while(|line| !line.starts_with("Usage:") && !line.starts_with("For more"))
        .map(|line| line.trim().trim_start_matches("error: "))
        .filter(|line| !line.is_empty())
        .fold(String::new(), |mut out, line| {
            if !out.is_empty() {
                out.push_str(if out.ends_with(':') { " " } else { "; " });
            }
            out.push_str(line);
            out
        })
}

/// Progress of a long run on stderr: a line rewritten in place about once a second (packets,
/// bytes read, and the share of the input when its size is known), erased at the end. Only
/// when enabled, which tools do when stderr is a terminal (never into a pipe or a file).
pub struct Progress {
    tool: &'static str,
    enabled: bool,
    started: std::time::Instant,
    next: std::time::Duration,
    interval: std::time::Duration,
    size: Option<u64>,
    shown: bool,
}

impl Progress {
    /// A progress line for `tool`, shown only when `enabled`.
    pub fn new(tool: &'static str, enabled: bool) -> Progress {
        Progress::with_interval(tool, enabled, std::time::Duration::from_secs(1))
    }

    fn with_interval(tool: &'static str, enabled: bool, interval: std::time::Duration) -> Progress {
        Progress {
            tool,
            enabled,
            started: std::time::Instant::now(),
            next: interval,
            interval,
            size: None,
            shown: false,
        }
    }

    /// The size of the input being read, when known.
    pub fn input_size(&mut self, size: Option<u64>) {
        self.size = size.filter(|&s| s > 0);
    }

    /// Called for each packet; looks at the clock every 4096 packets.
    pub fn tick(&mut self, stderr: &mut dyn io::Write, packets: u64, bytes: u64) -> io::Result<()> {
        if !self.enabled || packets & 4095 != 0 {
            return Ok(());
        }
        let elapsed = self.started.elapsed();
        if elapsed < self.next {
            return Ok(());
        }
        self.next = elapsed + self.interval;
        let share = match self.size {
            Some(size) => format!(" ({}%)", bytes.saturating_mul(100) / size),
            None => String::new(),
        };
        write!(
            stderr,
            "\r{}: {packets} packets, {} MB read{share}\x1b[K",
            self.tool,
            bytes / 1_000_000
        )?;
        stderr.flush()?;
        self.shown = true;
        Ok(())
    }

    /// Erases the progress line, if one was shown.
    pub fn finish(&mut self, stderr: &mut dyn io::Write) -> io::Result<()> {
        if self.shown {
            write!(stderr, "\r\x1b[K")?;
            stderr.flush()?;
            self.shown = false;
        }
        Ok(())
    }
}

/// True when standard output was closed when the tool started (`tool >&-`). The Rust runtime
/// then puts /dev/null, opened read-write, in its place, so what the tool writes would vanish
/// and it would succeed having written nothing. A shell's `> /dev/null` opens it write-only
/// and is not taken for a closed output (`1<>/dev/null` would be).
pub fn stdout_is_closed() -> bool {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    use nix::sys::stat::{fstat, stat, SFlag};
    use std::os::fd::AsFd;
    let stdout = io::stdout();
    let Ok(flags) = fcntl(stdout.as_fd(), FcntlArg::F_GETFL) else {
        return true;
    };
    if OFlag::from_bits_truncate(flags) & OFlag::O_ACCMODE != OFlag::O_RDWR {
        return false;
    }
    match (fstat(stdout.as_fd()), stat("/dev/null")) {
        (Ok(ours), Ok(null)) => {
            SFlag::from_bits_truncate(ours.st_mode) & SFlag::S_IFMT == SFlag::S_IFCHR
                && ours.st_rdev == null.st_rdev
        }
        _ => false,
    }
}

/// Refuses to write a binary capture to a terminal: it would fill the screen with bytes (and
/// may send it control sequences) and no one can read it. Looks at the process's standard
/// output whatever writer the tool was given: only a binary started from a terminal has one.
/// `or_else` names the tool's own way out, if any (e.g. "give -w FILE").
pub fn refuse_terminal_output(or_else: Option<&str>) -> Result<(), CliError> {
    use std::io::IsTerminal;
    if io::stdout().is_terminal() {
        let ways = match or_else {
            Some(own) => format!("redirect it (> out.pcap), pipe it (| tcpdump -n -r -) or {own}"),
            None => "redirect it (> out.pcap) or pipe it (| tcpdump -n -r -)".to_string(),
        };
        return Err(
            format!("standard output is a terminal and a pcap file is binary: {ways}").into(),
        );
    }
    Ok(())
}

/// Runs a tool's body and turns its result into the process exit code.
///
/// A closed standard output is an error before anything runs. `Ok(code)` is returned as is; a
/// broken pipe becomes success; any other error is printed as `TOOL: message` (newlines in the
/// message are folded so it stays one line) and gives [`EXIT_ERROR`].
pub fn run(tool: &str, body: impl FnOnce() -> Result<ExitCode, CliError>) -> ExitCode {
    if stdout_is_closed() {
        eprintln!("{tool}: cannot write output: standard output is closed");
        return ExitCode::from(EXIT_ERROR);
    }
    match body() {
        Ok(code) => code,
        Err(err) if is_broken_pipe(err.as_ref()) => ExitCode::from(EXIT_OK),
        Err(err) => {
            eprintln!(
                "{tool}: {}",
                cut_long_words(&one_line_message(&err.to_string()))
            );
            ExitCode::from(EXIT_ERROR)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_is_one_line_rewritten_and_erased() {
        let mut err = Vec::new();
        let mut off = Progress::with_interval("filter", false, std::time::Duration::ZERO);
        off.tick(&mut err, 4096, 10).unwrap();
        off.finish(&mut err).unwrap();
        assert!(err.is_empty());
        let mut on = Progress::with_interval("filter", true, std::time::Duration::ZERO);
        on.input_size(Some(4_000_000));
        on.tick(&mut err, 4095, 1).unwrap();
        assert!(err.is_empty(), "only every 4096 packets");
        on.tick(&mut err, 8192, 3_000_000).unwrap();
        on.finish(&mut err).unwrap();
        assert_eq!(
            String::from_utf8(err).unwrap(),
            "\rfilter: 8192 packets, 3 MB read (75%)\x1b[K\r\x1b[K"
        );
    }

    /// The lines `for_each_line` hands over for `input` read `capacity` bytes at a time, or
    /// how it stopped.
    fn lines_of(input: &[u8], capacity: usize, max_line: usize) -> Result<Vec<String>, String> {
        let mut reader = io::BufReader::with_capacity(capacity, input);
        let mut lines = Vec::new();
        for_each_line(&mut reader, max_line, |number, line| {
            lines.push(format!("{number}:{}", String::from_utf8_lossy(line)));
            Ok::<(), ()>(())
        })
        .map_err(|e| match e {
            LinesError::Read { line, error } => format!("line {line}: {error}"),
            LinesError::TooLong { line } => format!("line {line}: too long"),
            LinesError::Line(()) => "refused".to_string(),
        })?;
        Ok(lines)
    }

    #[test]
    fn lines_are_the_same_whatever_the_buffer_size() {
        for capacity in [1, 2, 3, 5, 64] {
            assert_eq!(
                lines_of(b"a\r\nbb\n\n\r\nc\rc\nlast", capacity, 8),
                Ok(["1:a", "2:bb", "3:", "4:", "5:c\rc", "6:last"]
                    .map(String::from)
                    .to_vec()),
                "{capacity} bytes at a time"
            );
            assert_eq!(
                lines_of(b"one\n", capacity, 8),
                Ok(vec!["1:one".to_string()])
            );
            assert_eq!(lines_of(b"", capacity, 8), Ok(vec![]));
            assert_eq!(lines_of(b"\n", capacity, 8), Ok(vec!["1:".to_string()]));
        }
    }

    #[test]
    fn a_line_over_the_limit_is_refused_with_its_number() {
        for capacity in [1, 2, 3, 4, 5, 64] {
            let at = format!("{capacity} bytes at a time");
            assert_eq!(
                lines_of(b"abcd\nabcd\r\n", capacity, 4),
                Err("line 2: too long".into()),
                "{at}: the CR counts"
            );
            assert_eq!(
                lines_of(b"abcd\nabcd", capacity, 4),
                Ok(vec!["1:abcd".to_string(), "2:abcd".to_string()]),
                "{at}"
            );
            assert_eq!(
                lines_of(b"ab\n\nabcde", capacity, 4),
                Err("line 3: too long".into()),
                "{at}: a last line without its end"
            );
        }
    }

    #[test]
    fn a_long_line_is_refused_before_it_is_read_whole() {
        let input = vec![b'x'; 100_000];
        let mut reader = io::BufReader::with_capacity(16, &input[..]);
        let result = for_each_line(&mut reader, 1000, |_, _| Ok::<(), ()>(()));
        assert!(matches!(result, Err(LinesError::TooLong { line: 1 })));
        let unread = reader.into_inner().len();
        assert!(
            input.len() - unread <= 1000 + 16,
            "{} bytes read",
            input.len() - unread
        );
    }

    /// A reader that plays a script: data, or an error of some kind.
    struct Script(std::collections::VecDeque<Result<&'static [u8], io::ErrorKind>>);

    impl io::Read for Script {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.0.pop_front() {
                None => Ok(0),
                Some(Ok(data)) => {
                    buf[..data.len()].copy_from_slice(data);
                    Ok(data.len())
                }
                Some(Err(kind)) => Err(io::Error::new(kind, "scripted")),
            }
        }
    }

    #[test]
    fn reading_stops_at_an_error_of_the_reader_or_of_the_callback() {
        let script = |parts: Vec<Result<&'static [u8], io::ErrorKind>>| {
            io::BufReader::new(Script(parts.into_iter().collect()))
        };
        let mut seen = Vec::new();
        let mut input = script(vec![
            Ok(b"a\nb"),
            Err(io::ErrorKind::Interrupted),
            Ok(b"c\nd"),
            Err(io::ErrorKind::Other),
        ]);
        let result = for_each_line(&mut input, 8, |number, line| {
            seen.push((number, line.to_vec()));
            Ok::<(), ()>(())
        });
        assert!(
            matches!(&result, Err(LinesError::Read { line: 3, error }) if error.kind() == io::ErrorKind::Other),
            "{result:?}"
        );
        assert_eq!(seen, [(1, b"a".to_vec()), (2, b"bc".to_vec())]);

        let mut input = script(vec![Ok(b"1\n2\n3\n")]);
        let mut seen = Vec::new();
        let result = for_each_line(&mut input, 8, |number, _| {
            seen.push(number);
            if number == 2 {
                Err("refused")
            } else {
                Ok(())
            }
        });
        assert!(matches!(result, Err(LinesError::Line("refused"))));
        assert_eq!(seen, [1, 2]);
    }

    #[test]
    fn long_words_of_a_message_are_cut() {
        let long = "z".repeat(10_000);
        let message = format!("cannot open '{long}': No such file");
        let cut = cut_long_words(&message);
        assert_eq!(
            cut,
            format!("cannot open '{}...': No such file", &long[..39])
        );
        let path = format!("'/{}':", "p".repeat(200));
        assert_eq!(cut_long_words(&path), path, "a long path is kept whole");
    }

    #[test]
    fn broken_pipe_is_found_through_wrapping() {
        let inner = io::Error::new(io::ErrorKind::BrokenPipe, "pipe");
        let wrapped = io::Error::other(inner);
        assert!(is_broken_pipe(&wrapped));
        assert!(!is_broken_pipe(&io::Error::other("disk full")));
    }
}

pub mod bpfasm;
pub mod bpfgen;
pub mod filter;
pub mod gen_args;
pub mod hex2pcap;
pub mod iptables_bpf;
pub mod offset;
pub mod output;
pub mod parsedns;
pub mod pcap2hex;
pub mod triage;
pub mod xdp_bpf;

/// Reads a whole text input: the file `path`, or stdin when it is `None` or `-`.
/// Returns the name to use in messages (`<stdin>` or the path) and the text.
pub fn read_input(
    path: Option<&str>,
    stdin: &mut dyn io::Read,
) -> Result<(String, String), CliError> {
    let mut text = String::new();
    match path {
        None | Some("-") => {
            stdin
                .read_to_string(&mut text)
                .map_err(|e| format!("cannot read standard input: {e}"))?;
            Ok(("<stdin>".to_string(), text))
        }
        Some(path) => {
            let bytes = std::fs::read(path).map_err(|e| format!("cannot read '{path}': {e}"))?;
            let text = String::from_utf8(bytes).map_err(|e| {
                format!(
                    "cannot read '{path}': not UTF-8 text (byte {})",
                    e.utf8_error().valid_up_to()
                )
            })?;
            Ok((path.to_string(), text))
        }
    }
}

/// A better message than clap's for the mistakes made with tools that take a generator: one of
/// the tool's own options given after the generator, or an unknown generator.
fn usage_hint(command: &clap::Command, err: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if let Some(hint) = interface_hint(command, err) {
        return Some(hint);
    }
    let generators: Vec<&str> = command.get_subcommands().map(|c| c.get_name()).collect();
    if generators.is_empty() {
        return None;
    }
    if command.get_subcommand_value_name() == Some("COMMAND") {
        // A tool of commands (xdp-bpf), not of generators.
        return match err.kind() {
            ErrorKind::MissingSubcommand => Some(format!(
                "no command given: expected one of {}",
                generators.join(", ")
            )),
            ErrorKind::InvalidSubcommand => {
                let invalid = match err.get(ContextKind::InvalidSubcommand) {
                    Some(ContextValue::String(arg)) => arg.clone(),
                    _ => return None,
                };
                Some(format!(
                    "unknown command '{}': expected {}",
                    one_line_message(&invalid),
                    generators.join(", ")
                ))
            }
            _ => None,
        };
    }
    if err.kind() == ErrorKind::MissingSubcommand {
        return Some(format!(
            "no generator given: expected one of {} (e.g. '{} dns -- PATTERN')",
            generators.join(", "),
            command.get_name()
        ));
    }
    let invalid = match err.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(arg)) => arg.clone(),
        _ => match err.get(ContextKind::InvalidSubcommand) {
            Some(ContextValue::String(arg)) => arg.clone(),
            _ => return None,
        },
    };
    match err.kind() {
        ErrorKind::InvalidSubcommand => Some(format!(
            "unknown generator '{}': expected {}",
            one_line_message(&invalid),
            generators.join(", ")
        )),
        ErrorKind::UnknownArgument => {
            let flag = invalid.split('=').next().unwrap_or(&invalid);
            let own = command.get_arguments().any(|arg| {
                arg.get_long()
                    .is_some_and(|long| flag == format!("--{long}"))
                    || arg
                        .get_short()
                        .is_some_and(|short| flag == format!("-{short}"))
            });
            own.then(|| {
                format!(
                    "'{flag}' is an option of {0}, not of the generator: put {0}'s options before the generator (e.g. '{0} {flag} ... GENERATOR -- ARGS')",
                    command.get_name()
                )
            })
        }
        _ => None,
    }
}

/// The tools that read captures made by others (tcpdump) and never capture themselves, with
/// how each reads a capture file.
const CAPTURE_READERS: [(&str, &str); 4] = [
    ("triage", "triage flood.pcap"),
    ("filter", "filter -b BYTECODE flood.pcap > hits.pcap"),
    ("pcap2hex", "pcap2hex flood.pcap"),
    ("parsedns", "parsedns flood.pcap"),
];

/// An interface option (`-i eth0`, tcpdump's habit) given to a tool that reads captures: clap
/// would suggest `-- -i`, which reads a file named `-i`; say where captures come from instead.
fn interface_hint(command: &clap::Command, err: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let name = command.get_name();
    let (_, example) = CAPTURE_READERS.iter().find(|(tool, _)| *tool == name)?;
    if err.kind() != ErrorKind::UnknownArgument {
        return None;
    }
    let Some(ContextValue::String(arg)) = err.get(ContextKind::InvalidArg) else {
        return None;
    };
    let flag = arg.split('=').next().unwrap_or(arg);
    let is_interface = flag == "--interface" || (flag.starts_with("-i") && !flag.starts_with("--"));
    is_interface.then(|| {
        format!(
            "'{}': {name} reads captures (files, or '-' for standard input), it does not listen on an interface: capture with tcpdump first (tcpdump -i eth0 -w flood.pcap udp port 53), then read the file ({example})",
            one_line_message(&asm::quote(flag))
        )
    })
}

/// Parses a tool's command line with clap. `Ok(Err(code))` when clap already answered: help or
/// version on stdout (status 0), or a usage error on stderr (status 2).
pub fn parse_args<T: clap::Parser>(
    args: impl IntoIterator<Item = std::ffi::OsString>,
    stdout: &mut dyn io::Write,
    stderr: &mut dyn io::Write,
) -> Result<Result<T, ExitCode>, CliError> {
    Ok(parse_args_matches(args, stdout, stderr)?.map(|(parsed, _)| parsed))
}

/// [`parse_args`], also returning clap's matches (for the order of interleaved options).
pub fn parse_args_matches<T: clap::Parser>(
    args: impl IntoIterator<Item = std::ffi::OsString>,
    stdout: &mut dyn io::Write,
    stderr: &mut dyn io::Write,
) -> Result<Result<(T, clap::ArgMatches), ExitCode>, CliError> {
    let mut command = with_generate_option(T::command());
    let parsed = command.try_get_matches_from_mut(args).and_then(|matches| {
        match matches.get_one::<String>(GENERATE) {
            Some(kind) => Ok(Err(kind.clone())),
            None => T::from_arg_matches(&matches).map(|parsed| Ok((parsed, matches))),
        }
    });
    match parsed {
        Ok(Ok(parsed)) => Ok(Ok(parsed)),
        Ok(Err(kind)) => {
            generate_support_file(&mut command, &kind, stdout)?;
            stdout.flush()?;
            Ok(Err(ExitCode::from(EXIT_OK)))
        }
        Err(err) if err.use_stderr() => {
            let name = command.get_name().to_string();
            let message = usage_hint(&command, &err)
                .unwrap_or_else(|| clap_error_line(&err.render().to_string()));
            writeln!(
                stderr,
                "{name}: {}; see '{name} --help'",
                cut_long_words(&one_line_message(&message))
            )?;
            Ok(Err(ExitCode::from(EXIT_ERROR)))
        }
        Err(err) => {
            write!(stdout, "{}", err.render())?;
            Ok(Err(ExitCode::from(EXIT_OK)))
        }
    }
}

/// The option every tool has for its shell completions and manual page.
const GENERATE: &str = "generate";

/// What `--generate` can print.
const GENERATE_KINDS: [&str; 4] = ["complete-bash", "complete-zsh", "complete-fish", "man"];

fn with_generate_option(command: clap::Command) -> clap::Command {
    // A tool whose generator is required says so itself when `--generate` is not given.
    command.subcommand_required(false).arg(
        clap::Arg::new(GENERATE)
            .long(GENERATE)
            .value_name("KIND")
            .value_parser(GENERATE_KINDS)
            .exclusive(true)
            .help("Print a shell completion script or the manual page (roff) and exit"),
    )
}

/// Writes the one manual page of a tool. A tool with generators (subcommands) gets a section
/// per generator in the same page (its synopsis, options and help: the `dns` patterns, for
/// one) rather than clap_mangen's references to `TOOL-GENERATOR(1)` pages no one installs.
fn render_manual(command: &clap::Command, out: &mut dyn io::Write) -> Result<(), CliError> {
    use clap_mangen::Man;
    let generators: Vec<&clap::Command> = command
        .get_subcommands()
        .filter(|sub| !sub.is_hide_set())
        .collect();
    let man = Man::new(command.clone());
    if generators.is_empty() {
        man.render(out)?;
        return Ok(());
    }
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    for generator in generators {
        writeln!(out, ".SH \"GENERATOR {}\"", generator.get_name())?;
        let page = Man::new(generator.clone());
        let mut sections = Vec::new();
        page.render_synopsis_section(&mut sections)?;
        page.render_description_section(&mut sections)?;
        if generator.get_arguments().next().is_some() {
            page.render_options_section(&mut sections)?;
        }
        if generator.get_after_help().is_some() {
            page.render_extra_section(&mut sections)?;
        }
        // The generator's sections become subsections of its own.
        for line in String::from_utf8_lossy(&sections).lines() {
            match line.strip_prefix(".SH ") {
                Some(heading) => writeln!(out, ".SS {heading}")?,
                None => writeln!(out, "{line}")?,
            }
        }
    }
    if command.get_after_help().is_some() {
        man.render_extra_section(out)?;
    }
    man.render_version_section(out)?;
    Ok(())
}

/// Writes the completion script or manual page `kind` for `command` to `out`.
fn generate_support_file(
    command: &mut clap::Command,
    kind: &str,
    out: &mut dyn io::Write,
) -> Result<(), CliError> {
    use clap_complete::Shell;
    let name = command.get_name().to_string();
    let shell = match kind {
        "complete-bash" => Shell::Bash,
        "complete-zsh" => Shell::Zsh,
        "complete-fish" => Shell::Fish,
        _ => {
            command.build();
            return render_manual(command, out);
        }
    };
    clap_complete::generate(shell, command, name, out);
    Ok(())
}
