//! `pcap2hex`: one packet per line, as hex.

use std::ffi::OsString;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::process::ExitCode;

use clap::Parser;

use crate::cli::{parse_args, CliError, EXIT_OK};
use crate::pcap::{link, scrub, Reader};

const EXAMPLES: &str = "\
By default every frame is turned into plain Ethernet (Linux cooked SLL/SLL2, VLAN tags, raw IP
and BSD loopback are converted; the real ethertype is kept), so the IP header is at offset 14.

Examples:
  pcap2hex < flood.pcap | head
  pcap2hex --ascii any.pcapng | grep -i example
  pcap2hex --scrub flood.pcap > shareable.hex      anonymized, same structure and lengths
  pcap2hex flood.pcap | parsedns";

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
    /// Capture files; stdin when none.
    files: Vec<String>,
}

fn write_line(
    out: &mut impl Write,
    frame: &[u8],
    ascii: bool,
    line: &mut String,
) -> std::io::Result<()> {
    line.clear();
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for &b in frame {
        line.push(char::from(DIGITS[usize::from(b >> 4)]));
        line.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    if ascii {
        line.push('\t');
        line.extend(frame.iter().map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                char::from(b)
            } else {
                '.'
            }
        }));
    }
    line.push('\n');
    out.write_all(line.as_bytes())
}

fn dump<R: Read>(name: &str, input: R, args: &Args, out: &mut impl Write) -> Result<(), CliError> {
    let mut reader = Reader::new(input).map_err(|e| format!("{name}: {e}"))?;
    let mut frame = Vec::with_capacity(65536);
    let mut line = String::with_capacity(1 << 17);
    loop {
        let packet = match reader.next_packet() {
            Ok(Some(packet)) => packet,
            Ok(None) => return Ok(()),
            Err(e) => return Err(format!("{name}: {e}").into()),
        };
        frame.clear();
        let normalized =
            !args.no_normalize && link::to_ethernet(packet.linktype, packet.data, &mut frame);
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
        write_line(out, &frame, args.ascii, &mut line)?;
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
    let mut result = Ok(());
    if args.files.is_empty() {
        result = dump("<stdin>", &mut *stdin, &args, &mut out);
    }
    for path in &args.files {
        result = if path == "-" {
            dump("<stdin>", &mut *stdin, &args, &mut out)
        } else {
            match File::open(path) {
                Ok(file) => dump(path, file, &args, &mut out),
                Err(e) => Err(format!("cannot open '{path}': {e}").into()),
            }
        };
        if result.is_err() {
            break;
        }
    }
    // Lines already produced are kept, even when a later packet is damaged.
    out.flush()?;
    result?;
    Ok(ExitCode::from(EXIT_OK))
}
