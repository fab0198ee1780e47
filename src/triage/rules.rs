//! Rule candidates for each flood, built by the suite's own generators, and the choice among
//! them once the second pass has run every candidate over the capture.
//!
//! Every candidate is a `bpfgen` argument list for the deployable program (offset 0, the IP
//! header first, as xt_bpf sees packets); it is built in process with [`crate::gen`] and run
//! by [`crate::vm`]. A rule applies to the packets of its family only (`-6` rules to IPv6),
//! and only to UDP packets to port 53, as the deployed iptables rules (`-p udp --dport 53`).
//!
//! Candidates per flood and family:
//! - random subdomains: `dns` with `*` and with a length-bounded `*{m-n}` child label (with
//!   `-i` when the flood randomizes case), each with one accept rule before it listing the
//!   legitimate names (established, zone, baseline) the wildcard would also match;
//! - fingerprints: `tcpdump` comparing the header bits that separate the flood from the rest
//!   (flags word, additional count, question type), `suffix` of the question when the flood
//!   sends no EDNS or of its OPT record when it does, and `dns_validate` when the flood's flags
//!   are ones it refuses.
//!
//! The plan kept for a flood is the one that drops at least 99% of it with the fewest
//! legitimate packets, then the most of it, then the fewest rules.

use crate::gen::dns::{parse_pattern, Part, Pattern};
use crate::gen::{
    build as generate, DnsSpec, DnsValidateSpec, GenOptions, Generator, SuffixSpec, TcpdumpSpec,
    DEFAULT_EXT_HEADERS,
};
use crate::triage::detect::{depth_under, Flood, FloodKind, Knowledge};
use crate::triage::packet::{name_text, Edns, Family};
use crate::triage::stats::{Fingerprint, Stats};
use crate::vm::{Profile, Program};

/// Most legitimate names listed in one accept rule (a long list is several rules).
pub const NAMES_PER_ACCEPT: usize = 150;
/// Most legitimate names listed before a flood's drop rule.
pub const MAX_EXCEPTIONS: usize = 2_000;
/// Most source addresses in one `tcpdump` rule (IPv4, IPv6), so that it fits xt_bpf's 64
/// instructions.
pub const HOSTS_PER_RULE: (usize, usize) = (28, 6);
/// Most rules for one flood's sources.
pub const MAX_SOURCE_RULES: usize = 8;

/// What a rule does with the packets it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Let them through (no later rule sees them).
    Accept,
    /// Drop them.
    Drop,
}

impl Action {
    /// `accept` or `drop`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Accept => "accept",
            Action::Drop => "drop",
        }
    }
}

/// A candidate rule, built and ready to run.
pub struct Candidate {
    /// Accept or drop.
    pub action: Action,
    /// The family it applies to.
    pub family: Family,
    /// The generator and its arguments.
    pub generator: Generator,
    /// The program (offset 0).
    pub program: Program,
    /// What it is for, in words.
    pub note: String,
    /// An accept rule for names judged flood that only legitimate sources asked.
    pub spares: bool,
}

impl Candidate {
    /// The full `bpfgen` argument list for the deployable program.
    pub fn bpfgen(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.family == Family::V6 {
            out.push("-6".to_string());
        }
        out.push(self.generator.name().to_string());
        out.extend(self.generator.args());
        out
    }
}

/// Candidates in the order they are tried for one flood and family: each plan is a list of
/// candidate indexes (accepts first, then drops).
pub struct Plan {
    /// The flood (index in the flood list).
    pub flood: usize,
    /// The family.
    pub family: Family,
    /// Candidate indexes, in rule order.
    pub rules: Vec<usize>,
    /// Rank among the flood's plans when all else is equal (lower first).
    pub preference: usize,
    /// Whether it accepts names judged flood that only legitimate sources asked.
    pub spares: bool,
    /// Names that exist and that its drop rule matches, beyond the [`MAX_EXCEPTIONS`] its
    /// accept rules list (most asked first): an iptables chain of that many rules is cut
    /// there, while `xdp-bpf`'s name maps take them all.
    pub accepts_beyond_cut: Vec<String>,
}

/// Whether `name` (lowercase wire form) matches the parsed pattern.
pub fn pattern_matches(pattern: &Pattern, name: &[u8]) -> bool {
    let labels: Vec<&[u8]> = crate::triage::packet::labels(name).collect();
    fn go(parts: &[Part], labels: &[&[u8]]) -> bool {
        match parts.split_first() {
            None => labels.is_empty(),
            Some((Part::AnySuffix, _)) => true,
            Some((part, rest)) => {
                let Some((label, more)) = labels.split_first() else {
                    return false;
                };
                let fits = match part {
                    Part::Literal(bytes) => {
                        bytes.len() == label.len()
                            && bytes.iter().zip(label.iter()).all(|(m, &b)| {
                                // Names here are lowercase: compare both cases of letters.
                                (b | m.mask) == m.value
                                    || (b.to_ascii_uppercase() | m.mask) == m.value
                            })
                    }
                    Part::Any(None) => !label.is_empty(),
                    Part::Any(Some(bounds)) => {
                        label.len() >= usize::from(bounds.min.max(1))
                            && label.len() <= usize::from(bounds.max)
                    }
                    Part::AnySuffix => true,
                };
                fits && go(rest, more)
            }
        }
    }
    go(&pattern.parts, &labels)
}

/// Why a candidate could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The generator refused its arguments (e.g. a program over 64 instructions, tcpdump
    /// missing).
    #[error(transparent)]
    Generate(#[from] crate::gen::GenError),
    /// The program it made is not one the kernel accepts.
    #[error(transparent)]
    Validate(#[from] crate::vm::ValidationError),
}

/// Builds a candidate with the suite's generator.
pub fn build(
    action: Action,
    family: Family,
    generator: Generator,
    note: String,
) -> Result<Candidate, BuildError> {
    let opts = GenOptions {
        inet6: family == Family::V6,
        negate: false,
        offset: 0,
    };
    let generated = generate(&generator, &opts)?;
    let program = Program::new(&generated.insns, Profile::Socket)?;
    Ok(Candidate {
        action,
        family,
        generator,
        program,
        note,
        spares: false,
    })
}

/// Everything the candidate builder produced: candidates, plans, and what could not be built.
#[derive(Default)]
pub struct Candidates {
    /// The candidates.
    pub list: Vec<Candidate>,
    /// The plans, per flood and family.
    pub plans: Vec<Plan>,
    /// Candidates that could not be built, and why (e.g. tcpdump missing).
    pub skipped: Vec<String>,
}

impl Candidates {
    /// Adds a built candidate (or notes why it could not be built); the index of it, or of
    /// the same rule added before.
    pub fn add(&mut self, candidate: Result<Candidate, BuildError>, what: &str) -> Option<usize> {
        match candidate {
            Ok(c) => {
                if let Some(index) = self
                    .list
                    .iter()
                    .position(|k| k.bpfgen() == c.bpfgen() && k.action == c.action)
                {
                    return Some(index);
                }
                self.list.push(c);
                Some(self.list.len() - 1)
            }
            Err(e) => {
                self.skipped.push(format!("{what}: {e}"));
                None
            }
        }
    }
}

/// Builds the candidates and plans for every flood.
pub fn candidates(floods: &[Flood], stats: &Stats, known: &Knowledge<'_>) -> Candidates {
    let mut out = Candidates::default();
    for (index, flood) in floods.iter().enumerate() {
        for family in [Family::V4, Family::V6] {
            // A random-subdomain flood gets rules for both families when the server takes
            // queries over both: resolvers move to the other family when one is dropped.
            let both = matches!(flood.kind, FloodKind::RandomSubdomain { .. })
                && stats.queries_v6 > 0
                && stats.queries_v6 < stats.queries;
            if !flood.has_family(family) && !both {
                continue;
            }
            match &flood.kind {
                FloodKind::RandomSubdomain { .. } => {
                    random_plans(index, flood, family, stats, known, &mut out)
                }
                FloodKind::Fingerprint { .. } => {
                    fingerprint_plans(index, flood, family, stats, &mut out)
                }
                FloodKind::Sources { .. } => source_plans(index, flood, family, &mut out),
            }
        }
    }
    out
}

fn random_plans(
    index: usize,
    flood: &Flood,
    family: Family,
    stats: &Stats,
    known: &Knowledge<'_>,
    out: &mut Candidates,
) {
    let FloodKind::RandomSubdomain {
        suffix,
        established_at,
        depths,
        lengths,
        randomized_case,
        ..
    } = &flood.kind
    else {
        return;
    };
    let parent = name_text(suffix);
    let bounded = format!("*{{{}-{}}}", lengths.0, lengths.1);
    // Names under the parent that exist (zone, responses, baseline) or repeat.
    let mut legit: Vec<(&[u8], u32)> = stats
        .names
        .iter()
        .filter(|(name, s)| {
            s.count > 0
                && depth_under(name, suffix).is_some()
                && (s.count >= *established_at || known.exists(stats, name).is_some())
        })
        .map(|(name, s)| (&name[..], s.count))
        .collect();
    if let Some(zone) = known.zone {
        for name in zone.names() {
            if depth_under(name, suffix).is_some() && !legit.iter().any(|(n, _)| *n == name) {
                legit.push((name, 0));
            }
        }
    }
    legit.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    for (preference, child) in [bounded.as_str(), "*"].into_iter().enumerate() {
        let patterns: Vec<String> = depths
            .iter()
            .map(|&depth| {
                let mut p = "*.".repeat(depth - 1);
                p.push_str(child);
                p.push('.');
                p.push_str(&parent);
                p
            })
            .collect();
        let parsed: Vec<Pattern> = patterns
            .iter()
            .filter_map(|p| parse_pattern(p, true).ok())
            .collect();
        let matched: Vec<&(&[u8], u32)> = legit
            .iter()
            .filter(|(name, _)| parsed.iter().any(|p| pattern_matches(p, name)))
            .collect();
        if matched.len() > MAX_EXCEPTIONS {
            out.skipped.push(format!(
                "{} names under {parent} exist and match {}: only the {MAX_EXCEPTIONS} most asked are accepted by the rules (as by iptables-bpf), the other {} are dropped (xdp-bpf's commands accept every one)",
                matched.len(),
                patterns.join(" "),
                matched.len() - MAX_EXCEPTIONS
            ));
        }
        let exceptions: Vec<String> = matched
            .iter()
            .take(MAX_EXCEPTIONS)
            .map(|(name, _)| name_text(name))
            // A name that reads as an option is written so that no parser takes it for one.
            .collect();
        let accepts_beyond_cut: Vec<String> = matched
            .iter()
            .skip(MAX_EXCEPTIONS)
            .map(|(name, _)| name_text(name))
            .collect();
        let mut rules = Vec::new();
        let mut complete = true;
        for chunk in exceptions.chunks(NAMES_PER_ACCEPT) {
            let generator = dns(chunk.to_vec(), true);
            let note = format!(
                "names under {parent} that exist and that {} also matches",
                patterns.join(" ")
            );
            match out.add(
                build(Action::Accept, family, generator, note),
                "accept exceptions",
            ) {
                Some(c) => rules.push(c),
                None => complete = false,
            }
        }
        if !complete {
            // Without all of its exceptions the plan would drop names that exist.
            continue;
        }
        let note = format!("random labels under {parent}");
        // With accept exceptions the deployment is iptables-bpf's chain mode, whose patterns
        // ignore case: the drop rule measured here does too.
        let generator = dns(patterns.clone(), *randomized_case || !exceptions.is_empty());
        let Some(drop) = out.add(build(Action::Drop, family, generator, note), "drop") else {
            continue;
        };
        rules.push(drop);
        out.plans.push(Plan {
            flood: index,
            family,
            rules,
            preference,
            spares: false,
            accepts_beyond_cut,
        });
    }
}

fn source_plans(index: usize, flood: &Flood, family: Family, out: &mut Candidates) {
    let FloodKind::Sources { hosts, .. } = &flood.kind else {
        return;
    };
    let of_family: Vec<String> = hosts
        .iter()
        .filter(|a| a.is_ipv6() == (family == Family::V6))
        .map(|a| a.to_string())
        .collect();
    if of_family.is_empty() {
        return;
    }
    let per_rule = match family {
        Family::V4 => HOSTS_PER_RULE.0,
        Family::V6 => HOSTS_PER_RULE.1,
    };
    let chunks: Vec<&[String]> = of_family.chunks(per_rule).collect();
    if chunks.len() > MAX_SOURCE_RULES {
        out.skipped.push(format!(
            "{} sources of {}: more than {MAX_SOURCE_RULES} rules of {per_rule} addresses, no source rule offered",
            of_family.len(),
            flood.describe()
        ));
        return;
    }
    let mut rules = Vec::new();
    for chunk in chunks {
        let expr = chunk
            .iter()
            .map(|a| format!("src host {a}"))
            .collect::<Vec<_>>()
            .join(" or ");
        let note = format!("the flood's {} source address(es)", chunk.len());
        match out.add(
            build(
                Action::Drop,
                family,
                Generator::Tcpdump(TcpdumpSpec { expr }),
                note,
            ),
            "tcpdump",
        ) {
            Some(c) => rules.push(c),
            None => return,
        }
    }
    out.plans.push(Plan {
        flood: index,
        family,
        rules,
        preference: 0,
        spares: false,
        accepts_beyond_cut: Vec::new(),
    });
}

/// The header comparisons of a fingerprint rule: the flag bits compared, whether the query
/// must have no additional record (no EDNS), whether its type is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct HeaderMatch {
    mask: u16,
    no_edns: bool,
    with_type: bool,
}

/// The fewest header comparisons that leave no other query of the capture matched (or as few
/// as can be): every flag bit whose value in the flood is rare elsewhere (the tool's marks),
/// then, greedily, the comparison (one more bit, no EDNS, the type) that leaves the fewest
/// other queries matched, while that number falls.
fn narrowest_header_match(print: &Fingerprint, stats: &Stats) -> HeaderMatch {
    let flags = print.header.flags;
    let flag_bits: Vec<u16> = (0..16).rev().map(|bit| 1u16 << bit).collect();
    let others: Vec<(Fingerprint, u64)> = stats
        .prints
        .iter()
        .filter(|(p, _)| *p != print)
        .map(|(p, c)| (*p, *c))
        .collect();
    let other_total: u64 = others.iter().map(|(_, c)| c).sum();
    let mut best_so_far = HeaderMatch {
        mask: flag_bits
            .iter()
            .filter(|&&bit| {
                let same: u64 = others
                    .iter()
                    .filter(|(p, _)| p.header.flags & bit == flags & bit)
                    .map(|(_, c)| c)
                    .sum();
                (same as f64) < 0.001 * other_total as f64
            })
            .fold(0u16, |mask, bit| mask | bit),
        no_edns: false,
        with_type: false,
    };
    let matched = |m: HeaderMatch| -> u64 {
        others
            .iter()
            .filter(|(p, _)| {
                p.header.flags & m.mask == flags & m.mask
                    && (!m.no_edns || p.header.edns == Edns::None)
                    && (!m.with_type || p.qtype == print.qtype)
            })
            .map(|(_, c)| c)
            .sum()
    };
    let mut current = if best_so_far.mask == 0 {
        u64::MAX
    } else {
        matched(best_so_far)
    };
    while current > 0 {
        let here = best_so_far;
        let mut steps: Vec<HeaderMatch> = flag_bits
            .iter()
            .filter(|&&bit| here.mask & bit == 0)
            .map(|&bit| HeaderMatch {
                mask: here.mask | bit,
                ..here
            })
            .collect();
        if !here.no_edns && print.header.edns == Edns::None {
            steps.push(HeaderMatch {
                no_edns: true,
                ..here
            });
        }
        if !here.with_type {
            steps.push(HeaderMatch {
                with_type: true,
                ..here
            });
        }
        // The first step with the fewest matches (ties keep the earlier one).
        let mut best: Option<(u64, HeaderMatch)> = None;
        for step in steps {
            let m = matched(step);
            if best.is_none_or(|b| m < b.0) {
                best = Some((m, step));
            }
        }
        match best {
            Some((m, step)) if m < current => {
                current = m;
                best_so_far = step;
            }
            _ => break,
        }
    }
    best_so_far
}

/// The tcpdump expression of a header match (none when it compares nothing).
fn header_expression(
    family: Family,
    name: &[u8],
    print: &Fingerprint,
    m: HeaderMatch,
) -> Option<String> {
    let (base, udp) = match family {
        Family::V4 => ("udp[", 0usize),
        Family::V6 => ("ip6[", 40usize),
    };
    let at = |offset: usize| format!("{base}{}", udp + offset);
    let mut terms = Vec::new();
    if family == Family::V6 {
        terms.push("ip6[6] = 17".to_string());
    }
    if m.mask != 0 {
        terms.push(format!(
            "{}:2] & 0x{:04x} = 0x{:04x}",
            at(10),
            m.mask,
            print.header.flags & m.mask
        ));
    }
    if m.no_edns {
        terms.push(format!("{}:2] = 0", at(18)));
    }
    if m.with_type {
        // The type follows the name; checking the name's length byte too keeps other names of
        // other lengths from being read at the wrong place.
        let first = name.first().copied().unwrap_or(0);
        terms.push(format!("{}] = {first}", at(20)));
        terms.push(format!("{}:2] = {}", at(20 + name.len() + 1), print.qtype));
    }
    (terms.len() > usize::from(family == Family::V6)).then(|| terms.join(" and "))
}

/// The drop candidates of a fingerprint flood, most preferred first, each with the name its
/// generator is known by (for the skipped list).
fn fingerprint_rules(
    family: Family,
    name: &[u8],
    print: &Fingerprint,
    upper: bool,
    stats: &Stats,
) -> Vec<(Result<Candidate, BuildError>, &'static str)> {
    let drop = |generator, note: String| build(Action::Drop, family, generator, note);
    let mut out = Vec::new();
    // tcpdump: the fewest comparisons that leave no other query matched.
    let matched = narrowest_header_match(print, stats);
    if let Some(expr) = header_expression(family, name, print, matched) {
        out.push((
            drop(
                Generator::Tcpdump(TcpdumpSpec { expr }),
                "the flood's header fingerprint".into(),
            ),
            "tcpdump",
        ));
    }
    // The question at the end of the packet, when nothing follows it.
    if print.header.edns == Edns::None && !upper {
        let mut tail = Vec::new();
        tail.extend_from_slice(name);
        tail.push(0);
        tail.extend_from_slice(&print.qtype.to_be_bytes());
        tail.extend_from_slice(&print.qclass.to_be_bytes());
        out.push((
            drop(
                Generator::Suffix(SuffixSpec { bytes: tail }),
                format!("queries ending with the question {}", name_text(name)),
            ),
            "suffix",
        ));
    }
    // The OPT record at the end of the packet, when the flood's EDNS (size, DO bit) is its
    // mark: a record without options, as tools send it.
    if let Edns::Opt { size, dnssec_ok } = print.header.edns {
        let mut opt = vec![0u8, 0, 41];
        opt.extend_from_slice(&size.to_be_bytes());
        opt.extend_from_slice(&[0, 0, if dnssec_ok { 0x80 } else { 0 }, 0, 0, 0]);
        out.push((
            drop(
                Generator::Suffix(SuffixSpec { bytes: opt }),
                format!(
                    "queries ending with an OPT record of size {size}{}",
                    if dnssec_ok { " and DO" } else { "" }
                ),
            ),
            "suffix",
        ));
    }
    // dns_validate, when the flags are ones it refuses.
    let flags = print.header.flags;
    let strict = if flags & 0xfe0f != 0 {
        Some(false)
    } else if flags & 0xff8f != 0 {
        Some(true)
    } else {
        None
    };
    if let Some(strict) = strict {
        out.push((
            drop(
                Generator::DnsValidate(DnsValidateSpec {
                    strict,
                    ext_headers: DEFAULT_EXT_HEADERS,
                }),
                if strict {
                    "malformed requests (strict)"
                } else {
                    "malformed requests"
                }
                .into(),
            ),
            if strict {
                "dns_validate --strict"
            } else {
                "dns_validate"
            },
        ));
    }
    out
}

/// The plans of a fingerprint flood: one rule each, in order of preference.
fn fingerprint_plans(
    index: usize,
    flood: &Flood,
    family: Family,
    stats: &Stats,
    out: &mut Candidates,
) {
    let FloodKind::Fingerprint { name, print, upper } = &flood.kind else {
        return;
    };
    for (preference, (candidate, what)) in fingerprint_rules(family, name, print, *upper, stats)
        .into_iter()
        .enumerate()
    {
        if let Some(c) = out.add(candidate, what) {
            out.plans.push(Plan {
                flood: index,
                family,
                rules: vec![c],
                preference,
                spares: false,
                accepts_beyond_cut: Vec::new(),
            });
        }
    }
}

/// A `dns` generator with the default IPv6 extension-header walk.
pub fn dns(patterns: Vec<String>, ignore_case: bool) -> Generator {
    Generator::Dns(DnsSpec {
        patterns,
        ignore_case,
        ext_headers: DEFAULT_EXT_HEADERS,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_lowercase_wire_names_as_the_generator_does() {
        let bounded = parse_pattern("*{3-5}.example.net", false).unwrap();
        assert!(pattern_matches(&bounded, b"\x04abcd\x07example\x03net"));
        assert!(!pattern_matches(&bounded, b"\x06abcdef\x07example\x03net"));
        assert!(!pattern_matches(&bounded, b"\x07example\x03net"));
        let exact = parse_pattern("WWW.Example.net", true).unwrap();
        assert!(pattern_matches(&exact, b"\x03www\x07example\x03net"));
        let any = parse_pattern("example.**", false).unwrap();
        assert!(pattern_matches(&any, b"\x07example\x02co\x02uk"));
    }
}
