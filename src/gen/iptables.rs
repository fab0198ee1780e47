//! iptables deployment scripts: an ipset plus `iptables -m bpf` rules, applied atomically.
//!
//! Rules of this module:
//! - every program is checked with the kernel's xt_bpf rules (at most 64 instructions) and its
//!   bytecode text against `iptables-restore`'s parameter limit (1023 characters) before it is
//!   written: no rule the kernel or iptables would refuse is ever emitted;
//! - a `dns` pattern list whose program does not fit is split into groups, one rule each; with
//!   `--negate` the groups go into a chain that RETURNs what any group matches and drops the
//!   rest (a union of negated DROP rules would drop everything);
//! - nothing that reaches the script can run as shell code: bytecode is digits, commas and
//!   spaces; set and chain names are generated from `[a-z0-9_]`; addresses are parsed as IP
//!   networks; comments are limited to a safe character set; patterns appear only inside `#`
//!   comment lines, with every non-printable character escaped;
//! - names fit the kernel's limits (ipset 31, chain 28 characters) and carry 65 bits of a
//!   SHA-256 over an unambiguous encoding of everything that makes the rules (family, negation,
//!   generator and each argument), so two different rules do not share a name and the same rule
//!   always gets the same one (which makes re-running a script idempotent); user chain names
//!   may not start with '-' or clash with built-in chains and targets.

use std::fmt::Write;
use std::net::IpAddr;

use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::asm::{format_program, Format};
use crate::gen::{build, DnsSpec, GenError, GenOptions, Generated, Generator};
use crate::vm::{validate, Profile};

/// Why a script could not be made.
#[derive(Debug, Error)]
pub enum ScriptError {
    /// The generator failed.
    #[error(transparent)]
    Gen(#[from] GenError),
    /// A value is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// Even one pattern does not fit in an xt_bpf rule.
    #[error("pattern '{pattern}' alone does not fit in one iptables bpf rule ({count} instructions; a rule holds at most 64 and {RESTORE_PARAM_MAX} characters of bytecode; for IPv6, 'dns --ext-headers 1' or 0 makes the program shorter)")]
    TooLong {
        /// The pattern.
        pattern: String,
        /// Its instruction count.
        count: usize,
    },
}

/// What to deploy.
#[derive(Debug, Clone, Default)]
pub struct Spec {
    /// The generator and its arguments (`None` in chain mode, whose rules are `dns` rules).
    pub generator: Option<Generator>,
    /// IPv6 (ip6tables, family inet6).
    pub inet6: bool,
    /// Drop what does NOT match.
    pub negate: bool,
    /// Destination addresses (or networks) protected; more can be added to the set later.
    pub addresses: Vec<String>,
    /// Rule comment; default: derived from the generator and arguments.
    pub comment: Option<String>,
    /// The command that made the script, for its header.
    pub command: String,
    /// Chain mode: the chain's name, patterns to accept, patterns (or `any`) to drop.
    pub chain: Option<ChainSpec>,
}

/// Chain mode (`--chain NAME --accept P... --drop P|any...`).
#[derive(Debug, Clone, Default)]
pub struct ChainSpec {
    /// Chain name.
    pub name: String,
    /// Patterns whose queries are accepted.
    pub accept: Vec<String>,
    /// Patterns whose queries are dropped; `any` drops everything else.
    pub drop: Vec<String>,
}

/// A rendered script.
#[derive(Debug, Clone)]
pub struct Script {
    /// Default file name (`bpf_dns_ip4_any_www_example_uk.sh`).
    pub file_name: String,
    /// The bash script.
    pub text: String,
}

/// One rule of the script: optional program and a target.
struct Rule {
    program: Option<Generated>,
    target: String,
    what: String,
}

/// The longest parameter `iptables-restore` reads (its buffer is 1024 bytes with the NUL).
pub const RESTORE_PARAM_MAX: usize = 1023;

/// Target and chain names a user chain may not take: iptables refuses names that clash with a
/// built-in chain or a target.
const RESERVED_CHAIN_NAMES: &[&str] = &[
    "INPUT",
    "OUTPUT",
    "FORWARD",
    "PREROUTING",
    "POSTROUTING",
    "ACCEPT",
    "DROP",
    "RETURN",
    "QUEUE",
    "REJECT",
    "LOG",
    "NFLOG",
    "ULOG",
    "MARK",
    "CONNMARK",
    "CT",
    "NOTRACK",
    "TRACE",
    "DNAT",
    "SNAT",
    "MASQUERADE",
    "REDIRECT",
    "NETMAP",
    "NFQUEUE",
    "TCPMSS",
    "TOS",
    "TTL",
    "HL",
    "DSCP",
    "ECN",
    "CLASSIFY",
    "CHECKSUM",
    "AUDIT",
    "SET",
    "TEE",
    "LED",
    "IDLETIMER",
    "SECMARK",
    "CONNSECMARK",
    "SYNPROXY",
    "TPROXY",
    "HMARK",
    "RATEEST",
    "CLUSTERIP",
    "TCPOPTSTRIP",
    "ERROR",
    "BPF",
];

/// 65 bits of the SHA-256 of `key` in base32 (`a-z2-7`), 13 characters: names derived from
/// different specifications do not collide, even when the patterns come from a hostile capture.
fn name_hash(key: &str) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let digest = Sha256::digest(key.as_bytes());
    let mut bits = u128::from_be_bytes(digest[..16].try_into().expect("16 bytes"));
    let mut out = String::with_capacity(13);
    for _ in 0..13 {
        out.push(char::from(ALPHABET[(bits >> 123) as usize]));
        bits <<= 5;
    }
    out
}

/// An unambiguous key for a list of words (each one quoted, so `a b` and `a`,`b` differ).
fn words_key(words: &[String]) -> String {
    serde_json::to_string(words).expect("strings serialize")
}

/// Keeps `[a-z0-9_]`, turns `*` into `any` and everything else into `_`, squeezing repeats.
fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        let piece = match c {
            '*' => "any".to_string(),
            c if c.is_ascii_alphanumeric() => c.to_ascii_lowercase().to_string(),
            _ => "_".to_string(),
        };
        if piece == "_" && (out.ends_with('_') || out.is_empty()) {
            continue;
        }
        out.push_str(&piece);
    }
    out.trim_end_matches('_').to_string()
}

/// A name of at most `max` characters: a readable prefix and a hash of `key`.
fn limited_name(prefix: &str, readable: &str, key: &str, max: usize) -> String {
    let hash = name_hash(key);
    let room = max.saturating_sub(prefix.len() + hash.len() + 1);
    let mut readable: String = readable.chars().take(room).collect();
    while readable.ends_with('_') {
        readable.pop();
    }
    if readable.is_empty() {
        format!("{prefix}{hash}")
    } else {
        format!("{prefix}{readable}_{hash}")
    }
}

/// Escapes text for a `#` comment line: printable ASCII kept, everything else `\xNN`.
fn comment_safe(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if (0x20..0x7f).contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

fn check_comment(comment: &str) -> Result<(), ScriptError> {
    if comment.len() > 255 {
        return Err(ScriptError::Invalid(format!(
            "comment is {} characters long, iptables accepts at most 255",
            comment.len()
        )));
    }
    if let Some(bad) = comment
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || " -_.:,/*@=+#%[]()".contains(*c)))
    {
        return Err(ScriptError::Invalid(format!(
            "comment contains '{}': allowed are letters, digits, spaces and - _ . : , / * @ = + # % [ ] ( )",
            bad.escape_default()
        )));
    }
    Ok(())
}

/// Parses an address or network (`192.0.2.1`, `2001:db8::/32`) of the right family.
fn check_address(text: &str, inet6: bool) -> Result<String, ScriptError> {
    let (addr, prefix) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (text, None),
    };
    let ip: IpAddr = addr.parse().map_err(|_| {
        ScriptError::Invalid(format!(
            "bad address '{}': expected an IP address or network",
            comment_safe(text)
        ))
    })?;
    if ip.is_ipv6() != inet6 {
        return Err(ScriptError::Invalid(format!(
            "address '{text}' is {}, the rule is for {} (use -6 for IPv6)",
            if ip.is_ipv6() { "IPv6" } else { "IPv4" },
            if inet6 { "IPv6" } else { "IPv4" }
        )));
    }
    match prefix {
        None => Ok(ip.to_string()),
        Some(p) => {
            let max = if inet6 { 128 } else { 32 };
            let bits: u8 = p.parse().ok().filter(|b| *b <= max).ok_or_else(|| {
                ScriptError::Invalid(format!(
                    "bad prefix length in '{}': expected 1..{max}",
                    comment_safe(text)
                ))
            })?;
            if bits == 0 {
                let halves = if inet6 {
                    "::/1 and 8000::/1"
                } else {
                    "0.0.0.0/1 and 128.0.0.0/1"
                };
                return Err(ScriptError::Invalid(format!(
                    "'{text}': an ipset hash:net cannot hold a /0 network; for every address give {halves}"
                )));
            }
            Ok(format!("{ip}/{bits}"))
        }
    }
}

/// The program's bytecode text as the rule carries it.
fn bytecode_text(generated: &Generated) -> String {
    format_program(&generated.insns, Format::Bytecode)
        .trim_end()
        .to_string()
}

/// Whether a program can be loaded as one rule: xt_bpf's rules (at most 64 instructions) and
/// a bytecode text `iptables-restore` reads.
fn fits(generated: &Generated) -> bool {
    validate(&generated.insns, Profile::XtBpf).is_ok()
        && bytecode_text(generated).len() <= RESTORE_PARAM_MAX
}

/// A `dns` program for `args`, or `None` when it cannot be one rule (too long, or a jump that
/// a single program cannot encode).
fn dns_if_fits(spec: &DnsSpec, opts: &GenOptions) -> Result<Option<Generated>, ScriptError> {
    match build(&Generator::Dns(spec.clone()), opts) {
        Ok(program) if fits(&program) => Ok(Some(program)),
        Ok(_) | Err(GenError::Program(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Splits the `dns` generator's patterns into groups whose programs fit in a rule.
fn dns_groups(
    spec: &DnsSpec,
    opts: &GenOptions,
) -> Result<Vec<(Vec<String>, Generated)>, ScriptError> {
    let spec_for = |group: &[String]| DnsSpec {
        patterns: group.to_vec(),
        ..spec.clone()
    };
    let mut groups: Vec<(Vec<String>, Generated)> = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut current_program: Option<Generated> = None;
    for pattern in &spec.patterns {
        let mut candidate = current.clone();
        candidate.push(pattern.clone());
        if let Some(program) = dns_if_fits(&spec_for(&candidate), opts)? {
            current = candidate;
            current_program = Some(program);
            continue;
        }
        if let Some(done) = current_program.take() {
            groups.push((std::mem::take(&mut current), done));
        }
        let alone = spec_for(std::slice::from_ref(pattern));
        let Some(program) = dns_if_fits(&alone, opts)? else {
            let count = build(&Generator::Dns(alone), opts).map_or(0, |p| p.insns.len());
            return Err(ScriptError::TooLong {
                pattern: pattern.clone(),
                count,
            });
        };
        current = vec![pattern.clone()];
        current_program = Some(program);
    }
    if let Some(done) = current_program {
        groups.push((current, done));
    }
    Ok(groups)
}

fn generator_name(spec: &Spec) -> &'static str {
    spec.generator.as_ref().map_or("dns", Generator::name)
}

/// The generator's arguments as `bpfgen` takes them (after its name).
fn generator_args(spec: &Spec) -> Vec<String> {
    spec.generator
        .as_ref()
        .map(Generator::args)
        .unwrap_or_default()
}

/// The patterns of a `dns` deployment (for readable names); empty for other generators.
fn dns_patterns(spec: &Spec) -> Vec<String> {
    match &spec.generator {
        Some(Generator::Dns(dns)) => dns.patterns.clone(),
        _ => Vec::new(),
    }
}

fn single(generator: &Generator, opts: &GenOptions) -> Result<Generated, ScriptError> {
    let generated = build(generator, opts)?;
    let generator = generator.name();
    if let Err(e) = validate(&generated.insns, Profile::XtBpf) {
        return Err(ScriptError::Invalid(format!(
            "the {generator} program cannot be loaded by xt_bpf: {e}"
        )));
    }
    let length = bytecode_text(&generated).len();
    if length > RESTORE_PARAM_MAX {
        return Err(ScriptError::Invalid(format!(
            "the {generator} program's bytecode is {length} characters long; iptables-restore reads at most {RESTORE_PARAM_MAX}"
        )));
    }
    Ok(generated)
}

/// Builds the rules and, when they need one, the chain they live in.
fn rules(spec: &Spec) -> Result<(Vec<Rule>, bool), ScriptError> {
    let base = GenOptions {
        inet6: spec.inet6,
        negate: false,
        offset: 0,
    };
    if let Some(chain) = &spec.chain {
        let mut rules = Vec::new();
        for (patterns, target) in [(&chain.accept, "ACCEPT"), (&chain.drop, "DROP")] {
            for pattern in patterns {
                if pattern == "any" {
                    rules.push(Rule {
                        program: None,
                        target: target.into(),
                        what: "any".into(),
                    });
                    continue;
                }
                let program = single(
                    &Generator::Dns(DnsSpec {
                        patterns: vec![pattern.clone()],
                        ignore_case: false,
                        ext_headers: crate::gen::DEFAULT_EXT_HEADERS,
                    }),
                    &base,
                )?;
                rules.push(Rule {
                    program: Some(program),
                    target: target.into(),
                    what: pattern.clone(),
                });
            }
        }
        if rules.is_empty() {
            return Err(ScriptError::Invalid(
                "chain mode needs --accept or --drop patterns".into(),
            ));
        }
        return Ok((rules, true));
    }
    let Some(generator) = &spec.generator else {
        return Err(ScriptError::Invalid(
            "no generator: expected e.g. 'dns -- PATTERN'".into(),
        ));
    };
    if let Generator::Dns(dns) = generator {
        let patterns = &dns.patterns;
        if patterns.is_empty() {
            // Let the generator say what is missing.
            build(generator, &base)?;
        }
        let all = dns_if_fits(
            dns,
            &GenOptions {
                negate: spec.negate,
                ..base
            },
        )?;
        if let Some(all) = all {
            return Ok((
                vec![Rule {
                    program: Some(all),
                    target: "DROP".into(),
                    what: patterns.join(" "),
                }],
                false,
            ));
        }
        let groups = dns_groups(dns, &base)?;
        if spec.negate {
            // Drop what matches no group: RETURN on any group, then DROP.
            let mut rules: Vec<Rule> = groups
                .into_iter()
                .map(|(group, program)| Rule {
                    program: Some(program),
                    target: "RETURN".into(),
                    what: group.join(" "),
                })
                .collect();
            rules.push(Rule {
                program: None,
                target: "DROP".into(),
                what: "not matched by any group".into(),
            });
            return Ok((rules, true));
        }
        let rules = groups
            .into_iter()
            .map(|(group, program)| Rule {
                program: Some(program),
                target: "DROP".into(),
                what: group.join(" "),
            })
            .collect();
        return Ok((rules, false));
    }
    let program = single(
        generator,
        &GenOptions {
            negate: spec.negate,
            ..base
        },
    )?;
    Ok((
        vec![Rule {
            program: Some(program),
            target: "DROP".into(),
            what: generator.args().join(" "),
        }],
        false,
    ))
}

fn quote_words(words: &[String]) -> String {
    words
        .iter()
        .map(|w| format!("'{}'", w.replace('\'', "'\\''")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Renders the deployment script.
pub fn render(spec: &Spec) -> Result<Script, ScriptError> {
    if let Some(comment) = &spec.comment {
        check_comment(comment)?;
    }
    let addresses = spec
        .addresses
        .iter()
        .map(|a| check_address(a, spec.inet6))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(chain) = &spec.chain {
        if chain.name.is_empty()
            || chain.name.len() > 28
            || chain.name.starts_with('-')
            || !chain
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(ScriptError::Invalid(format!(
                "bad chain name '{}': expected 1 to 28 of A-Z a-z 0-9 _ -, not starting with '-'",
                comment_safe(&chain.name)
            )));
        }
        if RESERVED_CHAIN_NAMES.contains(&chain.name.as_str()) {
            return Err(ScriptError::Invalid(format!(
                "bad chain name '{}': it is a built-in chain or target name",
                chain.name
            )));
        }
        if spec.negate {
            return Err(ScriptError::Invalid(
                "--negate has no meaning in chain mode: say what to accept and drop with --accept and --drop".into(),
            ));
        }
    }
    let (rules, needs_chain) = rules(spec)?;
    for rule in &rules {
        if let Some(program) = &rule.program {
            // Never emit a rule the kernel would refuse.
            validate(&program.insns, Profile::XtBpf).map_err(|e| {
                ScriptError::Invalid(format!(
                    "internal: program for '{}' refused: {e}",
                    rule.what
                ))
            })?;
        }
    }
    let family = if spec.inet6 { "ip6" } else { "ip4" };
    let what = match &spec.chain {
        Some(chain) => format!(
            "chain {} accept {} drop {}",
            chain.name,
            chain.accept.join(" "),
            chain.drop.join(" ")
        ),
        None => format!(
            "{} {}",
            generator_name(spec),
            generator_args(spec).join(" ")
        ),
    };
    // Names derive from everything that makes the rules, each list encoded unambiguously.
    let key = match &spec.chain {
        Some(chain) => format!(
            "{family}|chain|{}|{}|{}",
            words_key(std::slice::from_ref(&chain.name)),
            words_key(&chain.accept),
            words_key(&chain.drop)
        ),
        None => format!(
            "{family}|{}|{}|{}",
            spec.negate,
            words_key(&[generator_name(spec).to_string()]),
            words_key(&generator_args(spec))
        ),
    };
    let readable = slug(&match &spec.chain {
        Some(chain) => chain.name.clone(),
        None => format!("{}_{}", generator_name(spec), dns_patterns(spec).join("_")),
    });
    let set_name = limited_name(&format!("bpf{}_", &family[2..]), &readable, &key, 31);
    let chain_name = match &spec.chain {
        Some(chain) => chain.name.clone(),
        None => limited_name("bpf_", &readable, &key, 28),
    };
    let patterns_slug = match &spec.chain {
        Some(chain) => slug(&chain.name),
        None => slug(&dns_patterns(spec).join("_")),
    };
    let kind = if spec.chain.is_some() {
        "chain"
    } else {
        generator_name(spec)
    };
    let mut file_stem = format!("bpf_{kind}_{family}");
    if !patterns_slug.is_empty() {
        file_stem = format!("{file_stem}_{patterns_slug}");
    }
    if file_stem.len() > 120 {
        file_stem = limited_name("", &file_stem, &key, 120);
    }
    if spec.negate {
        file_stem.push_str("_negated");
    }
    let file_name = format!("{file_stem}.sh");
    let comment = match &spec.comment {
        Some(c) => c.clone(),
        None => {
            let mut c: String = format!("bpftools {}", comment_safe(&what))
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || " -_.:,/*@=+%".contains(c) {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            c.truncate(200);
            c
        }
    };
    let chained = needs_chain || spec.chain.is_some();

    let mut s = String::new();
    let _ = writeln!(s, "#!/usr/bin/env bash");
    let _ = writeln!(
        s,
        "# Generated by bpftools iptables-bpf: {}",
        comment_safe(&spec.command)
    );
    let _ = writeln!(s, "#");
    let _ = writeln!(
        s,
        "# Drops UDP port 53 traffic to the addresses in ipset '{set_name}' with iptables -m bpf."
    );
    let _ = writeln!(
        s,
        "# Run as root. Options: --delete removes everything this script adds; --help."
    );
    let _ = writeln!(
        s,
        "# Environment: IPTABLES (default {}), IPSET (ipset), INPUTPLACE (rule position, 1),",
        if spec.inet6 { "ip6tables" } else { "iptables" }
    );
    let _ = writeln!(
        s,
        "#   DEFAULTINT (input interface; default: the one of the default route; 'any' for all)."
    );
    let _ = writeln!(
        s,
        "# Add protected addresses later with: ipset add {set_name} ADDRESS"
    );
    for (index, rule) in rules.iter().enumerate() {
        let _ = writeln!(s, "#");
        let _ = writeln!(
            s,
            "# Rule {}: {} for {}",
            index + 1,
            rule.target,
            comment_safe(&rule.what)
        );
        if let Some(program) = &rule.program {
            for line in program.assembly.lines() {
                let _ = writeln!(s, "#   {}", comment_safe(&line.replace('\t', "    ")));
            }
        }
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "set -euo pipefail");
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "IPTABLES=\"${{IPTABLES:-{}}}\"",
        if spec.inet6 { "ip6tables" } else { "iptables" }
    );
    let _ = writeln!(
        s,
        "IPTABLES_RESTORE=\"${{IPTABLES_RESTORE:-${{IPTABLES}}-restore}}\""
    );
    let _ = writeln!(s, "IPSET=\"${{IPSET:-ipset}}\"");
    let _ = writeln!(s, "INPUTPLACE=\"${{INPUTPLACE:-1}}\"");
    let _ = writeln!(s, "SET={set_name}");
    let _ = writeln!(s, "FAMILY={}", if spec.inet6 { "inet6" } else { "inet" });
    let _ = writeln!(s, "COMMENT={}", quote_words(std::slice::from_ref(&comment)));
    let _ = writeln!(s, "ADDRESSES=({})", quote_words(&addresses));
    if chained {
        let _ = writeln!(s, "CHAIN={chain_name}");
    }
    let _ = writeln!(s, "BYTECODE=(");
    for rule in &rules {
        let bytecode = rule.program.as_ref().map(bytecode_text).unwrap_or_default();
        let _ = writeln!(s, "    '{bytecode}'");
    }
    let _ = writeln!(s, ")");
    let _ = writeln!(
        s,
        "TARGETS=({})",
        rules
            .iter()
            .map(|r| r.target.clone())
            .collect::<Vec<_>>()
            .join(" ")
    );
    s.push_str(SCRIPT_BODY);
    let _ = writeln!(s, "main \"$@\"");
    let s = s.replace("@CHAINED@", if chained { "1" } else { "0" });
    Ok(Script { file_name, text: s })
}

/// The script's logic; the variables above it describe the rules.
const SCRIPT_BODY: &str = r#"
usage() {
    cat <<USAGE
Usage: $0 [--delete] [--help]
  (no option)  create ipset $SET, add the preset addresses, insert the rules (idempotent)
  --delete     remove the rules, the chain and the ipset
USAGE
}

die() {
    echo "$0: $*" >&2
    exit 1
}

detect_interface() {
    local route
    if [ "$FAMILY" = inet6 ]; then
        route=$(ip -6 route show default 2>/dev/null | head -n 1)
    else
        route=$(ip -4 route show default 2>/dev/null | head -n 1)
    fi
    # "default via X dev IFACE ...": print the word after "dev".
    awk '{ for (i = 1; i < NF; i++) if ($i == "dev") { print $(i + 1); exit } }' <<<"$route"
}

# The match for rule $1 (an index into BYTECODE/TARGETS), as words.
rule_match() {
    local index=$1
    RULE=()
    if [ -n "${BYTECODE[$index]}" ]; then
        RULE+=(-m bpf --bytecode "${BYTECODE[$index]}")
    fi
    RULE+=(-m comment --comment "$COMMENT" -j "${TARGETS[$index]}")
}

# The INPUT rule, as words.
input_rule() {
    INPUT_RULE=()
    if [ "$DEFAULTINT" != any ]; then
        INPUT_RULE+=(-i "$DEFAULTINT")
    fi
    INPUT_RULE+=(-p udp --dport 53 -m set --match-set "$SET" dst)
}

restore_quote() {
    printf '"%s"' "$1"
}

apply() {
    "$IPSET" -exist create "$SET" hash:net family "$FAMILY"
    local address
    for address in "${ADDRESSES[@]+"${ADDRESSES[@]}"}"; do
        "$IPSET" -exist add "$SET" "$address"
    done
    input_rule
    local chained=@CHAINED@ index
    if [ "$chained" = 1 ]; then
        if "$IPTABLES" -w -C INPUT "${INPUT_RULE[@]}" -m comment --comment "$COMMENT" -j "$CHAIN" 2>/dev/null; then
            echo "$0: already applied"
            return 0
        fi
    else
        rule_match 0
        if "$IPTABLES" -w -C INPUT "${INPUT_RULE[@]}" "${RULE[@]}" 2>/dev/null; then
            echo "$0: already applied"
            return 0
        fi
    fi
    # One iptables-restore transaction: all rules appear together or none does.
    {
        echo "*filter"
        if [ "$chained" = 1 ]; then
            echo ":$CHAIN - [0:0]"
            echo "-F $CHAIN"
            for index in "${!TARGETS[@]}"; do
                rule_match "$index"
                printf -- '-A %s' "$CHAIN"
                local word
                for word in "${RULE[@]}"; do printf ' %s' "$(restore_quote "$word")"; done
                echo
            done
            printf -- '-I INPUT %s' "$INPUTPLACE"
            for word in "${INPUT_RULE[@]}" -m comment --comment "$COMMENT" -j "$CHAIN"; do
                printf ' %s' "$(restore_quote "$word")"
            done
            echo
        else
            for index in "${!TARGETS[@]}"; do
                rule_match "$index"
                printf -- '-I INPUT %s' "$INPUTPLACE"
                local word
                for word in "${INPUT_RULE[@]}" "${RULE[@]}"; do printf ' %s' "$(restore_quote "$word")"; done
                echo
            done
        fi
        echo "COMMIT"
    } | "$IPTABLES_RESTORE" -w --noflush
    echo "$0: applied"
}

delete() {
    input_rule
    local chained=@CHAINED@ index
    if [ "$chained" = 1 ]; then
        while "$IPTABLES" -w -D INPUT "${INPUT_RULE[@]}" -m comment --comment "$COMMENT" -j "$CHAIN" 2>/dev/null; do :; done
        if "$IPTABLES" -w -n -L "$CHAIN" >/dev/null 2>&1; then
            "$IPTABLES" -w -F "$CHAIN"
            "$IPTABLES" -w -X "$CHAIN"
        fi
    else
        for index in "${!TARGETS[@]}"; do
            rule_match "$index"
            while "$IPTABLES" -w -D INPUT "${INPUT_RULE[@]}" "${RULE[@]}" 2>/dev/null; do :; done
        done
    fi
    if "$IPSET" -n list "$SET" >/dev/null 2>&1; then
        "$IPSET" destroy "$SET"
    fi
    echo "$0: deleted"
}

main() {
    local action=apply
    while [ $# -gt 0 ]; do
        case "$1" in
            --delete) action=delete ;;
            --help|-h) usage; exit 0 ;;
            *) usage >&2; exit 2 ;;
        esac
        shift
    done
    [ "$(id -u)" = 0 ] || die "must run as root"
    command -v "$IPTABLES" >/dev/null || die "$IPTABLES not found"
    command -v "$IPSET" >/dev/null || die "$IPSET not found (Debian: apt-get install ipset)"
    "$IPTABLES" -m bpf --help >/dev/null 2>&1 || die "the iptables bpf match (xt_bpf) is not available"
    DEFAULTINT="${DEFAULTINT:-$(detect_interface)}"
    [ -n "$DEFAULTINT" ] || die "cannot find the input interface: set DEFAULTINT (or DEFAULTINT=any)"
    [ "$DEFAULTINT" = any ] || [[ "$DEFAULTINT" =~ ^[A-Za-z0-9_.@+-]{1,15}$ ]] ||
        die "DEFAULTINT '$DEFAULTINT' is not an interface name"
    [[ "$INPUTPLACE" =~ ^[1-9][0-9]{0,5}$ ]] || die "INPUTPLACE '$INPUTPLACE' is not a rule position (1, 2, ...)"
    "$action"
}

"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_safe_and_distinct() {
        let a = limited_name("bpf4_", &slug("dns_*.www.example.uk"), "key-a", 31);
        let b = limited_name("bpf4_", &slug("dns_*.www.example.uk"), "key-b", 31);
        assert!(a.len() <= 31 && b.len() <= 31, "{a} {b}");
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
        assert_eq!(slug("$(rm -rf /)`x`.example"), "rm_rf_x_example");
    }

    #[test]
    fn hostile_comments_and_addresses_are_refused() {
        assert!(check_comment("ok comment 1.2").is_ok());
        for bad in ["$(id)", "`id`", "a'b", "a\"b", "a\nb", "a;b"] {
            assert!(check_comment(bad).is_err(), "{bad:?}");
        }
        assert!(check_address("192.0.2.1; rm -rf /", false).is_err());
        assert_eq!(
            check_address("192.0.2.0/24", false).unwrap(),
            "192.0.2.0/24"
        );
        assert!(check_address("2001:db8::1", false).is_err());
    }
}
