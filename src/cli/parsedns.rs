//! `parsedns`: a layer-by-layer report of DNS packets from pcap/pcapng captures or hex lines.
//!
//! Inputs are read as streams and each packet is reported as it is read: a capture is told
//! from hex lines by its first bytes ([`hex::sniff`]) and read through
//! [`crate::pcap::Reader`]. A hex line is refused beyond [`MAX_LINE`] bytes (before it is held
//! whole), so memory stays bounded whatever the input.
//!
//! This module holds the arguments, the reading of inputs and the output; the report of a
//! packet ([`Report`]) is the library's dissection, rendered as text or as one JSON object per
//! packet.

use std::cell::Cell;
use std::ffi::OsString;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use clap::Parser;

use crate::cli::{for_each_line, hex_line_too_long, parse_args, CliError, LinesError, EXIT_OK};
use crate::dns::dissect::{Origin, Report};
use crate::pcap;
use crate::pcap::hex::{self, MAX_LINE, MAX_PACKET};

const EXAMPLES: &str = "\
Input: pcap or pcapng captures (any link type the tools read), or text with one packet per
line as hex: Ethernet frames (as pcap2hex prints them) or packets starting at the IP header
(anything after a tab is ignored; blank lines and lines starting with # or ; are skipped;
a first column SECONDS.FRACTION, as pcap2hex -t prints it, is the packet's time).
Each INPUT is '-' (stdin), a file, or a packet as hex; stdin when there is none. The format of
a stream is told by its first bytes. Each report starts with the packet number and time
(captures) or the line or argument number (hex).

Examples:
  parsedns flood.pcap | less
  tcpdump -w - -c 10 udp port 53 | parsedns -
  pcap2hex flood.pcap | head -3 | parsedns
  parsedns --json 45000038...  | jq .dns.questions";

/// Show DNS packets layer by layer, from captures or hex.
#[derive(Debug, Parser)]
#[command(name = "parsedns", version, about = "Show DNS packets layer by layer, from pcap/pcapng captures or hex", after_help = EXAMPLES)]
struct Args {
    /// One JSON object per packet instead of text.
    #[arg(short = 'j', long)]
    json: bool,
    /// Captures, hex files, '-' for stdin, or packets as hex; stdin when none.
    inputs: Vec<String>,
}

/// Writes reports as text or JSON.
struct Output<'a> {
    out: BufWriter<&'a mut dyn Write>,
    json: bool,
    /// The text of one report, rendered in memory (cheaper than formatting into the writer
    /// piece by piece) and written whole.
    text: String,
}

impl Output<'_> {
    fn emit(&mut self, report: &Report) -> Result<(), CliError> {
        if self.json {
            serde_json::to_writer(&mut self.out, report).map_err(io::Error::from)?;
            self.out.write_all(b"\n")?;
        } else {
            use std::fmt::Write as _;
            self.text.clear();
            writeln!(self.text, "{report}")?;
            self.out.write_all(self.text.as_bytes())?;
        }
        Ok(())
    }
}

/// Decodes the packet of a hex line into `packet` ([`hex`]'s line rules and decoder): its
/// timestamp column, if any, or `None` for a blank or comment line.
fn hex_line_packet(line: &[u8], packet: &mut Vec<u8>) -> Result<Option<Option<Duration>>, String> {
    let (timestamp, text, column) = match hex::parse_line(line).map_err(|e| e.to_string())? {
        hex::Line::Empty => return Ok(None),
        hex::Line::Packet {
            timestamp,
            hex,
            column,
        } => (timestamp, hex, column),
    };
    packet.clear();
    hex::decode_into(text, packet).map_err(|e| e.in_line(text, column).to_string())?;
    if packet.len() > MAX_PACKET {
        return Err(format!(
            "a packet of {} bytes, more than the {MAX_PACKET} a pcap file holds",
            packet.len()
        ));
    }
    Ok(Some(timestamp))
}

/// A reader that notes when a read returned less than asked: the input had nothing more
/// ready (a pipe drained), so the reports written so far are flushed rather than held back
/// until the output buffer fills.
struct Watched<R> {
    inner: R,
    drained: Rc<Cell<bool>>,
}

impl<R: Read> Read for Watched<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n < buf.len() {
            self.drained.set(true);
        }
        Ok(n)
    }
}

/// Reports every packet of a stream: a capture (told by its magic number) or hex lines.
/// `name` (`<stdin>` for standard input) prefixes error messages.
fn run_stream(name: &str, input: impl Read, output: &mut Output) -> Result<(), CliError> {
    let place = |what: String| -> CliError { format!("{name}: {what}").into() };
    let drained = Rc::new(Cell::new(false));
    let (kind, input) = hex::sniff(Watched {
        inner: input,
        drained: Rc::clone(&drained),
    })
    .map_err(|e| place(format!("cannot read: {e}")))?;
    // Reading ahead is not a drained input.
    drained.set(false);
    let emit = |output: &mut Output, report: &Report| -> Result<(), CliError> {
        output.emit(report)?;
        if drained.replace(false) {
            output.out.flush()?;
        }
        Ok(())
    };
    if kind == hex::StreamKind::Capture {
        let mut reader = pcap::Reader::new(input).map_err(|e| place(e.to_string()))?;
        while let Some(packet) = reader.next_packet().map_err(|e| place(e.to_string()))? {
            let mut report = Report::of_frame(packet.linktype, packet.data);
            report.origin = Some(Origin::Packet {
                packet: packet.number,
                time: packet.timestamp,
            });
            emit(output, &report)?;
        }
        return Ok(());
    }
    let mut input = BufReader::with_capacity(1 << 16, input);
    let mut packet = Vec::new();
    for_each_line(&mut input, MAX_LINE, |number, line| {
        let Some(time) =
            hex_line_packet(line, &mut packet).map_err(|e| place(format!("line {number}: {e}")))?
        else {
            return Ok(());
        };
        let mut report = Report::of_unknown_link(&packet);
        report.origin = Some(Origin::Line { line: number, time });
        emit(output, &report)
    })
    .map_err(|e| match e {
        LinesError::Read { line, error } => place(format!("line {line}: cannot read: {error}")),
        LinesError::TooLong { line } => place(hex_line_too_long(line)),
        LinesError::Line(e) => e,
    })
}

/// Whether a command-line input is a packet written as hex (digits, spaces, colons) rather
/// than a file name.
fn looks_like_hex(input: &str) -> bool {
    input.bytes().any(|b| b.is_ascii_hexdigit())
        && input
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b.is_ascii_whitespace() || b == b':')
}

/// Runs `parsedns` with `args` (including the program name).
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
    let mut output = Output {
        out: BufWriter::with_capacity(1 << 16, stdout),
        json: args.json,
        text: String::new(),
    };
    let stdin_only = ["-".to_string()];
    let inputs = if args.inputs.is_empty() {
        &stdin_only[..]
    } else {
        &args.inputs[..]
    };
    for (index, input) in inputs.iter().enumerate() {
        if input == "-" {
            run_stream("<stdin>", &mut *stdin, &mut output)?;
        } else if looks_like_hex(input) && !std::path::Path::new(input).exists() {
            let argument = index as u64 + 1;
            let packet =
                hex::decode_packet(input).map_err(|e| format!("argument {argument}: {e}"))?;
            let mut report = Report::of_unknown_link(&packet);
            report.origin = Some(Origin::Argument { argument });
            output.emit(&report)?;
        } else {
            let file =
                std::fs::File::open(input).map_err(|e| format!("cannot open '{input}': {e}"))?;
            run_stream(input, file, &mut output)?;
        }
    }
    output.out.flush()?;
    Ok(ExitCode::from(EXIT_OK))
}
