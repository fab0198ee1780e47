//! `xdp-bpf`: deploy DNS flood rules at XDP, one eBPF program whose rules live in maps.

use std::ffi::OsString;
use std::fs;
use std::io::{Read, Write};
use std::process::ExitCode;

use clap::{ArgMatches, Parser, Subcommand};

use crate::cli::gen_args::{parse_generator, GenArgsError};
use crate::cli::{parse_args_matches, CliError, EXIT_OK};
use crate::ebpf::classic::ClassicRule;
use crate::ebpf::deploy::{
    check, Applied, Change, Place, Prefix, Rule, RuleBody, Session, Spec, Status, Wanted,
};
use crate::ebpf::matcher::Action;
use crate::ebpf::sys::XdpMode;

/// Exit status of `status` when the deployment is not as described.
pub const EXIT_NOT_AS_DESCRIBED: u8 = 3;

const EXAMPLES: &str = "\
Rules are in order and the first that matches a query decides (as iptables-bpf's chain
mode); a query no rule matches passes. They apply to UDP packets to port 53 of the protected
addresses (-a; none given: every address), IPv4 and IPv6, untagged or with up to two VLAN
tags. Patterns are the dns generator's ('bpfgen dns --help'); they ignore case unless
--match-case. Exact names, a '*' or '*{m-n}' first label over literal labels, and literal
labels then '**' are matched by map lookups, at the same cost for any number of them; other
patterns ('?', '%XX' inside a label) and --drop-bpf rules run as compiled programs (at most 32
per deployment). --drop any drops every query no earlier rule accepts.

A rules file (--rules FILE, '-' for standard input) holds one rule per line: 'accept PATTERN',
'drop PATTERN' or 'drop-bpf GENERATOR ARGS...'; '#' starts a comment.

apply converges from any state: run again, it changes nothing; killed at any point, the old or
the new deployment stays attached (but for a move between native and generic mode, a detach
then an attach). add and remove change the attached deployment by map
updates, without losing a packet that both the old and the new rules pass. status exits 3
when nothing is attached, the maps differ from the rules, or (given rules) the deployment is
not what they describe. Every command takes the interface's lock: two operators serialize.
With --iptables, apply puts the same matcher in iptables' and ip6tables' INPUT chain instead of
at XDP (a socket filter pinned under bpffs, one '-m bpf --object-pinned' rule per family).

Examples:
  xdp-bpf apply --dev eth0 -a 192.0.2.53 --accept www.example.uk --drop '*.example.uk'
  xdp-bpf add --dev eth0 --drop '*{20-63}.example.net'
  xdp-bpf remove --dev eth0 --drop '*{20-63}.example.net'
  xdp-bpf apply --dev eth0 --rules plan.rules
  xdp-bpf apply --dev eth0 --drop-bpf 'dns_validate --strict' --drop '*.example.org'
  xdp-bpf status --dev eth0
  xdp-bpf test --dev eth0 flood.pcap
  xdp-bpf test --drop '*.example.uk' flood.pcap
  xdp-bpf delete --dev eth0";

/// Deploy DNS flood rules at XDP: one eBPF program, its rules in maps, changed live.
#[derive(Debug, Parser)]
#[command(name = "xdp-bpf", version, after_help = EXAMPLES, disable_help_subcommand = true,
    arg_required_else_help = false,
    subcommand_value_name = "COMMAND")]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Args)]
struct Target {
    /// The interface.
    #[arg(long, value_name = "IF")]
    dev: String,
    /// The deployment's name (another deployment on the interface is refused).
    #[arg(long, value_name = "NAME", default_value = "default")]
    deployment: String,
}

#[derive(Debug, clap::Args)]
struct RuleArgs {
    /// Protected destination address or network (repeatable; none: every address).
    #[arg(short = 'a', long = "address", value_name = "ADDR")]
    address: Vec<String>,
    /// Accept queries whose name matches PATTERN.
    #[arg(long, value_name = "PATTERN", allow_hyphen_values = true)]
    accept: Vec<String>,
    /// Drop queries whose name matches PATTERN ('any': every query).
    #[arg(long, value_name = "PATTERN", allow_hyphen_values = true)]
    drop: Vec<String>,
    /// Drop what a generator's program matches: 'GENERATOR ARGS...' in one argument.
    #[arg(long = "drop-bpf", value_name = "GEN ARGS", allow_hyphen_values = true)]
    drop_bpf: Vec<String>,
    /// Read rules from FILE ('-': standard input), one per line.
    #[arg(long, value_name = "FILE")]
    rules: Vec<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Make the deployment exactly these rules and addresses.
    Apply {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        rules: RuleArgs,
        /// Compare letters exactly (by default names ignore case).
        #[arg(long)]
        match_case: bool,
        /// Attach in generic mode (by default native, falling back to generic with a note).
        #[arg(long, conflicts_with = "native")]
        generic: bool,
        /// Attach in native mode only: fail where the driver has no XDP.
        #[arg(long, conflicts_with = "iptables")]
        native: bool,
        /// Instead of XDP, run the matcher as a socket filter in iptables' and ip6tables'
        /// INPUT chain (-i IF -p udp --dport 53 -m bpf --object-pinned PIN -j DROP), for
        /// hosts that keep iptables (rules the maps express only).
        #[arg(long, conflicts_with = "generic")]
        iptables: bool,
        /// Print nothing on success.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Add rules (after the others) and addresses to the attached deployment.
    Add {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        rules: RuleArgs,
        /// Print nothing on success.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Remove rules and addresses from the attached deployment.
    Remove {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        rules: RuleArgs,
        /// Print nothing on success.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Show the rules with their counters, the addresses and the attach mode; exit 3 when the
    /// deployment is not whole or not what the given rules describe.
    Status {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        rules: RuleArgs,
        /// With rules: compare letters exactly (as apply's --match-case).
        #[arg(long)]
        match_case: bool,
        /// Print the status as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Detach the deployment and remove its maps and state.
    Delete {
        #[command(flatten)]
        target: Target,
    },
    /// Run a capture through the program (the deployment's, with --dev; else one built from
    /// the rules given) with BPF_PROG_TEST_RUN and through the VM's reference; report every
    /// disagreement (exit 1 when there is one).
    Test {
        /// The interface of the deployment to test (its runs count in its counters).
        #[arg(long, value_name = "IF")]
        dev: Option<String>,
        #[command(flatten)]
        rules: RuleArgs,
        /// With rules: compare letters exactly.
        #[arg(long)]
        match_case: bool,
        /// The capture (pcap or pcapng; '-' for standard input).
        capture: String,
    },
}

/// Runs `xdp-bpf` with `args` (including the program name).
pub fn main(
    args: impl IntoIterator<Item = OsString>,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Result<ExitCode, CliError> {
    let (args, matches): (Args, ArgMatches) = match parse_args_matches(args, stdout, stderr)? {
        Ok(parsed) => parsed,
        Err(code) => return Ok(code),
    };
    let (Some(command), Some((_, sub))) = (args.command, matches.subcommand()) else {
        return Err(
            "no command given: expected one of apply, add, remove, status, delete, test".into(),
        );
    };
    let sub = sub.clone();
    let waiting = |stderr: &mut dyn Write, dev: &str| {
        let _ = writeln!(
            stderr,
            "xdp-bpf: {dev}: another xdp-bpf holds the interface's lock: waiting"
        );
    };
    match command {
        Command::Apply {
            target,
            rules,
            match_case,
            generic,
            native,
            iptables,
            quiet,
        } => {
            let spec = Spec {
                name: target.deployment.clone(),
                rules: ordered_rules(&rules, &sub)?,
                addresses: prefixes(&rules.address)?,
                match_case,
            };
            if spec.rules.is_empty() {
                return Err("no rules: give --accept, --drop, --drop-bpf or --rules".into());
            }
            let wanted = if iptables {
                Wanted::Iptables
            } else if generic {
                Wanted::Xdp(Some(XdpMode::Generic))
            } else if native {
                Wanted::Xdp(Some(XdpMode::Native))
            } else {
                Wanted::Xdp(None)
            };
            let session = Session::open(&Place::new(&target.dev), || waiting(stderr, &target.dev))?;
            let applied = session.apply(&spec, wanted)?;
            if !quiet {
                report_applied(stderr, &target.dev, &applied)?;
            }
            if spec.addresses.is_empty() && !quiet {
                writeln!(
                    stderr,
                    "xdp-bpf: note: no -a ADDRESS: the rules apply to queries to every address of {}",
                    target.dev
                )?;
            }
            Ok(ExitCode::from(EXIT_OK))
        }
        Command::Add {
            target,
            rules,
            quiet,
        }
        | Command::Remove {
            target,
            rules,
            quiet,
        } => {
            let adding = matches.subcommand_name() == Some("add");
            let list = ordered_rules(&rules, &sub)?;
            let addresses = prefixes(&rules.address)?;
            if list.is_empty() && addresses.is_empty() {
                return Err("nothing to change: give rules or -a ADDRESS".into());
            }
            let change = if adding {
                Change {
                    add: list,
                    add_addresses: addresses,
                    ..Change::default()
                }
            } else {
                Change {
                    remove: list,
                    remove_addresses: addresses,
                    ..Change::default()
                }
            };
            let session = Session::open(&Place::new(&target.dev), || waiting(stderr, &target.dev))?;
            let applied = session.change(&target.deployment, &change)?;
            if !quiet {
                report_applied(stderr, &target.dev, &applied)?;
            }
            Ok(ExitCode::from(EXIT_OK))
        }
        Command::Status {
            target,
            rules,
            match_case,
            json,
        } => {
            let list = ordered_rules(&rules, &sub)?;
            let expected = (!list.is_empty() || !rules.address.is_empty())
                .then(|| -> Result<Spec, CliError> {
                    Ok(Spec {
                        name: target.deployment.clone(),
                        rules: list,
                        addresses: prefixes(&rules.address)?,
                        match_case,
                    })
                })
                .transpose()?;
            let session = Session::open(&Place::new(&target.dev), || waiting(stderr, &target.dev))?;
            let status = session.status(expected.as_ref())?;
            if json {
                serde_json::to_writer_pretty(&mut *stdout, &status)?;
                writeln!(stdout)?;
            } else {
                print_status(stdout, &status)?;
            }
            stdout.flush()?;
            Ok(ExitCode::from(if status.problems.is_empty() {
                EXIT_OK
            } else {
                EXIT_NOT_AS_DESCRIBED
            }))
        }
        Command::Delete { target } => {
            let session = Session::open(&Place::new(&target.dev), || waiting(stderr, &target.dev))?;
            let deleted = session.delete(Some(&target.deployment))?;
            if deleted.detached {
                writeln!(
                    stderr,
                    "xdp-bpf: {}: deployment detached and removed",
                    target.dev
                )?;
            } else {
                writeln!(
                    stderr,
                    "xdp-bpf: {}: no deployment attached ({} leftover generations removed)",
                    target.dev, deleted.generations
                )?;
            }
            Ok(ExitCode::from(EXIT_OK))
        }
        Command::Test {
            dev,
            rules,
            match_case,
            capture,
        } => {
            let list = ordered_rules(&rules, &sub)?;
            let addresses = prefixes(&rules.address)?;
            let input = open_capture(&capture)?;
            let report = match dev {
                Some(dev) => {
                    if !list.is_empty() {
                        return Err(
                            "test: give --dev (the deployment's rules) or rules, not both".into(),
                        );
                    }
                    let session = Session::open(&Place::new(&dev), || waiting(stderr, &dev))?;
                    let (program, state) = session.program()?;
                    let path = std::path::PathBuf::from(format!("{dev} state"));
                    let spec = state.spec(&path)?;
                    check::test_program(&program, &spec, input)?
                }
                None => {
                    if list.is_empty() {
                        return Err("test: no rules: give --dev IF or rules".into());
                    }
                    let spec = Spec {
                        name: "test".into(),
                        rules: list,
                        addresses,
                        match_case,
                    };
                    check::test_spec(&spec, input)?
                }
            };
            print_report(stdout, &report)?;
            stdout.flush()?;
            Ok(ExitCode::from(if report.disagreements.is_empty() {
                EXIT_OK
            } else {
                crate::cli::EXIT_NO_MATCH
            }))
        }
    }
}

fn open_capture(path: &str) -> Result<Box<dyn Read>, CliError> {
    if path == "-" {
        return Ok(Box::new(std::io::stdin()));
    }
    let file = fs::File::open(path).map_err(|e| format!("cannot open '{path}': {e}"))?;
    Ok(Box::new(std::io::BufReader::new(file)))
}

fn report_applied(stderr: &mut dyn Write, dev: &str, applied: &Applied) -> std::io::Result<()> {
    if let Some(refused) = &applied.native_refused {
        writeln!(
            stderr,
            "xdp-bpf: note: {dev}: native XDP refused ({refused}): attached in generic mode"
        )?;
    }
    if applied.leftovers > 0 {
        writeln!(
            stderr,
            "xdp-bpf: {dev}: removed {} generation(s) not attached (left by an interrupted run, or detached by hand)",
            applied.leftovers
        )?;
    }
    let what = if applied.swapped {
        format!("generation {} attached", applied.generation)
    } else if applied.changed {
        format!("generation {} changed in place", applied.generation)
    } else {
        format!("generation {} unchanged", applied.generation)
    };
    writeln!(
        stderr,
        "xdp-bpf: {dev}: {what} ({} mode): {} rule(s) by map lookups, {} compiled{}",
        crate::ebpf::deploy::hook_word(applied.hook),
        applied.native_rules,
        applied.classic_rules,
        if applied.repaired > 0 {
            format!(", {} map entries repaired", applied.repaired)
        } else {
            String::new()
        }
    )
}

fn print_status(out: &mut dyn Write, status: &Status) -> std::io::Result<()> {
    match (&status.deployment, status.generation) {
        (Some(name), Some(generation)) => writeln!(
            out,
            "{}: deployment '{name}', generation {generation}, {} mode, program id {}, {}",
            status.dev,
            status.mode.as_deref().unwrap_or("?"),
            status.prog_id.unwrap_or(0),
            if status.match_case {
                "case-sensitive"
            } else {
                "ignoring case"
            }
        )?,
        _ => writeln!(out, "{}: no deployment", status.dev)?,
    }
    if status.deployment.is_some() {
        let addresses = if status.addresses.is_empty() {
            "every address".to_string()
        } else {
            status.addresses.join(" ")
        };
        writeln!(out, "protected: {addresses}")?;
        writeln!(
            out,
            "{:>6}  {:>12}  {:>14}  {:8}  rule",
            "order", "packets", "bytes", "how"
        )?;
        for rule in &status.rules {
            writeln!(
                out,
                "{:>6}  {:>12}  {:>14}  {:8}  {}",
                rule.order,
                rule.packets,
                rule.bytes,
                if rule.compiled { "compiled" } else { "maps" },
                rule.rule
            )?;
        }
    }
    for problem in &status.problems {
        writeln!(out, "problem: {problem}")?;
    }
    Ok(())
}

fn prefixes(texts: &[String]) -> Result<Vec<Prefix>, CliError> {
    let mut out: Vec<Prefix> = Vec::new();
    for text in texts {
        let p: Prefix = text.parse()?;
        if !out.contains(&p) {
            out.push(p);
        }
    }
    Ok(out)
}

/// The rule of a `drop-bpf` argument: the generator's programs for IPv4 and IPv6.
fn program_rule(text: &str) -> Result<Rule, CliError> {
    let words: Vec<String> = text.split_whitespace().map(String::from).collect();
    let Some((name, args)) = words.split_first() else {
        return Err("--drop-bpf: empty: expected 'GENERATOR ARGS...'".into());
    };
    let generator = parse_generator(name, args).map_err(|e| match e {
        GenArgsError::Help(_) => format!("--drop-bpf '{text}': asks for help"),
        GenArgsError::Usage(message) => format!("--drop-bpf '{text}': {message}"),
    })?;
    let classic = ClassicRule::from_generator(&generator, false)
        .map_err(|e| format!("--drop-bpf '{text}': {e}"))?;
    if classic.ipv4.is_none() && classic.ipv6.is_none() {
        return Err(format!("--drop-bpf '{text}': no program for IPv4 or IPv6").into());
    }
    Ok(Rule {
        action: Action::Drop,
        body: RuleBody::Program {
            text: words.join(" "),
            v4: classic.ipv4,
            v6: classic.ipv6,
        },
    })
}

fn pattern_rule(action: Action, pattern: &str) -> Rule {
    let pattern = if action == Action::Drop && pattern == "any" {
        "**"
    } else {
        pattern
    };
    Rule {
        action,
        body: RuleBody::Pattern(pattern.to_string()),
    }
}

/// Rules of a rules file.
fn file_rules(name: &str) -> Result<Vec<Rule>, CliError> {
    let text = if name == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| format!("--rules -: {e}"))?;
        text
    } else {
        fs::read_to_string(name).map_err(|e| format!("--rules '{name}': {e}"))?
    };
    let mut rules = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let (word, rest) = line
            .split_once(char::is_whitespace)
            .map_or((line, ""), |(w, r)| (w, r.trim()));
        let at = || format!("{name}:{}", n + 1);
        if rest.is_empty() {
            return Err(format!("{}: '{word}' without a pattern", at()).into());
        }
        rules.push(match word {
            "accept" => pattern_rule(Action::Accept, rest),
            "drop" => pattern_rule(Action::Drop, rest),
            "drop-bpf" => program_rule(rest).map_err(|e| format!("{}: {e}", at()))?,
            other => {
                return Err(format!(
                    "{}: unknown action '{other}' (expected accept, drop or drop-bpf)",
                    at()
                )
                .into())
            }
        });
    }
    Ok(rules)
}

/// The rules of the command line in the order given (`--rules` files where they appear).
fn ordered_rules(args: &RuleArgs, matches: &ArgMatches) -> Result<Vec<Rule>, CliError> {
    let mut at: Vec<(usize, Vec<Rule>)> = Vec::new();
    let indices = |id: &str| -> Vec<usize> {
        matches
            .indices_of(id)
            .map(|i| i.collect())
            .unwrap_or_default()
    };
    for (i, p) in indices("accept").into_iter().zip(&args.accept) {
        at.push((i, vec![pattern_rule(Action::Accept, p)]));
    }
    for (i, p) in indices("drop").into_iter().zip(&args.drop) {
        at.push((i, vec![pattern_rule(Action::Drop, p)]));
    }
    for (i, text) in indices("drop_bpf").into_iter().zip(&args.drop_bpf) {
        at.push((i, vec![program_rule(text)?]));
    }
    for (i, name) in indices("rules").into_iter().zip(&args.rules) {
        at.push((i, file_rules(name)?));
    }
    at.sort_by_key(|(i, _)| *i);
    Ok(at.into_iter().flat_map(|(_, rules)| rules).collect())
}

fn print_report(out: &mut dyn Write, report: &check::TestReport) -> std::io::Result<()> {
    writeln!(
        out,
        "{} packets: {} run by the program and the reference, {} not Ethernet and without a network header; \
         {} dropped, {} disagreement(s)",
        report.packets,
        report.compared,
        report.skipped,
        report.dropped,
        report.disagreements.len()
    )?;
    for (i, n) in report.by_rule.iter().enumerate() {
        if *n > 0 {
            writeln!(out, "  rule {}: decided {n} packet(s)", i + 1)?;
        }
    }
    let word = |v: u32| match v {
        0 => "XDP_ABORTED".to_string(),
        1 => "XDP_DROP".to_string(),
        2 => "XDP_PASS".to_string(),
        3 => "XDP_TX".to_string(),
        other => format!("{other}"),
    };
    for d in &report.disagreements {
        writeln!(
            out,
            "packet {}: program {}, reference {}{}",
            d.number,
            word(d.program),
            word(d.reference),
            d.rule.map_or(String::new(), |r| format!(" (rule {r})"))
        )?;
    }
    Ok(())
}
