//! `bpfgen`: generate classic BPF programs that match packet floods.

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use crate::asm::{format_program, Format};
use crate::cli::{parse_args, CliError, EXIT_OK};
use crate::gen::{generate, help_for_tool, GenError, GenOptions};

const EXAMPLES: &str = "\
Generators:
  dns PATTERN...      DNS queries whose first question name matches a pattern
  dns_validate        malformed DNS requests
  suffix HEX...       packets ending with the given bytes
  tcpdump EXPR...     a tcpdump expression, compiled by the system's tcpdump
  (bpfgen GENERATOR --help explains one)

Examples:
  bpfgen dns -- '*.www.example.uk'              xt_bpf bytecode (packets start at the IP header)
  bpfgen -o 14 dns -- '*.www.example.uk'        for Ethernet captures (filter, tcpdump)
  bpfgen -s dns -- -i '*.example.net'           readable assembly with comments
  bpfgen -6 dns_validate -- --strict            IPv6, malformed queries
  bpfgen -n suffix -- 00 29 10 00 00            packets NOT ending with these bytes";

/// Generate classic BPF programs that match packet floods.
#[derive(Debug, Parser)]
#[command(
    name = "bpfgen",
    version,
    about = "Generate classic BPF programs that match packet floods",
    long_about = "Generates a cBPF program with GENERATOR and prints it as xt_bpf bytecode \
('N,c t f k,...'), ready for iptables -m bpf --bytecode or filter -b. Programs return 65535 \
for a match and 0 otherwise. Options for bpfgen come before GENERATOR; the generator's own \
arguments come after it (use -- before them).",
    after_help = EXAMPLES
)]
struct Args {
    /// IPv6 instead of IPv4.
    #[arg(short = '6', long = "inet6")]
    inet6: bool,
    /// Match what the generator would not match.
    #[arg(short = 'n', long)]
    negate: bool,
    /// Bytes before the IP header: 0 for iptables (default), 14 for Ethernet captures.
    #[arg(short = 'o', long, default_value_t = 0, value_name = "N")]
    offset: u32,
    /// Print readable assembly with comments instead of bytecode.
    #[arg(short = 's', long, conflicts_with = "format")]
    assembly: bool,
    /// Output format.
    #[arg(short = 'f', long, value_enum)]
    format: Option<Format>,
    /// Print the instruction count on stderr.
    #[arg(short = 'v', long)]
    verbose: bool,
    /// Fail (exit 2) when the program has more than N instructions (64 fits iptables).
    #[arg(long, value_name = "N")]
    max_insns: Option<usize>,
    /// The generator: dns, dns_validate, suffix or tcpdump.
    generator: String,
    /// The generator's arguments (after GENERATOR, usually after --).
    #[arg(value_name = "ARGS")]
    args: Vec<String>,
}

/// Splits the command line at the generator's name: bpfgen's own options come before it,
/// everything after it belongs to the generator (so `bpfgen dns --help` is the generator's help).
fn split_at_generator(argv: Vec<OsString>) -> (Vec<OsString>, Vec<String>) {
    const TAKES_VALUE: [&str; 5] = ["-o", "--offset", "-f", "--format", "--max-insns"];
    let mut index = 1;
    while index < argv.len() {
        let arg = argv[index].to_string_lossy();
        if arg == "--" {
            index += 1;
            break;
        }
        if !arg.starts_with('-') || arg == "-" {
            break;
        }
        if TAKES_VALUE.contains(&arg.as_ref()) {
            index += 1;
        }
        index += 1;
    }
    if index >= argv.len() {
        return (argv, Vec::new());
    }
    let mut own: Vec<OsString> = argv[..=index]
        .iter()
        .filter(|a| *a != "--")
        .cloned()
        .collect();
    if own.len() == index {
        // "--" was dropped before the generator's name; keep the name.
        own = argv[..index]
            .iter()
            .filter(|a| *a != "--")
            .cloned()
            .collect();
        own.push(argv[index].clone());
    }
    let rest: Vec<String> = argv[index + 1..]
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    (own, rest)
}

/// Runs `bpfgen` with `args` (including the program name).
pub fn main(
    args: impl IntoIterator<Item = OsString>,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Result<ExitCode, CliError> {
    let (own, gen_args) = split_at_generator(args.into_iter().collect());
    let args: Args = match parse_args(own, stdout, stderr)? {
        Ok(args) => args,
        Err(code) => return Ok(code),
    };
    let opts = GenOptions {
        inet6: args.inet6,
        negate: args.negate,
        offset: args.offset,
    };
    // A leading "--" separates bpfgen's options from the generator's.
    let gen_args: &[String] = match gen_args.first().map(String::as_str) {
        Some("--") => &gen_args[1..],
        _ => &gen_args,
    };
    let generated = match generate(&args.generator, gen_args, &opts) {
        Ok(generated) => generated,
        Err(GenError::Help(text)) => {
            write!(
                stdout,
                "{}",
                help_for_tool(&text, "bpfgen", &args.generator)
            )?;
            return Ok(ExitCode::from(EXIT_OK));
        }
        Err(err) => return Err(err.into()),
    };
    let count = generated.insns.len();
    if args.verbose {
        writeln!(stderr, "bpfgen: {count} instructions")?;
    }
    if let Some(max) = args.max_insns {
        if count > max {
            return Err(format!(
                "the program has {count} instructions, more than --max-insns {max}"
            )
            .into());
        }
    }
    let text = if args.assembly {
        generated.assembly
    } else {
        format_program(&generated.insns, args.format.unwrap_or(Format::Bytecode))
    };
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(ExitCode::from(EXIT_OK))
}
