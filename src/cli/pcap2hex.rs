//! `pcap2hex`: one packet per line, as hex.

use std::ffi::OsString;
use std::fs::File;
use std::io::{BufWriter, IsTerminal, Read, Write};
use std::process::ExitCode;

use clap::Parser;

use crate::cli::{parse_args, CliError, Progress, EXIT_OK};
use crate::pcap::{hex, link, scrub, Reader};

const EXAMPLES: &str = "\
By default every frame is turned into plain Ethernet (Linux cooked SLL/SLL2, VLAN tags, raw IP
and BSD loopback are converted; the real ethertype is kept), so the IP header is at offset 14.

Examples:
  pcap2hex < flood.pcap | head
  pcap2hex --ascii any.pcapng | grep -i example
  pcap2hex --scrub flood.pcap > shareable.hex      anonymized, same structure and lengths
  pcap2hex flood.pcap | parsedns
  pcap2hex -t flood.pcap | hex2pcap > copy.pcap    timestamps kept (to the nanosecond)";

/// Print the packets of pcap/pcapng captures as hex, one per line.
#[derive(Debug, Parser)]
#[command(name = "pcap2hex", version, about = "Print pcap/pcapng packets as hex, one per line", after_help = EXAMPLES)]
struct Args {
    /// Append a tab and the printable characters of the packet.
    #[arg(short = 'a', long)]
    ascii: bool,
    /// Anonymize link-layer and IP addresses and, in DNS, every name, A/AAAA address and
    /// client-subnet address (deterministic: the same input gives the same output; lengths and
    /// label character classes kept; the payload of non-IP frames and other record data, such
    /// as TXT, is left as it is).
    #[arg(short = 's', long)]
    scrub: bool,
    /// Print frames as captured, without turning them into Ethernet.
    #[arg(short = 'n', long = "no-normalize")]
    no_normalize: bool,
    /// Start each line with the packet's timestamp, SECONDS.NANOSECONDS and a space
    /// (hex2pcap reads it back, keeping the timestamps).
    #[arg(short = 't', long)]
    timestamps: bool,
    /// Capture files; stdin when none.
    files: Vec<String>,
}

fn write_line(
    out: &mut impl Write,
    timestamp: Option<std::time::Duration>,
    frame: &[u8],
    ascii: bool,
    line: &mut Vec<u8>,
) -> std::io::Result<()> {
    line.clear();
    if let Some(t) = timestamp {
        write!(line, "{}.{:09} ", t.as_secs(), t.subsec_nanos())?;
    }
    hex::encode_into(frame, line);
    if ascii {
        line.push(b'\t');
        line.extend(frame.iter().map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b
            } else {
                b'.'
            }
        }));
    }
    line.push(b'\n');
    out.write_all(line)
}

fn dump<R: Read>(
    name: &str,
    input: R,
    args: &Args,
    out: &mut impl Write,
    progress: &mut Progress,
    stderr: &mut dyn Write,
) -> Result<(), CliError> {
    let mut reader = Reader::new(input).map_err(|e| format!("{name}: {e}"))?;
    let mut frame = Vec::with_capacity(65536);
    let mut line = Vec::with_capacity(1 << 17);
    loop {
        let position = reader.position();
        let packet = match reader.next_packet() {
            Ok(Some(packet)) => packet,
            Ok(None) => return Ok(()),
            Err(e) => return Err(format!("{name}: {e}").into()),
        };
        progress.tick(stderr, packet.number, position)?;
        frame.clear();
        // A normalized frame is the packet alone: without the FCS the capture declares.
        let without_fcs = &packet.data[..packet.data.len().saturating_sub(packet.fcs_len as usize)];
        let normalized =
            !args.no_normalize && link::to_ethernet(packet.linktype, without_fcs, &mut frame);
        if !normalized {
            frame.extend_from_slice(packet.data);
        }
        if args.scrub {
            if normalized {
                scrub::scrub_ethernet(&mut frame);
            } else {
                scrub::scrub_frame(packet.linktype, &mut frame);
            }
        }
        let timestamp = args.timestamps.then_some(packet.timestamp);
        write_line(out, timestamp, &frame, args.ascii, &mut line)?;
    }
}

/// Runs `pcap2hex` with `args` (including the program name).
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
    let mut out = BufWriter::with_capacity(1 << 16, stdout);
    // Progress only where a person watches: stderr a terminal.
    let mut progress = Progress::new("pcap2hex", std::io::stderr().is_terminal());
    let mut result = Ok(());
    if args.files.is_empty() {
        result = dump(
            "<stdin>",
            &mut *stdin,
            &args,
            &mut out,
            &mut progress,
            stderr,
        );
    }
    for path in &args.files {
        result = if path == "-" {
            progress.input_size(None);
            dump(
                "<stdin>",
                &mut *stdin,
                &args,
                &mut out,
                &mut progress,
                stderr,
            )
        } else {
            match File::open(path) {
                Ok(file) => {
                    progress.input_size(file.metadata().ok().map(|m| m.len()));
                    dump(path, file, &args, &mut out, &mut progress, stderr)
                }
                Err(e) => Err(format!("cannot open '{path}': {e}").into()),
            }
        };
        if result.is_err() {
            break;
        }
    }
    // Lines already produced are kept, even when a later packet is damaged.
    out.flush()?;
    progress.finish(stderr)?;
    result?;
    Ok(ExitCode::from(EXIT_OK))
}
