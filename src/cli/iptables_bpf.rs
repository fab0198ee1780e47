//! `iptables-bpf`: generate a bash script that deploys a BPF rule with ipset and iptables.

use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;

use crate::cli::gen_args::{normalize_argv, GeneratorArgs};
use crate::cli::output::{AtomicFile, OutputError};
use crate::cli::{parse_args, CliError, EXIT_OK};
use crate::gen::iptables::{default_file_name, render, ChainSpec, Spec};
use crate::gen::Generator;

const EXAMPLES: &str = "\
The script, run as root, creates an ipset (hash:net) of protected destination addresses and
the rules 'iptables -p udp --dport 53 -m set --match-set SET dst -m bpf --bytecode ... -j DROP'
(-p tcp for p0f) on every interface (DEFAULTINT=eth0 restricts them) in one iptables-restore
transaction, from whatever state it finds. Running it again changes nothing; './SCRIPT
ADDRESS' adds a protected address; './SCRIPT --status' shows the rules' counters and the set,
and exits 3 when the protection is not what the script describes; './SCRIPT --delete'
removes the rules (from iptables-nft and iptables-legacy), the chain and the set. In chain
mode, accepted names RETURN to INPUT's later rules (--accept-final: jump to ACCEPT). Programs longer than 64 instructions are split over several rules that together
match exactly the same packets. A p0f signature of version * (either) becomes the program of the script's
family, IPv4 (IPv6 with -6): iptables sees IPv4 packets only and ip6tables IPv6 only, and on
them that program gives the same verdicts as the * program, in fewer instructions.

Deployments: a script tags its rules, chain and set with a deployment id and touches nothing
else. Two scripts are the same deployment when generated with the same --deployment NAME, or
else the same --chain NAME, or else written to the same file (its absolute path), or else
(written to stdout) when they make the same rules; the family is part of the id. Applying a
new version of a deployment replaces the old version's rules.

Examples:
  iptables-bpf dns -- '*.www.example.uk'
  iptables-bpf -i 192.0.2.53 -c 'flood 2026-11' dns -- -i '*.example.net' '*.example.org'
  iptables-bpf -6 -w - dns_validate -- --strict > validate6.sh
  iptables-bpf --chain DNSGUARD --accept www.example.net --drop any
  iptables-bpf -6 p0f -- '*:64:0:*:mss*10,6:mss,sok,ts,nop,ws:df,id+:0'";

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
    /// Print no warnings or notes (upper-case patterns without -i, no -i ADDRESS).
    #[arg(short = 'q', long)]
    quiet: bool,
    /// What makes another script the same deployment, replaced by this one (default: --chain
    /// NAME, else the script file's absolute path).
    #[arg(long, value_name = "NAME")]
    deployment: Option<String>,
    /// Chain mode: one rule per pattern in a chain of this deployment, named after NAME.
    #[arg(long, value_name = "NAME", requires = "chain_rules")]
    chain: Option<String>,
    /// Chain mode: compare letters exactly (by default chain patterns ignore case).
    #[arg(long, requires = "chain")]
    match_case: bool,
    /// Chain mode: accepted queries jump to ACCEPT, skipping INPUT's later rules (by default
    /// they RETURN and go on through INPUT's later rules).
    #[arg(long, requires = "chain")]
    accept_final: bool,
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

/// One argument as bash reads it back when the script's header line is pasted: bare when it
/// holds nothing the shell treats specially, else in single quotes, or as `$'...'` with `\xNN`
/// escapes when it holds bytes that are not printable ASCII (the header is one `#` line).
fn shell_word(arg: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_./:=@%+,-".contains(c);
    if !arg.is_empty() && arg.chars().all(plain) {
        return arg.to_string();
    }
    if arg.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return format!("'{}'", arg.replace('\'', "'\\''"));
    }
    let mut out = String::from("$'");
    for b in arg.bytes() {
        match b {
            b'\'' | b'\\' => {
                out.push('\\');
                out.push(char::from(b));
            }
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push('\'');
    out
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
        .map(|a| shell_word(&a.to_string_lossy()))
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
    let mut spec = Spec {
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
            match_case: args.match_case,
            accept_final: args.accept_final,
        }),
        deployment: None,
    };
    let path = args
        .write
        .clone()
        .unwrap_or_else(|| default_file_name(&spec));
    spec.deployment = match (&args.deployment, &args.chain) {
        (Some(name), _) => Some(format!("id:{name}")),
        (None, Some(chain)) => Some(format!("chain:{chain}")),
        (None, None) if path == "-" => None,
        (None, None) => Some(format!("file:{}", absolute(&path))),
    };
    let script = render(&spec)?;
    if !args.quiet {
        for warning in spec.generator.iter().flat_map(|g| g.warnings()) {
            writeln!(stderr, "iptables-bpf: warning: {warning}")?;
        }
        if let Some(Generator::Dns(dns)) = &spec.generator {
            if !dns.ignore_case
                && dns
                    .patterns
                    .iter()
                    .any(|p| p.bytes().any(|b| b.is_ascii_alphabetic()))
            {
                writeln!(
                    stderr,
                    "iptables-bpf: warning: the rule compares letters exactly (case-sensitive): a flood relayed by resolvers that randomize case (DNS 0x20: WwW.ExAmPlE.NeT) passes it; add -i after the generator ('dns -- -i PATTERN') to match any case"
                )?;
            }
        }
    }
    if args.ip.is_empty() && !args.quiet {
        writeln!(
            stderr,
            "iptables-bpf: note: no -i ADDRESS: the script protects nothing until it is given the DNS server's address: ./SCRIPT ADDRESS (or regenerate with -i ADDRESS before the generator)"
        )?;
    }
    if path == "-" {
        stdout.write_all(script.text.as_bytes())?;
        stdout.flush()?;
        return Ok(ExitCode::from(EXIT_OK));
    }
    write_script(&path, &script.text, args.force)?;
    writeln!(stdout, "Generated file '{path}'")?;
    Ok(ExitCode::from(EXIT_OK))
}

/// Writes the script with mode 0750 through an [`AtomicFile`], so no half-written script is
/// ever left; an existing file is kept unless `force`, and never replaced when it is not a
/// regular file (looked at before writing and again before the rename).
fn write_script(path: &str, text: &str, force: bool) -> Result<(), CliError> {
    check_replaceable(path, force)?;
    let cannot_write = |e: &dyn std::fmt::Display| format!("cannot write '{path}': {e}");
    let (guard, mut file) =
        AtomicFile::create(Path::new(path), 0o750, false).map_err(|e| match e {
            OutputError::Create { source, .. } => cannot_write(&source),
            other => cannot_write(&other),
        })?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| cannot_write(&e))?;
    check_replaceable(path, force)?;
    guard.persist().map_err(|e| match e {
        OutputError::Rename { source, .. } => cannot_write(&source),
        other => cannot_write(&other),
    })?;
    Ok(())
}

/// Refuses to replace an existing `path` unless `force`, and one that is not a regular file.
fn check_replaceable(path: &str, force: bool) -> Result<(), CliError> {
    if let Ok(meta) = fs::symlink_metadata(path) {
        if !force {
            return Err(format!("'{path}' exists: not overwriting it (use --force)").into());
        }
        if !meta.file_type().is_file() {
            return Err(format!(
                "'{path}' is not a regular file: not replacing it, even with --force"
            )
            .into());
        }
    }
    Ok(())
}

/// `path` made absolute (its directory resolved when it exists): the script file's identity.
fn absolute(path: &str) -> String {
    let path = std::path::Path::new(path);
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|dir| dir.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    };
    match (joined.parent(), joined.file_name()) {
        (Some(dir), Some(name)) => fs::canonicalize(dir)
            .map(|dir| dir.join(name))
            .unwrap_or(joined),
        _ => joined,
    }
    .to_string_lossy()
    .into_owned()
}
