//! `iptables-bpf`: generate a bash script that deploys a BPF rule with ipset and iptables.

use std::ffi::OsString;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::process::ExitCode;

use clap::Parser;

use crate::cli::gen_args::{normalize_argv, GeneratorArgs};
use crate::cli::{parse_args, CliError, EXIT_OK};
use crate::gen::iptables::{render, ChainSpec, Spec};

const EXAMPLES: &str = "\
The script, run as root, creates an ipset (hash:net) of protected destination addresses and
inserts 'iptables -p udp --dport 53 -m set --match-set SET dst -m bpf --bytecode ... -j DROP'
in one iptables-restore transaction. Running it again changes nothing; './SCRIPT --delete'
removes the rules, the chain and the set. Programs longer than 64 instructions are split
over several rules that together match exactly the same packets.

Examples:
  iptables-bpf dns -- '*.www.example.uk'
  iptables-bpf -i 192.0.2.53 -c 'flood 2026-11' dns -- -i '*.example.net' '*.example.org'
  iptables-bpf -6 -w - dns_validate -- --strict > validate6.sh
  iptables-bpf --chain DNSGUARD --accept www.example.net --drop any";

/// Generate a bash script that deploys a BPF rule with ipset and iptables.
#[derive(Debug, Parser)]
#[command(group(clap::ArgGroup::new("chain_rules").multiple(true)))]
#[command(name = "iptables-bpf", version, subcommand_value_name = "GENERATOR",
    disable_help_subcommand = true,
    arg_required_else_help = false, subcommand_help_heading = "Generators", about = "Generate a bash script that deploys a BPF match with ipset + iptables", after_help = EXAMPLES)]
struct Args {
    /// IPv6 (ip6tables, ipset family inet6).
    #[arg(short = '6', long = "inet6")]
    inet6: bool,
    /// Drop what does NOT match.
    #[arg(short = 'n', long)]
    negate: bool,
    /// Protected destination address or network (repeatable); more can be added to the set later.
    #[arg(short = 'i', long = "ip", value_name = "ADDR")]
    ip: Vec<String>,
    /// Rule comment (letters, digits, spaces and - _ . : , / * @ = + # % [ ] ( )).
    #[arg(short = 'c', long, value_name = "TEXT")]
    comment: Option<String>,
    /// Write the script to FILE ('-' for stdout) instead of the default name.
    #[arg(short = 'w', long, value_name = "FILE")]
    write: Option<String>,
    /// Overwrite an existing file.
    #[arg(long)]
    force: bool,
    /// Chain mode: one rule per pattern in chain NAME.
    #[arg(long, value_name = "NAME", requires = "chain_rules")]
    chain: Option<String>,
    /// Chain mode: patterns to accept.
    #[arg(long, num_args = 1.., value_name = "PATTERN", requires = "chain", group = "chain_rules", action = clap::ArgAction::Append)]
    accept: Vec<String>,
    /// Chain mode: patterns to drop ('any' drops everything not accepted).
    #[arg(long, num_args = 1.., value_name = "PATTERN", requires = "chain", group = "chain_rules", action = clap::ArgAction::Append)]
    drop: Vec<String>,
    /// The generator and its arguments (after GENERATOR, usually after --).
    #[command(subcommand)]
    generator: Option<GeneratorArgs>,
}

/// Runs `iptables-bpf` with `args` (including the program name).
pub fn main(
    args: impl IntoIterator<Item = OsString>,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Result<ExitCode, CliError> {
    let argv: Vec<OsString> = args.into_iter().collect();
    let command = argv
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let args: Args = match parse_args(normalize_argv(argv), stdout, stderr)? {
        Ok(args) => args,
        Err(code) => return Ok(code),
    };
    let generator = match (&args.chain, args.generator) {
        (Some(_), None) => None,
        (Some(_), Some(_)) => {
            return Err("chain mode takes --accept/--drop patterns, not a generator".into())
        }
        (None, Some(generator)) => Some(generator.into_generator()?),
        (None, None) => {
            return Err("no generator: expected e.g. 'dns -- PATTERN' (see --help)".into())
        }
    };
    let spec = Spec {
        generator,
        inet6: args.inet6,
        negate: args.negate,
        addresses: args.ip.clone(),
        comment: args.comment.clone(),
        command,
        chain: args.chain.as_ref().map(|name| ChainSpec {
            name: name.clone(),
            accept: args.accept.clone(),
            drop: args.drop.clone(),
        }),
    };
    let script = render(&spec)?;
    let path = args
        .write
        .clone()
        .unwrap_or_else(|| script.file_name.clone());
    if path == "-" {
        stdout.write_all(script.text.as_bytes())?;
        stdout.flush()?;
        return Ok(ExitCode::from(EXIT_OK));
    }
    write_script(&path, &script.text, args.force)?;
    writeln!(stdout, "Generated file '{path}'")?;
    Ok(ExitCode::from(EXIT_OK))
}

/// Writes the script with mode 0750: to a temporary file beside it, then renamed into place,
/// so no half-written script is ever left; an existing file is kept unless `force`.
fn write_script(path: &str, text: &str, force: bool) -> Result<(), CliError> {
    if !force && fs::symlink_metadata(path).is_ok() {
        return Err(format!("'{path}' exists: not overwriting it (use --force)").into());
    }
    let temp = format!("{path}.tmp{}", std::process::id());
    let written = (|| -> std::io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o750)
            .open(&temp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        Ok(())
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&temp);
        return Err(format!("cannot write '{path}': {e}").into());
    }
    if !force && fs::symlink_metadata(path).is_ok() {
        let _ = fs::remove_file(&temp);
        return Err(format!("'{path}' exists: not overwriting it (use --force)").into());
    }
    fs::rename(&temp, path).map_err(|e| {
        let _ = fs::remove_file(&temp);
        format!("cannot write '{path}': {e}")
    })?;
    Ok(())
}
