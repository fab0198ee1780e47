//! `bpfgen`: generate classic BPF programs that match packet floods.

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use crate::asm::{format_program, Format};
use crate::cli::gen_args::{normalize_argv, GeneratorArgs};
use crate::cli::{parse_args, CliError, EXIT_OK};
use crate::gen::{build, GenOptions};

const EXAMPLES: &str = "\
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
    subcommand_value_name = "GENERATOR",
    disable_help_subcommand = true,
    arg_required_else_help = false,
    subcommand_help_heading = "Generators",
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
    #[arg(short = 'f', long, value_parser = super::bpfasm::format_value_parser())]
    format: Option<Format>,
    /// Print the instruction count on stderr.
    #[arg(short = 'v', long)]
    verbose: bool,
    /// Print no warnings (e.g. about upper-case letters in patterns without -i).
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Fail (exit 2) when the program has more than N instructions (64 fits iptables).
    #[arg(long, value_name = "N")]
    max_insns: Option<usize>,
    /// The generator and its arguments (after GENERATOR, usually after --).
    #[command(subcommand)]
    generator: GeneratorArgs,
}

/// Runs `bpfgen` with `args` (including the program name).
pub fn main(
    args: impl IntoIterator<Item = OsString>,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Result<ExitCode, CliError> {
    let argv = normalize_argv(args.into_iter().collect());
    let args: Args = match parse_args(argv, stdout, stderr)? {
        Ok(args) => args,
        Err(code) => return Ok(code),
    };
    let opts = GenOptions {
        inet6: args.inet6,
        negate: args.negate,
        offset: args.offset,
    };
    let generator = args.generator.into_generator()?;
    let generated = build(&generator, &opts)?;
    if !args.quiet {
        for warning in generator.warnings() {
            writeln!(stderr, "bpfgen: warning: {warning}")?;
        }
    }
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
