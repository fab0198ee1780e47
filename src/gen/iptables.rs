//! iptables deployment scripts: an ipset plus `iptables -m bpf` rules, converged atomically.
//!
//! Rules of this module:
//! - every program is checked once, by [`fit`], against the kernel's xt_bpf rules (at most 64
//!   instructions) and `iptables-restore`'s parameter limit (1023 characters of bytecode text)
//!   before it is written: no rule the kernel or iptables would refuse is ever emitted;
//! - a `p0f` signature of version `*` is built for the script's family (its IPv4 program for
//!   iptables, its IPv6 one for ip6tables): a rule only ever sees packets of its family, on
//!   which that program and the `*` one agree, and it is shorter;
//! - a `dns` pattern list whose program does not fit is split into groups, one rule each; with
//!   `--negate` the groups go into a chain that RETURNs what any group matches and drops the
//!   rest (a union of negated DROP rules would drop everything);
//! - nothing that reaches the script can run as shell code: bytecode is digits, commas and
//!   spaces; set and chain names are generated from `[a-z0-9_]`; addresses are parsed as IP
//!   networks; comments are limited to a safe character set; patterns appear only inside `#`
//!   comment lines, with every non-printable character escaped, and as sanitized descriptions;
//! - ownership: a script tags everything it makes with its deployment id (a hash of the
//!   deployment name and family) and its version (a hash of everything that makes the rules:
//!   family, negation, generator and each argument, comment, chain); set and chain names end
//!   with the deployment id, rule comments carry `bpftools=DEPLOYMENT/VERSION/RULE/INTERFACE`.
//!   A script touches only objects tagged with its deployment id, so two deployments never
//!   share or remove each other's objects, and a new version of a deployment replaces the old;
//! - names fit the kernel's limits (ipset 31, chain 28 characters); a user chain name given
//!   with `--chain` is only the readable part of the chain's name, never used as it is;
//! - the script's logic is one template (`iptables/script.bash`, a complete script that
//!   shellcheck checks on its own); only its data block is generated.

use std::fmt::Write;
use std::net::IpAddr;

use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::asm::{format_program, Format};
use crate::gen::p0f::IpVersion;
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
    #[error("pattern '{pattern}' alone does not fit in one iptables bpf rule ({size}; a rule holds at most 64 and {RESTORE_PARAM_MAX} characters of bytecode; for IPv6, 'dns --ext-headers 1' or 0 makes the program shorter)")]
    TooLong {
        /// The pattern.
        pattern: String,
        /// Its size ("70 instructions"), or why it could not even be built.
        size: String,
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
    /// What makes two scripts the same deployment (e.g. `file:/root/guard.sh`, `chain:NAME`):
    /// a script replaces the objects of an earlier script of the same deployment. `None`:
    /// the rules themselves (only an identical script is the same deployment).
    pub deployment: Option<String>,
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
    /// Compare letters exactly (by default, like the original, chain patterns ignore case:
    /// resolvers using DNS 0x20 send `WwW.ExAmple.uK`).
    pub match_case: bool,
    /// Accepted queries jump to ACCEPT, skipping INPUT's later rules (the old behaviour); by
    /// default they RETURN to INPUT and go on through its later rules.
    pub accept_final: bool,
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

/// The longest comment a user may give: the rules' comments add the ownership tag to it and
/// iptables keeps at most 255 characters.
pub const COMMENT_MAX: usize = 200;

/// The script's logic: a complete script whose data block (between the markers) is replaced.
const TEMPLATE: &str = include_str!("iptables/script.bash");
const DATA_BEGIN: &str = "# @BEGIN DATA@\n";
const DATA_END: &str = "# @END DATA@\n";

/// Characters of a name hash: 10 base32 characters, 50 bits.
const HASH_LEN: usize = 10;

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

/// 50 bits of the SHA-256 of `key` in base32 (`a-z2-7`), [`HASH_LEN`] characters: ids of
/// different deployments or versions do not collide by chance.
fn name_hash(key: &str) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let digest = Sha256::digest(key.as_bytes());
    let mut bits = u128::from_be_bytes(digest[..16].try_into().expect("16 bytes"));
    let mut out = String::with_capacity(HASH_LEN);
    for _ in 0..HASH_LEN {
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

/// A name of at most `max` characters: a readable prefix and `hash`.
fn limited_name(prefix: &str, readable: &str, hash: &str, max: usize) -> String {
    let room = max.saturating_sub(prefix.len() + hash.len() + 1);
    let mut readable: String = readable.chars().take(room).collect();
    while readable.ends_with('_') {
        readable.pop();
    }
    if readable.is_empty() {
        // Owned objects are found by the pattern PREFIX*_HASH: keep the separator.
        readable.push('d');
    }
    format!("{prefix}{readable}_{hash}")
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
    if comment.contains("bpftools=") {
        return Err(ScriptError::Invalid(
            "comment contains 'bpftools=', the form of the deployments' ownership tags: a rule carrying it could be taken for another deployment's"
                .into(),
        ));
    }
    if comment.len() > COMMENT_MAX {
        return Err(ScriptError::Invalid(format!(
            "comment is {} characters long, at most {COMMENT_MAX} are accepted (the rules add their ownership tag to it, iptables keeps 255)",
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

/// Parses an address or network (`192.0.2.1`, `2001:db8::/32`) of the right family and
/// writes it as ipset lists it (a host without its prefix, a network at its first address),
/// so the script can compare it with the set's members.
pub fn check_address(text: &str, inet6: bool) -> Result<String, ScriptError> {
    let (addr, prefix) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (text, None),
    };
    let ip: IpAddr = addr.parse().map_err(|_| {
        let octal = addr.split('.').count() == 4
            && addr.split('.').any(|o| {
                o.len() > 1 && o.starts_with('0') && o.bytes().all(|b| b.is_ascii_digit())
            });
        let hint = if octal {
            " (no leading zeros: ipset would read them as octal)"
        } else {
            ""
        };
        ScriptError::Invalid(format!(
            "bad address '{}': expected an IP address or network{hint}",
            comment_safe(text)
        ))
    })?;
    if ip.is_ipv6() != inet6 {
        let hint = if inet6 {
            "-6 makes an IPv6 script: generate a second script without -6 for IPv4 addresses"
        } else {
            "use -6 for IPv6 (one script per family)"
        };
        return Err(ScriptError::Invalid(format!(
            "address '{text}' is {}, the rules are for {} ({hint})",
            if ip.is_ipv6() { "IPv6" } else { "IPv4" },
            if inet6 { "IPv6" } else { "IPv4" }
        )));
    }
    let max: u8 = if inet6 { 128 } else { 32 };
    let bits = match prefix {
        None => max,
        Some(p) => p.parse().ok().filter(|b| *b <= max).ok_or_else(|| {
            ScriptError::Invalid(format!(
                "bad prefix length in '{}': expected 1..{max}",
                comment_safe(text)
            ))
        })?,
    };
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
    let network = match ip {
        IpAddr::V4(v4) => {
            let mask = u32::MAX << (32 - u32::from(bits));
            IpAddr::from((u32::from(v4) & mask).to_be_bytes())
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX << (128 - u32::from(bits));
            IpAddr::from((u128::from(v6) & mask).to_be_bytes())
        }
    };
    let network = ipset_text(network);
    if bits == max {
        Ok(network)
    } else {
        Ok(format!("{network}/{bits}"))
    }
}

/// An address as ipset (glibc's `inet_ntop`) writes it: Rust's form, except that an
/// IPv4-compatible IPv6 address (`::a.b.c.d`, the first 96 bits zero, the next 16 not) keeps
/// its dotted form.
fn ipset_text(ip: IpAddr) -> String {
    if let IpAddr::V6(v6) = ip {
        let segments = v6.segments();
        if segments[..6].iter().all(|s| *s == 0) && segments[6] != 0 {
            let [.., a, b, c, d] = v6.octets();
            return format!("::{a}.{b}.{c}.{d}");
        }
    }
    ip.to_string()
}

/// True when a generator argument reads as an address or network: protected addresses are
/// options of iptables-bpf (`-i`), given before the generator.
pub fn looks_like_address(arg: &str) -> bool {
    let addr = arg.split_once('/').map_or(arg, |(a, _)| a);
    addr.parse::<IpAddr>().is_ok()
}

/// The program's bytecode text as the rule carries it.
fn bytecode_text(generated: &Generated) -> String {
    format_program(&generated.insns, Format::Bytecode)
        .trim_end()
        .to_string()
}

/// Why a program cannot be one rule.
enum Unfit {
    /// xt_bpf refuses it (too long, or not a valid program).
    XtBpf(String),
    /// Its bytecode text is longer than `iptables-restore` reads.
    Text(usize),
}

/// The one check that a program can be loaded as one rule: xt_bpf's rules (at most 64
/// instructions) and a bytecode text `iptables-restore` reads.
fn fit(generated: &Generated) -> Result<(), Unfit> {
    validate(&generated.insns, Profile::XtBpf).map_err(|e| Unfit::XtBpf(e.to_string()))?;
    let length = bytecode_text(generated).len();
    if length > RESTORE_PARAM_MAX {
        return Err(Unfit::Text(length));
    }
    Ok(())
}

/// A `dns` program for `spec`, or `None` when it cannot be one rule (too long, or a jump that
/// a single program cannot encode).
fn dns_if_fits(spec: &DnsSpec, opts: &GenOptions) -> Result<Option<Generated>, ScriptError> {
    match build(&Generator::Dns(spec.clone()), opts) {
        Ok(program) if fit(&program).is_ok() => Ok(Some(program)),
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
        let mut fitted = dns_if_fits(&alone, opts)?;
        if fitted.is_none() && opts.inet6 {
            // Over IPv6, a pattern too long for one rule walks fewer extension headers: a
            // query behind more than it walks is matched all the same (unless the spec says
            // unwalked headers pass), so nothing gets through that the full walk would stop.
            let flag = spec.ext_headers & crate::gen::EXT_HEADERS_UNWALKED_PASS;
            let walked = spec.ext_headers & !crate::gen::EXT_HEADERS_UNWALKED_PASS;
            for fewer in (0..walked).rev() {
                let shorter = DnsSpec {
                    ext_headers: fewer | flag,
                    ..alone.clone()
                };
                fitted = dns_if_fits(&shorter, opts)?;
                if fitted.is_some() {
                    break;
                }
            }
        }
        let Some(program) = fitted else {
            let size = match build(&Generator::Dns(alone), opts) {
                Ok(program) => format!("{} instructions", program.insns.len()),
                Err(e) => format!("its program cannot be built: {e}"),
            };
            return Err(ScriptError::TooLong {
                pattern: pattern.clone(),
                size,
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
    match fit(&generated) {
        Ok(()) => Ok(generated),
        Err(Unfit::XtBpf(e)) => Err(ScriptError::Invalid(format!(
            "the {generator} program cannot be loaded by xt_bpf: {e}"
        ))),
        Err(Unfit::Text(length)) => Err(ScriptError::Invalid(format!(
            "the {generator} program's bytecode is {length} characters long; iptables-restore reads at most {RESTORE_PARAM_MAX}"
        ))),
    }
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
        // Accepted names RETURN: they go on through INPUT's later rules (a host's own rule
        // dropping a client still applies to them).
        let accept = if chain.accept_final {
            "ACCEPT"
        } else {
            "RETURN"
        };
        for (patterns, target) in [(&chain.accept, accept), (&chain.drop, "DROP")] {
            for pattern in patterns {
                if pattern == "any" {
                    rules.push(Rule {
                        program: None,
                        target: target.into(),
                        what: "any".into(),
                    });
                    continue;
                }
                // An IPv6 program too long for one rule walks fewer extension headers: a
                // query behind more of them than it walks is matched all the same (accepted
                // by an accept rule, dropped by a drop rule), so the rule stays safe.
                let build_with = |ext_headers: u8| {
                    single(
                        &Generator::Dns(DnsSpec {
                            patterns: vec![pattern.clone()],
                            ignore_case: !chain.match_case,
                            ext_headers,
                        }),
                        &base,
                    )
                };
                let mut program = build_with(crate::gen::DEFAULT_EXT_HEADERS);
                if spec.inet6 {
                    for fewer in (0..crate::gen::DEFAULT_EXT_HEADERS).rev() {
                        if program.is_ok() {
                            break;
                        }
                        if let Ok(shorter) = build_with(fewer) {
                            program = Ok(shorter);
                        }
                    }
                }
                let program = program?;
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
        &family_generator(generator, spec.inet6),
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

/// The generator whose program a rule of this family holds: iptables hands xt_bpf only IPv4
/// packets and ip6tables only IPv6 ones, so a p0f signature of version `*` is built as that
/// family's signature ([`P0fSpec::for_family`](crate::gen::P0fSpec::for_family)), which gives
/// the same verdicts on every packet the rule can see, in fewer instructions (a `*` program
/// checks both families and often needs more than xt_bpf's 64).
fn family_generator(generator: &Generator, inet6: bool) -> Generator {
    match generator {
        Generator::P0f(p0f) => Generator::P0f(p0f.for_family(inet6)),
        other => other.clone(),
    }
}

fn quote_words(words: &[String]) -> String {
    words
        .iter()
        .map(|w| format!("'{}'", w.replace('\'', "'\\''")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Text shown by the script (descriptions, the deployment's name): characters that mean
/// nothing to a shell inside single quotes, everything else `_`.
fn display_safe(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || " -_.:,/*@=+%".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    out.truncate(max);
    out
}

/// The readable part of the set's and chain's names: it must not change between versions of
/// a deployment, so it comes from the deployment's name (the script file's name without
/// `bpf_`, the family and `.sh`; the chain's name).
fn deployment_readable(deployment: &str) -> String {
    let last = deployment
        .rsplit(['/', ':'])
        .next()
        .unwrap_or(deployment)
        .trim_end_matches(".sh");
    let last = last.strip_prefix("bpf_").unwrap_or(last);
    let text = slug(last).replace("_ip4", "").replace("_ip6", "");
    if text.is_empty() {
        "d".to_string()
    } else {
        text
    }
}

/// The file name a script gets when none is given (`bpf_dns_ip4_any_www_example_uk.sh`).
pub fn default_file_name(spec: &Spec) -> String {
    let family = if spec.inet6 { "ip6" } else { "ip4" };
    let patterns_slug = match &spec.chain {
        Some(chain) => slug(&chain.name),
        None => slug(&dns_patterns(spec).join("_")),
    };
    let kind = if spec.chain.is_some() {
        "chain"
    } else {
        generator_name(spec)
    };
    let mut file_stem = format!("bpf_{}_{family}", slug(kind));
    if !patterns_slug.is_empty() {
        file_stem = format!("{file_stem}_{patterns_slug}");
    }
    if file_stem.len() > 120 {
        file_stem = limited_name("", &file_stem, &name_hash(&file_stem), 120);
    }
    if spec.negate {
        file_stem.push_str("_negated");
    }
    format!("{file_stem}.sh")
}

/// Refuses generator arguments that read as addresses: `iptables-bpf dns -- '*.x' -i
/// 192.0.2.53` would otherwise make 192.0.2.53 a DNS pattern and leave the set empty.
fn check_patterns_are_not_addresses(patterns: &[String]) -> Result<(), ScriptError> {
    if let Some(address) = patterns.iter().find(|p| looks_like_address(p)) {
        let address = comment_safe(address);
        return Err(ScriptError::Invalid(format!(
            "'{address}' after the generator reads as an address, not a DNS pattern: protected addresses are given before the generator, e.g. 'iptables-bpf -i {address} dns -- PATTERN' (a DNS name written like an address: add a final dot, '{address}.')"
        )));
    }
    Ok(())
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
        let patterns: Vec<String> = chain
            .accept
            .iter()
            .chain(&chain.drop)
            .filter(|p| *p != "any")
            .cloned()
            .collect();
        check_patterns_are_not_addresses(&patterns)?;
    } else {
        check_patterns_are_not_addresses(&dns_patterns(spec))?;
    }
    let (rules, needs_chain) = rules(spec)?;
    let family = if spec.inet6 { "ip6" } else { "ip4" };
    let comment = match &spec.comment {
        Some(c) => c.clone(),
        None => {
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
            display_safe(&format!("bpftools {}", comment_safe(&what)), COMMENT_MAX)
        }
    };
    // The version: everything that makes the rules, each list encoded unambiguously.
    let key = match &spec.chain {
        Some(chain) => format!(
            "1|{family}|chain|{}|{}|{}|{}|{}|{}",
            words_key(std::slice::from_ref(&chain.name)),
            words_key(&chain.accept),
            words_key(&chain.drop),
            chain.match_case,
            words_key(std::slice::from_ref(&comment)),
            chain.accept_final,
        ),
        None => format!(
            "1|{family}|{}|{}|{}|{}",
            spec.negate,
            words_key(&[generator_name(spec).to_string()]),
            words_key(&generator_args(spec)),
            words_key(std::slice::from_ref(&comment)),
        ),
    };
    // The transport the programs read (dns: udp, p0f: tcp); port 53 of the protected addresses.
    let proto = spec
        .generator
        .as_ref()
        .and_then(Generator::transport)
        .unwrap_or("udp");
    let version = name_hash(&format!("{key}|{proto}"));
    let deployment_name = spec
        .deployment
        .clone()
        .unwrap_or_else(|| format!("rules:{version}"));
    let deployment = name_hash(&format!(
        "{family}|{}",
        words_key(std::slice::from_ref(&deployment_name))
    ));
    // The set's and chain's names come from the deployment alone: they never change between
    // versions (chain mode or not, other patterns), so a new version keeps the set and the
    // addresses added to it.
    let readable = match (&spec.deployment, &spec.chain) {
        (Some(_), _) => deployment_readable(&deployment_name),
        (None, Some(chain)) => slug(&chain.name),
        (None, None) => {
            let patterns = slug(&dns_patterns(spec).join("_"));
            slug(&format!("{}_{patterns}", generator_name(spec)))
        }
    };
    let set_name = limited_name(&format!("bpf{}_", &family[2..]), &readable, &deployment, 31);
    let chained = needs_chain || spec.chain.is_some();
    let chain_name = if chained {
        limited_name("bpf_", &readable, &deployment, 28)
    } else {
        String::new()
    };

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
        "# Drops {} port 53 traffic to the addresses in ipset '{set_name}' with {} -m bpf.",
        proto.to_uppercase(),
        if spec.inet6 { "ip6tables" } else { "iptables" }
    );
    let _ = writeln!(
        s,
        "# Run as root: ./SCRIPT [ADDRESS...] applies; --status, --dry-run, --delete, --help."
    );
    let _ = writeln!(
        s,
        "# Deployment {deployment}, version {version}: see --help for what that means."
    );
    if let Some(Generator::P0f(p0f)) = &spec.generator {
        if p0f.version == IpVersion::Any {
            let (tool, family) = if spec.inet6 {
                ("ip6tables", "IPv6")
            } else {
                ("iptables", "IPv4")
            };
            let _ = writeln!(
                s,
                "# The p0f signature's version is * (either): {tool} gives the rule {family} packets only,\n# so it holds the signature's {family} program, which gives the same verdicts on them."
            );
        }
    }
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
    let _ = writeln!(
        s,
        "# Started by another shell (sh ./SCRIPT): run again under bash, before any bash syntax."
    );
    let _ = writeln!(
        s,
        "if [ -z \"${{BASH_VERSION:-}}\" ]; then exec bash \"$0\" \"$@\"; fi"
    );
    let _ = writeln!(s, "FAMILY={}", if spec.inet6 { "inet6" } else { "inet" });
    let _ = writeln!(
        s,
        "IPT_DEFAULT={}",
        if spec.inet6 { "ip6tables" } else { "iptables" }
    );
    let _ = writeln!(s, "DEPLOYMENT={deployment}");
    let _ = writeln!(s, "VERSION={version}");
    let _ = writeln!(
        s,
        "DEPLOYMENT_NAME={}",
        quote_words(&[display_safe(&deployment_name, 300)])
    );
    let _ = writeln!(s, "SET={set_name}");
    let _ = writeln!(s, "CHAIN='{chain_name}'");
    let _ = writeln!(s, "PROTO={proto}");
    let _ = writeln!(s, "COMMENT={}", quote_words(std::slice::from_ref(&comment)));
    let _ = writeln!(s, "ADDRESSES=({})", quote_words(&addresses));
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
    let what: Vec<String> = rules.iter().map(|r| display_safe(&r.what, 200)).collect();
    let _ = writeln!(s, "WHAT=({})", quote_words(&what));
    s.push_str(template_body());
    Ok(Script {
        file_name: default_file_name(spec),
        text: s,
    })
}

/// The template after its data block.
fn template_body() -> &'static str {
    let begin = TEMPLATE.find(DATA_BEGIN).expect("template data marker");
    let end = TEMPLATE[begin..].find(DATA_END).expect("template data end") + begin;
    &TEMPLATE[end + DATA_END.len()..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_safe_and_distinct() {
        let a = limited_name("bpf4_", &slug("dns_*.www.example.uk"), &name_hash("a"), 31);
        let b = limited_name("bpf4_", &slug("dns_*.www.example.uk"), &name_hash("b"), 31);
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
