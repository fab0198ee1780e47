//! `hex2pcap`: hex lines (one packet each) to a pcap file.

use std::ffi::OsString;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use crate::cli::{hex_line_data, parse_args, CliError, EXIT_OK};
use crate::pcap::Writer;

const EXAMPLES: &str = "\
Input: one packet per line in hex. Empty lines and lines starting with # or ; are skipped;
anything after a tab (pcap2hex --ascii) is ignored; spaces and colons between bytes are allowed.

Examples:
  pcap2hex flood.pcap | hex2pcap > copy.pcap
  hex2pcap --linktype raw --ts-step 0.001 packets.hex > raw.pcap
  echo 4500001c... | hex2pcap --linktype ipv4 | tcpdump -r - -n";

/// Write hex lines (one packet per line) as a pcap file.
#[derive(Debug, Parser)]
#[command(name = "hex2pcap", version, about = "Write hex lines, one packet each, as a pcap file", after_help = EXAMPLES)]
struct Args {
    /// Link type of the packets: ether, raw, ipv4, ipv6, sll, sll2, null, or a LINKTYPE number.
    #[arg(short = 'l', long, default_value = "ether", value_name = "TYPE")]
    linktype: String,
    /// Seconds between packet timestamps (0: all zero).
    #[arg(
        short = 't',
        long = "ts-step",
        default_value = "0",
        value_name = "SECONDS"
    )]
    ts_step: f64,
    /// Hex files; stdin when none.
    files: Vec<String>,
}

fn linktype_number(name: &str) -> Result<u32, String> {
    Ok(match name.to_ascii_lowercase().as_str() {
        "ether" | "ethernet" | "en10mb" => 1,
        "raw" => 101,
        "ipv4" => 228,
        "ipv6" => 229,
        "sll" | "linux_sll" => 113,
        "sll2" | "linux_sll2" => 276,
        "null" | "loopback" => 0,
        other => other.parse().map_err(|_| {
            format!("unknown link type '{name}': expected ether, raw, ipv4, ipv6, sll, sll2, null or a number")
        })?,
    })
}

/// The largest packet written: libpcap's largest snapshot length (262144), so tcpdump reads
/// every file hex2pcap writes.
const MAX_PACKET: usize = 262_144;

/// Decodes one input line; `Ok(None)` for lines without a packet.
fn decode_line(line: &str) -> Result<Option<Vec<u8>>, String> {
    let Some(data) = hex_line_data(line) else {
        return Ok(None);
    };
    // Columns count from the start of the line, leading blanks included.
    let lead = line.len() - line.trim_start().len();
    let digits: String = data.chars().filter(|c| *c != ' ' && *c != ':').collect();
    if let Some((col, c)) = data
        .char_indices()
        .find(|(_, c)| !c.is_ascii_hexdigit() && *c != ' ' && *c != ':')
    {
        return Err(format!(
            "column {}: '{}' is not a hex digit",
            lead + col + 1,
            c.escape_default()
        ));
    }
    if digits.len() % 2 != 0 {
        return Err(format!(
            "{} hex digits: expected an even number (two per byte)",
            digits.len()
        ));
    }
    hex::decode(&digits).map(Some).map_err(|e| e.to_string())
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
    let linktype = linktype_number(&args.linktype)?;
    if !(args.ts_step.is_finite() && args.ts_step >= 0.0) {
        return Err(format!(
            "bad --ts-step {}: expected a number of seconds >= 0",
            args.ts_step
        )
        .into());
    }
    let step = Duration::try_from_secs_f64(args.ts_step)
        .map_err(|_| format!("bad --ts-step {}: too large", args.ts_step))?;
    // Everything is decoded before anything is written: a bad line leaves no partial output.
    let mut packets = Vec::new();
    let mut inputs: Vec<(String, Box<dyn BufRead + '_>)> = Vec::new();
    let mut stdin = Some(stdin);
    let names: Vec<&str> = if args.files.is_empty() {
        vec!["-"]
    } else {
        args.files.iter().map(String::as_str).collect()
    };
    for path in names {
        if path == "-" {
            let input = stdin
                .take()
                .ok_or("'-' (standard input) given more than once")?;
            inputs.push(("<stdin>".into(), Box::new(BufReader::new(input))));
        } else {
            let file = File::open(path).map_err(|e| format!("cannot open '{path}': {e}"))?;
            inputs.push((path.to_string(), Box::new(BufReader::new(file))));
        }
    }
    for (name, input) in inputs {
        for (index, line) in input.lines().enumerate() {
            let line = line.map_err(|e| format!("{name}: line {}: {e}", index + 1))?;
            if let Some(packet) =
                decode_line(&line).map_err(|e| format!("{name}: line {}: {e}", index + 1))?
            {
                if packet.len() > MAX_PACKET {
                    return Err(format!(
                        "{name}: line {}: a packet of {} bytes, more than the {MAX_PACKET} a pcap file holds for tcpdump",
                        index + 1,
                        packet.len()
                    )
                    .into());
                }
                packets.push(packet);
            }
        }
    }
    // pcap stores 32-bit seconds: the last timestamp must fit before anything is written.
    let last = u32::try_from(packets.len().saturating_sub(1)).unwrap_or(u32::MAX);
    if step
        .checked_mul(last)
        .map_or(true, |end| end.as_secs() > u64::from(u32::MAX))
    {
        return Err(format!(
            "--ts-step {}: the timestamp of packet {} would not fit in pcap's 32-bit seconds",
            args.ts_step,
            packets.len()
        )
        .into());
    }
    let mut writer = Writer::new(
        BufWriter::with_capacity(1 << 16, stdout),
        linktype,
        false,
        0,
    )?;
    let mut timestamp = Duration::ZERO;
    for packet in &packets {
        writer.write(timestamp, packet.len() as u32, packet)?;
        timestamp += step;
    }
    writer.into_inner().flush()?;
    Ok(ExitCode::from(EXIT_OK))
}
