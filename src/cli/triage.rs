//! `triage`: what a DNS flood is, and the rules that drop it, counted on the capture.

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use crate::cli::{parse_args, CliError, EXIT_NO_MATCH, EXIT_OK};
use crate::triage::report::{to_json, to_text};
use crate::triage::zone::Zone;
use crate::triage::{analyze, count, Source};

const EXAMPLES: &str = "\
Reads the captures twice: once to count (names, parents and their child labels, types,
rcodes, sources, header and EDNS fingerprints) and find the floods, once to run every
candidate rule, built by bpfgen's generators, in the suite's VM over every packet. The counts
shown come from those runs. Standard input ('-') is first copied to a temporary file.

Rules are listed in order: the first rule that matches a packet decides (accept or drop), a
packet no rule matches passes. Each applies, as iptables-bpf deploys it (-p udp --dport 53), to
UDP packets to port 53 of its family (IPv4, or IPv6 for '-6' rules). 'bpfgen' in --json holds
exactly the arguments of the deployable program (offset 0, as xt_bpf sees packets).

Examples:
  triage flood.pcap
  triage --json flood.pcapng | jq '.rules[] | {action, bpfgen, matched}'
  tcpdump -i eth0 -w - -c 100000 udp dst port 53 | triage -
  triage --baseline monday.pcap --zone example.net.zone flood.pcap

Exit status: 0 when a flood was found (rules suggested), 1 when none was, 2 on error.";

/// What a DNS flood is, and the rules that drop it, counted on the capture.
#[derive(Debug, Parser)]
#[command(
    name = "triage",
    version,
    about = "Find DNS floods in a capture and suggest the bpfgen rules that drop them, counted",
    after_help = EXAMPLES
)]
struct Args {
    /// Print JSON instead of the readable report.
    #[arg(long)]
    json: bool,
    /// A capture from normal times: its names are legitimate, its rates the reference.
    #[arg(long, value_name = "FILE")]
    baseline: Option<String>,
    /// A master-format zone file: the names it declares are legitimate.
    #[arg(long, value_name = "FILE")]
    zone: Option<String>,
    /// The zone's origin when the zone file has no $ORIGIN (e.g. example.net).
    #[arg(long, value_name = "NAME", requires = "zone")]
    zone_origin: Option<String>,
    /// Captures (pcap or pcapng, any link type the suite reads); '-' is stdin (the default).
    #[arg(value_name = "CAPTURE")]
    captures: Vec<String>,
}

/// A copy of standard input in an anonymous temporary file (`tempfile::tempfile`: mode 0600,
/// never linked into a directory, or unlinked as soon as it is created where the system
/// cannot make it unnamed): nothing is left behind whatever ends the process (Ctrl-C
/// included). It is read again through `/proc/self/fd`, which reaches the open file.
struct Spool {
    path: PathBuf,
    _file: File,
}

impl Spool {
    fn new(stdin: &mut dyn Read) -> Result<Spool, CliError> {
        use std::os::fd::AsRawFd;
        let dir = std::env::temp_dir();
        let mut file = tempfile::tempfile_in(&dir)
            .map_err(|e| format!("cannot create a spool in '{}': {e}", dir.display()))?;
        std::io::copy(stdin, &mut file).map_err(|e| {
            format!(
                "cannot copy standard input to a spool in '{}': {e}",
                dir.display()
            )
        })?;
        file.flush()?;
        let path = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
        Ok(Spool { path, _file: file })
    }
}

/// Builds every deployment command's script in process (`iptables-bpf ... -w -`), so that a
/// command printed is one that generates: an empty string for a command that does, else why
/// it does not.
fn check_deploy_commands(analysis: &crate::triage::Analysis) -> Vec<String> {
    crate::triage::report::deploy_commands(analysis)
        .into_iter()
        .map(|args| {
            let mut argv: Vec<OsString> =
                vec!["iptables-bpf".into(), "-q".into(), "-w".into(), "-".into()];
            argv.extend(args.into_iter().map(OsString::from));
            let mut sink = std::io::sink();
            let mut errors = Vec::new();
            match crate::cli::iptables_bpf::main(argv, &mut sink, &mut errors) {
                Ok(code) if code == ExitCode::SUCCESS => String::new(),
                Ok(_) => format!(
                    "this command does not generate: {}",
                    String::from_utf8_lossy(&errors).trim()
                ),
                Err(e) => format!("this command does not generate: {e}"),
            }
        })
        .collect()
}

/// Runs `triage` with `args` (including the program name).
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
    let names = if args.captures.is_empty() {
        vec!["-".to_string()]
    } else {
        args.captures.clone()
    };
    if names.iter().filter(|n| *n == "-").count() > 1 {
        return Err("standard input ('-') can be given only once".into());
    }
    if args.baseline.as_deref() == Some("-") && names.iter().any(|n| n == "-") {
        return Err("standard input cannot be both a capture and the baseline".into());
    }
    let zone = match &args.zone {
        Some(path) => {
            let file = File::open(path).map_err(|e| format!("cannot read '{path}': {e}"))?;
            let zone = Zone::read(std::io::BufReader::new(file), args.zone_origin.as_deref())
                .map_err(|e| format!("{path}:{e}"))?;
            if zone.is_empty() {
                return Err(format!("{path}: no names in the zone file").into());
            }
            Some(zone)
        }
        None => None,
    };
    let mut spool = None;
    let mut source_for = |name: &str, stdin: &mut dyn Read| -> Result<Source, CliError> {
        if name == "-" {
            let copy = Spool::new(stdin)?;
            let path = copy.path.clone();
            spool = Some(copy);
            Ok(Source {
                name: "<stdin>".into(),
                path,
            })
        } else {
            // Opened here so that a missing file is reported before any work.
            File::open(name).map_err(|e| format!("cannot open '{name}': {e}"))?;
            Ok(Source {
                name: name.to_string(),
                path: PathBuf::from(name),
            })
        }
    };
    let baseline = match &args.baseline {
        Some(name) => {
            let source = source_for(name, stdin)?;
            Some(count(std::slice::from_ref(&source))?)
        }
        None => None,
    };
    let mut sources = Vec::new();
    for name in &names {
        sources.push(source_for(name, stdin)?);
    }
    let analysis = analyze(&sources, baseline.as_ref(), zone.as_ref())?;
    drop(spool);
    let checks = check_deploy_commands(&analysis);
    if args.json {
        let text = serde_json::to_string_pretty(&to_json(&analysis, &checks))?;
        writeln!(stdout, "{text}")?;
    } else {
        write!(stdout, "{}", to_text(&analysis, &checks))?;
    }
    stdout.flush()?;
    Ok(ExitCode::from(if analysis.floods.is_empty() {
        EXIT_NO_MATCH
    } else {
        EXIT_OK
    }))
}
