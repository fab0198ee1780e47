//! `hex2pcap`: hex lines (one packet each) or an offset-column hexdump to a pcap file.
//!
//! Streaming: each line is read (at most [`MAX_LINE`] bytes), checked and decoded before its
//! packet is written, so memory stays constant whatever the input. Output is collected in a
//! buffer of [`PENDING`] bytes and handed on only in whole records: an error drops what is
//! still pending. With `-w FILE` the output goes to an [`AtomicFile`], renamed over FILE on
//! success; when standard output is a regular file, [`StdoutRollback`] cuts it back on error.
//! Only a pipe that already received more than [`PENDING`] bytes keeps the packets before a
//! bad line (a valid pcap, cut after the last good packet).
//!
//! While the temporary file of `-w` exists, SIGINT, SIGTERM and SIGHUP remove it before the
//! process dies of the signal (the guard's `remove_on_signal`). Without `-w`, a terminal as standard output is refused (a pcap file is binary).

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use crate::cli::output::AtomicFile;
use crate::cli::{for_each_line, hex_line_too_long, parse_args, CliError, LinesError, EXIT_OK};
use crate::pcap::hex::{self, Line, MAX_LINE, MAX_PACKET};
use crate::pcap::{link, Writer};

const EXAMPLES: &str = "\
Input: one packet per line in hex. Empty lines and lines starting with # or ; are skipped;
anything after a tab (pcap2hex --ascii) is ignored; spaces and colons between bytes are allowed.
A first column SECONDS.FRACTION (pcap2hex --timestamps) gives each packet its timestamp (the
file then has nanosecond timestamps). Offset-column hexdumps (od -Ax -tx1, hexdump -C,
text2pcap's input) are recognised by their first line (offset 0 with 4 or more digits, then
bytes as 2-digit groups; --format forces either reading): a packet per offset restarting at 0.
Lines are at most 1048640 bytes; packets at most 262144 bytes (what tcpdump reads).

Output: nothing is written for a bad input when the output is a file (-w FILE, or standard
output redirected to a file). Into a pipe, output is held back up to 8 MiB: beyond that, the
packets before a bad line have been written (a valid pcap, cut after the last good packet).

Examples:
  pcap2hex flood.pcap | hex2pcap > copy.pcap
  pcap2hex -t flood.pcap | hex2pcap -w same-timestamps.pcap
  hex2pcap --linktype raw --ts-step 0.001 packets.hex > raw.pcap
  od -Ax -tx1 -v packet.bin | hex2pcap | tcpdump -r - -n
  echo 4500001c... | hex2pcap --linktype ipv4 | tcpdump -r - -n";

/// How the input is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    /// Hexdump when the first packet line starts with a zero offset column, else lines.
    Auto,
    /// One packet per line.
    Lines,
    /// Offset-column hexdump (od -Ax -tx1, hexdump -C): a packet per offset restarting at 0.
    Hexdump,
}

/// Write hex lines (one packet per line) as a pcap file.
#[derive(Debug, Parser)]
#[command(name = "hex2pcap", version, about = "Write hex lines, one packet each, as a pcap file", after_help = EXAMPLES)]
struct Args {
    /// Link type of the packets: ether, raw, ipv4, ipv6, sll, sll2, null, dlt_raw, or a
    /// LINKTYPE number libpcap knows (0 to 289).
    #[arg(short = 'l', long, default_value = "ether", value_name = "TYPE", value_parser = link::parse)]
    linktype: u32,
    /// Seconds between packet timestamps (0: all zero) when lines have no timestamp column.
    #[arg(
        short = 't',
        long = "ts-step",
        default_value = "0",
        value_name = "SECONDS"
    )]
    ts_step: f64,
    /// Input format.
    #[arg(long, value_enum, default_value = "auto")]
    format: Format,
    /// Write to FILE (through a temporary file renamed on success) instead of standard output.
    #[arg(short = 'w', long, value_name = "FILE")]
    write: Option<PathBuf>,
    /// Hex files; stdin when none.
    files: Vec<String>,
}

/// Output held back before it is handed on (whole records only).
pub const PENDING: usize = 8 << 20;

/// The output: records collect in memory and go out in whole records once [`PENDING`] bytes
/// are held, so an error drops what is held.
struct Pending<'a> {
    sink: &'a mut dyn Write,
    held: Vec<u8>,
}

impl Write for Pending<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.held.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Pending<'_> {
    /// Hands on what is held once it is large: called between records.
    fn commit(&mut self) -> io::Result<()> {
        if self.held.len() >= PENDING {
            self.release()?;
        }
        Ok(())
    }

    fn release(&mut self) -> io::Result<()> {
        self.sink.write_all(&self.held)?;
        self.held.clear();
        Ok(())
    }
}

/// Where packets go and how they are stamped.
struct Packets<'a> {
    writer: Option<Writer<Pending<'a>>>,
    pending: Option<Pending<'a>>,
    linktype: u32,
    step: Duration,
    step_text: f64,
    /// Whether lines carry a timestamp column (decided by the first packet line).
    timestamps: Option<bool>,
    count: u64,
    data: Vec<u8>,
}

impl<'a> Packets<'a> {
    fn start(&mut self, nanoseconds: bool) -> io::Result<&mut Writer<Pending<'a>>> {
        if self.writer.is_none() {
            let pending = self
                .pending
                .take()
                .expect("output kept until the writer takes it");
            self.writer = Some(Writer::new(pending, self.linktype, nanoseconds)?);
        }
        Ok(self.writer.as_mut().expect("started above"))
    }

    /// Writes `self.data` as the next packet.
    fn emit(&mut self, timestamp: Option<Duration>) -> Result<(), String> {
        if self.data.len() > MAX_PACKET {
            return Err(format!(
                "a packet of {} bytes, more than the {MAX_PACKET} a pcap file holds for tcpdump",
                self.data.len()
            ));
        }
        let index = self.count;
        self.count += 1;
        let timestamp = match timestamp {
            Some(t) => {
                if t.as_secs() > u64::from(u32::MAX) {
                    return Err(format!(
                        "timestamp {}.{:09} does not fit in pcap's 32-bit seconds",
                        t.as_secs(),
                        t.subsec_nanos()
                    ));
                }
                t
            }
            None => {
                let nanos = self.step.as_nanos() * u128::from(index);
                if nanos / 1_000_000_000 > u128::from(u32::MAX) {
                    return Err(format!(
                        "--ts-step {}: the timestamp of packet {} would not fit in pcap's 32-bit seconds",
                        self.step_text, self.count
                    ));
                }
                Duration::from_nanos(nanos as u64)
            }
        };
        let nanoseconds = self.timestamps == Some(true);
        let data = std::mem::take(&mut self.data);
        let writer = self.start(nanoseconds).map_err(|e| e.to_string())?;
        let result = writer
            .write(timestamp, data.len() as u32, &data)
            .and_then(|_| writer.get_mut().commit());
        self.data = data;
        self.data.clear();
        result.map_err(|e| format!("cannot write: {e}"))
    }
}

/// An offset-column hexdump packet being gathered.
#[derive(Default)]
struct Dump {
    /// A line `*` (od: lines repeated) was seen: the previous line repeats up to the next offset.
    repeat: bool,
    /// The bytes of the previous line.
    previous: Vec<u8>,
    line_bytes: Vec<u8>,
    /// The offset of the packet's previous line: offsets only go forward within a packet.
    last_offset: Option<usize>,
}

fn read_input(
    name: &str,
    input: &mut dyn BufRead,
    format: Format,
    out: &mut Packets<'_>,
) -> Result<(), String> {
    let mut dump: Option<Dump> = match format {
        Format::Hexdump => Some(Dump::default()),
        _ => None,
    };
    let mut decided = format != Format::Auto;
    for_each_line(input, MAX_LINE, |number, line| {
        let at = |e: String| format!("line {number}: {e}");
        if let Some(state) = dump.as_mut() {
            return dump_line(line, state, out).map_err(at);
        }
        let (timestamp, text, column) =
            match hex::parse_line(line).map_err(|e| at(e.to_string()))? {
                Line::Empty => return Ok(()),
                Line::Packet {
                    timestamp,
                    hex,
                    column,
                } => (timestamp, hex, column),
            };
        if !decided {
            decided = true;
            if timestamp.is_none() && hex::starts_offset_dump(line) {
                let mut state = Dump::default();
                dump_line(line, &mut state, out).map_err(at)?;
                dump = Some(state);
                return Ok(());
            }
        }
        match (out.timestamps, timestamp.is_some()) {
            (None, has) => {
                if has && out.step_text != 0.0 {
                    return Err(at(
                        "a timestamp column and --ts-step: give one or the other".into(),
                    ));
                }
                out.timestamps = Some(has);
            }
            (Some(true), false) => {
                return Err(at(
                    "no timestamp column, but earlier packet lines have one".into()
                ))
            }
            (Some(false), true) => {
                return Err(at(
                    "a timestamp column, but earlier packet lines have none".into()
                ))
            }
            _ => {}
        }
        hex::decode_into(text, &mut out.data).map_err(|e| {
            at(match e {
                hex::HexError::BadDigit { offset, found, .. } => format!(
                    "column {}: '{}' is not a hex digit",
                    column + offset + 1,
                    found.escape_debug()
                ),
                other => other.to_string(),
            })
        })?;
        out.emit(timestamp).map_err(at)
    })
    .map_err(|e| {
        let what = match e {
            LinesError::Read { error, .. } => format!("cannot read: {error}"),
            LinesError::TooLong { line } => hex_line_too_long(line),
            LinesError::Line(e) => e,
        };
        format!("{name}: {what}")
    })?;
    if let Some(state) = dump.as_mut() {
        finish_dump(state, out).map_err(|e| format!("{name}: at the end: {e}"))?;
    }
    Ok(())
}

/// One line of an offset-column hexdump.
fn dump_line(line: &[u8], state: &mut Dump, out: &mut Packets<'_>) -> Result<(), String> {
    let text = String::from_utf8_lossy(line);
    let trimmed = text.trim();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return Ok(());
    }
    if trimmed == "*" {
        state.repeat = true;
        return Ok(());
    }
    let Some((offset, bytes, _)) = hex::parse_offset_line(line) else {
        return Err(format!(
            "'{}' is not a hexdump line (a hex offset, then bytes)",
            trimmed
                .chars()
                .take(40)
                .collect::<String>()
                .escape_default()
        ));
    };
    out.timestamps.get_or_insert(false);
    state.line_bytes.clear();
    hex::decode_into(bytes, &mut state.line_bytes).map_err(|e| e.to_string())?;
    if offset == 0 && (!out.data.is_empty() || state.repeat) {
        finish_dump(state, out)?;
    }
    let offset = usize::try_from(offset).unwrap_or(usize::MAX);
    if let Some(last) = state
        .last_offset
        .filter(|&last| offset != 0 && offset <= last)
    {
        return Err(format!(
            "offset {offset:#x} goes back (the line before is at {last:#x}): a hexdump's offsets only grow within a packet, and a packet starts at offset 0"
        ));
    }
    state.last_offset = Some(offset);
    if offset > MAX_PACKET {
        return Err(format!(
            "offset {offset:#x}: a packet longer than the {MAX_PACKET} bytes a pcap file holds for tcpdump"
        ));
    }
    if state.repeat {
        // od's '*': the previous line again until this offset.
        state.repeat = false;
        if state.previous.is_empty() {
            return Err("'*' (repeated lines) with no line before it".into());
        }
        while out.data.len() < offset {
            let room = offset - out.data.len();
            let take = room.min(state.previous.len());
            out.data.extend_from_slice(&state.previous[..take]);
        }
    }
    if offset < out.data.len() {
        // The line before held more byte-like groups than its offsets allow: an ASCII column
        // that looked like hex.
        out.data.truncate(offset);
    } else if offset > out.data.len() {
        return Err(format!(
            "offset {offset:#x}, but the packet so far has {:#x} bytes",
            out.data.len()
        ));
    }
    out.data.extend_from_slice(&state.line_bytes);
    std::mem::swap(&mut state.previous, &mut state.line_bytes);
    Ok(())
}

fn finish_dump(state: &mut Dump, out: &mut Packets<'_>) -> Result<(), String> {
    if state.repeat {
        return Err("'*' (repeated lines) with no offset after it".into());
    }
    if !out.data.is_empty() {
        out.emit(None)?;
    }
    state.previous.clear();
    state.last_offset = None;
    Ok(())
}

/// Cuts standard output back to where it was when it is a regular file, so a failed run
/// leaves no half-written file behind `hex2pcap > out.pcap`.
pub struct StdoutRollback {
    file: Option<(File, u64)>,
}

impl StdoutRollback {
    /// Notes where standard output is, if it is a regular file.
    pub fn capture() -> StdoutRollback {
        use std::os::fd::AsFd;
        let file = io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .ok()
            .map(File::from)
            .filter(|f| f.metadata().is_ok_and(|m| m.is_file()))
            .and_then(|mut f| f.stream_position().ok().map(|pos| (f, pos)));
        StdoutRollback { file }
    }

    /// Cuts the file back to the noted position.
    pub fn apply(self) {
        if let Some((file, pos)) = self.file {
            let _ = file.set_len(pos);
        }
    }
}

/// Runs `hex2pcap` with `args` (including the program name).
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
    if !(args.ts_step.is_finite() && args.ts_step >= 0.0) {
        return Err(format!(
            "bad --ts-step {}: expected a number of seconds >= 0",
            args.ts_step
        )
        .into());
    }
    let step = Duration::try_from_secs_f64(args.ts_step)
        .map_err(|_| format!("bad --ts-step {}: too large", args.ts_step))?;
    if args.write.is_none() {
        crate::cli::refuse_terminal_output(Some("give -w FILE"))?;
    }
    let mut temp = None;
    let mut file_sink;
    let sink: &mut dyn Write = match &args.write {
        Some(path) => {
            let (t, file) = AtomicFile::create(path, 0o666, true)?;
            temp = Some(t);
            file_sink = file;
            &mut file_sink
        }
        None => stdout,
    };
    let mut out = Packets {
        writer: None,
        pending: Some(Pending {
            sink,
            held: Vec::with_capacity(PENDING + MAX_PACKET + 64),
        }),
        linktype: args.linktype,
        step,
        step_text: args.ts_step,
        timestamps: None,
        count: 0,
        data: Vec::with_capacity(MAX_PACKET + 1),
    };
    let names: Vec<&str> = if args.files.is_empty() {
        vec!["-"]
    } else {
        args.files.iter().map(String::as_str).collect()
    };
    if names.iter().filter(|n| **n == "-").count() > 1 {
        return Err("'-' (standard input) given more than once".into());
    }
    let mut stdin = Some(stdin);
    for path in names {
        let (name, mut input): (String, Box<dyn BufRead + '_>) = if path == "-" {
            let input = stdin.take().expect("'-' is given once");
            (
                "<stdin>".into(),
                Box::new(BufReader::with_capacity(1 << 20, input)),
            )
        } else {
            let file = File::open(path).map_err(|e| format!("cannot open '{path}': {e}"))?;
            (
                path.to_string(),
                Box::new(BufReader::with_capacity(1 << 20, file)),
            )
        };
        read_input(&name, &mut input, args.format, &mut out)?;
    }
    let mut pending = match out.writer.take() {
        Some(writer) => writer.into_inner(),
        None => {
            Writer::new(out.pending.take().expect("output"), args.linktype, false)?.into_inner()
        }
    };
    pending.release()?;
    pending.sink.flush()?;
    if let Some(temp) = temp {
        temp.persist()?;
    }
    Ok(ExitCode::from(EXIT_OK))
}
