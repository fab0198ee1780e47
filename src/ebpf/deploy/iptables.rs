//! The iptables hook of a deployment: the matcher as a socket filter, pinned, run by one rule
//! per family in INPUT (`iptables` and `ip6tables`):
//!
//! ```text
//! -I INPUT 1 -i IF -p udp --dport 53 -m bpf --object-pinned PIN -m comment --comment TAG -j DROP
//! ```
//!
//! `TAG` is `bpftools-xdp/net<NETNS>/<IF>/g<N>`: the rules of this tool are found by it, and
//! no other rule is touched. xt_bpf takes the program when the rule is added, so a new
//! generation gets new rules (added first, the old ones removed after: there is no moment
//! without one); live map changes need no rule change. `-w` waits for the xtables lock of
//! other iptables users.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use crate::ebpf::deploy::DeployError;

/// The iptables front ends, IPv4 then IPv6.
const TABLES: [(&str, &str); 2] = [("iptables", "IPv4"), ("ip6tables", "IPv6")];

/// Seconds `-w` waits for the xtables lock.
const WAIT: &str = "10";

fn run(bin: &str, args: &[String]) -> Result<Result<String, String>, DeployError> {
    let command = format!("{bin} {}", args.join(" "));
    let out = Command::new(bin)
        .args(args)
        .output()
        .map_err(|e| DeployError::Command {
            command: command.clone(),
            message: e.to_string(),
        })?;
    if out.status.success() {
        Ok(Ok(String::from_utf8_lossy(&out.stdout).into_owned()))
    } else {
        Ok(Err(String::from_utf8_lossy(&out.stderr).trim().to_string()))
    }
}

fn failed(bin: &str, args: &[String], message: String) -> DeployError {
    DeployError::Command {
        command: format!("{bin} {}", args.join(" ")),
        message,
    }
}

/// The rule's arguments after `-I INPUT 1` / `-D INPUT`.
fn rule(dev: &str, pin: &Path, tag: &str) -> Vec<String> {
    [
        "-i",
        dev,
        "-p",
        "udp",
        "--dport",
        "53",
        "-m",
        "bpf",
        "--object-pinned",
        &pin.to_string_lossy(),
        "-m",
        "comment",
        "--comment",
        tag,
        "-j",
        "DROP",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The INPUT rules (`-S` lines) of `bin` whose comment starts with `prefix`; none when the
/// front end is not installed.
fn tagged(bin: &str, prefix: &str) -> Result<Vec<String>, DeployError> {
    let args: Vec<String> = ["-w", WAIT, "-S", "INPUT"].map(String::from).to_vec();
    match Command::new(bin).args(&args).output() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(failed(bin, &args, e.to_string())),
        Ok(out) if !out.status.success() => Err(failed(
            bin,
            &args,
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        )),
        Ok(out) => Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|line| tag_of(line).is_some_and(|t| t.starts_with(prefix)))
            .map(String::from)
            .collect()),
    }
}

/// The comment of an `-S` line.
fn tag_of(line: &str) -> Option<&str> {
    let at = line.find("--comment ")? + "--comment ".len();
    let rest = &line[at..];
    let rest = rest.strip_prefix('"').unwrap_or(rest);
    Some(rest.split(['"', ' ']).next().unwrap_or(""))
}

/// The generations that have a rule in either family.
pub fn generations(prefix: &str) -> Result<BTreeSet<u64>, DeployError> {
    let mut found = BTreeSet::new();
    for (bin, _) in TABLES {
        for line in tagged(bin, prefix)? {
            if let Some(n) = tag_of(&line)
                .and_then(|t| t.strip_prefix(prefix))
                .and_then(|g| g.strip_prefix('g'))
                .and_then(|n| n.parse().ok())
            {
                found.insert(n);
            }
        }
    }
    Ok(found)
}

/// Adds the rule of generation `tag` in both families (the IPv4 one taken back when the IPv6
/// one fails).
pub fn insert(dev: &str, pin: &Path, tag: &str) -> Result<(), DeployError> {
    let mut done = Vec::new();
    for (bin, _) in TABLES {
        let mut args: Vec<String> = ["-w", WAIT, "-I", "INPUT", "1"].map(String::from).to_vec();
        args.extend(rule(dev, pin, tag));
        if let Err(message) = run(bin, &args)? {
            for bin in done {
                let _ = remove_one(bin, dev, pin, tag);
            }
            return Err(failed(bin, &args, message));
        }
        done.push(bin);
    }
    Ok(())
}

fn remove_one(bin: &str, dev: &str, pin: &Path, tag: &str) -> Result<(), DeployError> {
    // Every copy (a run killed after adding may have left one more).
    for line in tagged(bin, tag)? {
        if tag_of(&line) != Some(tag) {
            continue;
        }
        let mut args: Vec<String> = ["-w", WAIT, "-D", "INPUT"].map(String::from).to_vec();
        args.extend(rule(dev, pin, tag));
        if let Err(message) = run(bin, &args)? {
            return Err(failed(bin, &args, message));
        }
    }
    Ok(())
}

/// Removes the rules of generation `tag` in both families (none there is not an error).
pub fn remove(dev: &str, pin: &Path, tag: &str) -> Result<(), DeployError> {
    for (bin, _) in TABLES {
        remove_one(bin, dev, pin, tag)?;
    }
    Ok(())
}

/// Removes every rule whose comment starts with `prefix` (this interface's deployments), by
/// its `-S` line; the number removed.
pub fn remove_all(prefix: &str) -> Result<usize, DeployError> {
    let mut removed = 0;
    for (bin, _) in TABLES {
        for line in tagged(bin, prefix)? {
            let Some(spec) = line.strip_prefix("-A INPUT ") else {
                continue;
            };
            let mut args: Vec<String> = ["-w", WAIT, "-D", "INPUT"].map(String::from).to_vec();
            args.extend(
                spec.split_whitespace()
                    .map(|w| w.trim_matches('"').to_string()),
            );
            if let Err(message) = run(bin, &args)? {
                return Err(failed(bin, &args, message));
            }
            removed += 1;
        }
    }
    Ok(removed)
}

/// The families (`IPv4`, `IPv6`) without the rule of generation `tag`.
pub fn missing(tag: &str) -> Result<Vec<&'static str>, DeployError> {
    let mut out = Vec::new();
    for (bin, family) in TABLES {
        if !tagged(bin, tag)?.iter().any(|l| tag_of(l) == Some(tag)) {
            out.push(family);
        }
    }
    Ok(out)
}
