//! The report as data: every figure triage prints, built once from an [`Analysis`], with
//! `#[derive(Serialize)]` for `--json` and read field by field by the text renderer
//! ([`crate::triage::report::to_text`]).
//!
//! This module keeps what is said and its names in JSON; it must not decide anything (the
//! analysis did) nor format text for people (the renderer does).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::dns::{rcode_name, type_name};
use crate::triage::detect::{edns_text, flags_text, Flood, FloodKind};
use crate::triage::packet::{name_text, Family};
use crate::triage::report::{
    command_line, deploy_commands, filter_command, qps_buckets, xdp_deployments, xdp_incident,
    XdpDeployment, TOP,
};
use crate::triage::stats::{Stats, CHARSETS};
use crate::triage::{Analysis, RuleReport};

/// Everything triage reports (`--json` prints it as it is).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// What the capture holds.
    pub summary: Summary,
    /// The floods found.
    pub floods: Vec<FloodReport>,
    /// The rule list, in order.
    pub rules: Vec<RuleRow>,
    /// What the rules do to the floods and to the rest.
    pub outcome: OutcomeReport,
    /// The deployment commands, as shell lines.
    pub deploy: Vec<String>,
    /// For each deployment command, empty when it generates, else why not.
    pub deploy_checks: Vec<String>,
    /// The `xdp-bpf` deployment of each flood and family that has deployment commands.
    pub deploy_xdp: Vec<XdpDeploy>,
    /// The one `xdp-bpf` deployment of the whole incident (an interface carries one XDP
    /// program): every plan's rules in order, the addresses of them all; the command the
    /// text prints. `flood` lists the floods, `iptables` every command it stands for.
    pub deploy_xdp_incident: Option<XdpDeploy>,
    /// What the reader should know about the input and the figures.
    pub notes: Vec<String>,
    /// Candidates that could not be built, and why.
    pub skipped: Vec<String>,
    /// Whether a zone was given (text only).
    #[serde(skip)]
    pub has_zone: bool,
}

/// The capture's counters.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The inputs, as named.
    pub inputs: Vec<String>,
    /// Packets read.
    pub packets: u64,
    /// Packets per IP version.
    pub ip: IpCounts,
    /// DNS messages.
    pub dns: u64,
    /// DNS messages triage could not read.
    pub malformed_dns: u64,
    /// Queries.
    pub queries: u64,
    /// Of which over IPv6.
    pub queries_ipv6: u64,
    /// Responses.
    pub responses: u64,
    /// Seconds from the first to the last packet (both counted).
    pub seconds: u64,
    /// Queries per second over time.
    pub qps: Qps,
    /// Most asked names.
    pub top_names: Vec<TopName>,
    /// Parents with the most traffic.
    pub top_suffixes: Vec<TopSuffix>,
    /// Query types.
    pub qtypes: Vec<TypeRow>,
    /// Response codes.
    pub rcodes: Vec<RcodeRow>,
    /// NXDOMAIN responses over all responses.
    pub nxdomain_share: f64,
    /// Source networks sending the most queries.
    pub top_sources: Vec<SourceRow>,
    /// Header flags of queries.
    pub flags: Vec<FlagsRow>,
    /// EDNS of queries.
    pub edns: Vec<EdnsRow>,
    /// Header fingerprints of queries.
    pub fingerprints: Vec<PrintRow>,
}

/// Packets per IP version.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct IpCounts {
    /// IPv4 packets.
    pub ipv4: u64,
    /// IPv6 packets.
    pub ipv6: u64,
}

/// Queries per second, in buckets.
#[derive(Debug, Clone, Serialize)]
pub struct Qps {
    /// The first second (Unix time).
    pub start: u64,
    /// Seconds per bucket.
    pub bucket_seconds: u64,
    /// Queries per second in each bucket.
    pub per_second: Vec<u64>,
}

/// A much asked name.
#[derive(Debug, Clone, Serialize)]
pub struct TopName {
    /// The name.
    pub name: String,
    /// Queries for it.
    pub queries: u64,
    /// Of all queries.
    pub share: f64,
    /// Of which over IPv6.
    pub ipv6: u32,
    /// Of which with an upper-case letter.
    pub mixed_case: u32,
}

/// A parent with much traffic under it.
#[derive(Debug, Clone, Serialize)]
pub struct TopSuffix {
    /// The parent name.
    pub suffix: String,
    /// Queries under it.
    pub queries: u64,
    /// Distinct names under it.
    pub distinct_names: u32,
    /// Estimated distinct child labels.
    pub distinct_children: u64,
    /// Child label lengths (length as text → names).
    pub child_lengths: BTreeMap<String, u32>,
    /// Child label character classes (class → names).
    pub child_charsets: BTreeMap<String, u32>,
    /// Names with an upper-case letter.
    pub mixed_case_names: u32,
}

/// Queries of one type.
#[derive(Debug, Clone, Serialize)]
pub struct TypeRow {
    /// The type's name.
    #[serde(rename = "type")]
    pub qtype: String,
    /// Queries.
    pub queries: u64,
}

/// Responses with one code.
#[derive(Debug, Clone, Serialize)]
pub struct RcodeRow {
    /// The code's name.
    pub rcode: String,
    /// Responses.
    pub responses: u64,
}

/// Queries from one network.
#[derive(Debug, Clone, Serialize)]
pub struct SourceRow {
    /// The network (/24 or /48).
    pub network: String,
    /// Queries.
    pub queries: u64,
}

/// Queries with one flags word.
#[derive(Debug, Clone, Serialize)]
pub struct FlagsRow {
    /// The flags.
    pub flags: String,
    /// Queries.
    pub queries: u64,
}

/// Queries with one EDNS form.
#[derive(Debug, Clone, Serialize)]
pub struct EdnsRow {
    /// The EDNS form.
    pub edns: String,
    /// Queries.
    pub queries: u64,
}

/// Queries with one header fingerprint.
#[derive(Debug, Clone, Serialize)]
pub struct PrintRow {
    /// Flags.
    pub flags: String,
    /// EDNS.
    pub edns: String,
    /// Query type.
    pub qtype: String,
    /// Queries.
    pub queries: u64,
}

/// A flood and what the rules do to it.
#[derive(Debug, Clone, Serialize)]
pub struct FloodReport {
    /// Its identifier.
    pub id: String,
    /// One line.
    pub description: String,
    /// Why it was flagged.
    pub why: String,
    /// Queries the first pass attributes to it.
    pub queries: u64,
    /// Of which over IPv6.
    pub ipv6: u64,
    /// Packets the second pass judged part of it.
    pub packets: u64,
    /// Of which the rules drop.
    pub dropped: u64,
    /// `dropped` over `packets`.
    pub dropped_share: f64,
    /// Where it begins within the capture (`null`: it runs from the start, or rises less
    /// than threefold).
    pub onset: Option<crate::triage::Onset>,
    /// What kind of flood, with its facts.
    #[serde(flatten)]
    pub kind: KindReport,
}

/// The kind of a flood and the facts that describe it.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind")]
pub enum KindReport {
    /// Random names under a parent.
    #[serde(rename = "random-subdomain")]
    RandomSubdomain {
        /// The parent.
        suffix: String,
        /// Labels of the parent that are established names.
        established_at: u32,
        /// Depths of the random names under the parent.
        depths: Vec<usize>,
        /// Shortest and longest child label.
        child_lengths: [u8; 2],
        /// Character classes of the child labels.
        child_charsets: Vec<&'static str>,
        /// Whether letters come in random case.
        randomized_case: bool,
        /// Estimated distinct child labels.
        distinct_children: u64,
    },
    /// Sources that send one (name, type) and nothing else.
    #[serde(rename = "sources")]
    Sources {
        /// The name.
        name: String,
        /// The type.
        qtype: String,
        /// The sources.
        sources: Vec<String>,
    },
    /// One name with one header fingerprint.
    #[serde(rename = "fingerprint")]
    Fingerprint {
        /// The name.
        name: String,
        /// Flags.
        flags: String,
        /// The flags word.
        flags_word: u16,
        /// EDNS.
        edns: String,
        /// Query type.
        qtype: String,
    },
}

/// One rule of the list and its counts.
#[derive(Debug, Clone, Serialize)]
pub struct RuleRow {
    /// `accept` or `drop`.
    pub action: &'static str,
    /// The bpfgen arguments of its program.
    pub bpfgen: Vec<String>,
    /// `ipv4` or `ipv6`.
    pub family: &'static str,
    /// The floods it is for.
    pub floods: Vec<String>,
    /// What it is for.
    pub note: String,
    /// Instructions in its program.
    pub instructions: usize,
    /// Packets it decided.
    pub matched: u64,
    /// Of which judged part of each flood.
    pub judged_flood: BTreeMap<String, u64>,
    /// Of which judged legitimate, by reason.
    pub judged_legit: BTreeMap<String, u64>,
    /// Packets it matches on its own.
    pub matched_alone: u64,
    /// The command that checks it on the capture.
    pub check: String,
}

/// What the rule list costs.
#[derive(Debug, Clone, Serialize)]
pub struct OutcomeReport {
    /// Queries measured.
    pub queries: u64,
    /// Queries proven flood.
    pub proven_flood: u64,
    /// Packets judged legitimate.
    pub legit_packets: u64,
    /// Of which dropped.
    pub legit_dropped: u64,
    /// `legit_dropped` over `legit_packets`.
    pub legit_dropped_judged_share: f64,
    /// Dropped queries not proven flood.
    pub unproven_dropped: u64,
    /// The same, by basis.
    pub unproven_dropped_by_basis: BTreeMap<&'static str, u64>,
    /// The bound of the share of legitimate queries dropped (rounded up).
    pub legit_dropped_share: f64,
    /// The most asked dropped names the evidence says exist.
    pub top_dropped_existing_names: Vec<DroppedName>,
    /// The most asked dropped names of each basis (existing names and names judged flood).
    pub top_dropped_names: Vec<DroppedName>,
}

/// A dropped name.
#[derive(Debug, Clone, Serialize)]
pub struct DroppedName {
    /// Why it counts as it does ([`crate::triage::Reason::key`], `unknown_nxdomain`,
    /// `unknown_unanswered`).
    pub basis: &'static str,
    /// The name.
    pub name: String,
    /// Dropped queries for it.
    pub queries: u64,
}

/// The `xdp-bpf` deployment of one flood and family, beside its `iptables-bpf` commands.
#[derive(Debug, Clone, Serialize)]
pub struct XdpDeploy {
    /// The flood's id.
    pub flood: String,
    /// `ipv4` or `ipv6`: the family of the rules (the addresses are of that family).
    pub family: &'static str,
    /// The deployment's name.
    pub deployment: String,
    /// The protected destinations (`-a`).
    pub addresses: Vec<String>,
    /// Whether names are compared exactly (`--match-case`).
    pub match_case: bool,
    /// The rules in order, as lines of a rules file (`accept P`, `drop P`, `drop-bpf GEN
    /// ARGS`): the first match decides, no match passes.
    pub rules: Vec<String>,
    /// The places in `deploy` of the `iptables-bpf` commands it stands for.
    pub iptables: Vec<usize>,
    /// Accept rules beyond those of the `iptables-bpf` chain (names past its cut).
    pub accepts_beyond_iptables: usize,
    /// The command: one line, or reading `rules` from a here-document when there are more
    /// than [`crate::triage::report::XDP_LINE_RULES`]; `IFACE` stands for the interface
    /// the queries arrive on.
    pub command: String,
}

impl XdpDeploy {
    fn new(deployment: &XdpDeployment) -> XdpDeploy {
        XdpDeploy {
            flood: deployment.flood.clone(),
            family: family_key(deployment.family),
            deployment: deployment.deployment.clone(),
            addresses: deployment.addresses.clone(),
            match_case: deployment.match_case,
            rules: deployment.rules.iter().map(|r| r.line()).collect(),
            iptables: deployment.iptables.clone(),
            accepts_beyond_iptables: deployment.beyond_cut,
            command: deployment.command(),
        }
    }
}

/// `ipv4` or `ipv6`.
fn family_key(family: Family) -> &'static str {
    match family {
        Family::V4 => "ipv4",
        Family::V6 => "ipv6",
    }
}

/// `part` over `whole`, rounded to 4 decimals (0 when `whole` is 0).
pub fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        (part as f64 / whole as f64 * 10000.0).round() / 10000.0
    }
}

fn top<K: Clone + Ord, I: Iterator<Item = (K, u64)>>(items: I, n: usize) -> Vec<(K, u64)> {
    let mut all: Vec<(K, u64)> = items.collect();
    all.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    all.truncate(n);
    all
}

fn network_text(addr: &std::net::IpAddr) -> String {
    match addr {
        std::net::IpAddr::V4(_) => format!("{addr}/24"),
        std::net::IpAddr::V6(_) => format!("{addr}/48"),
    }
}

impl Summary {
    /// The summary of `stats`.
    pub fn new(stats: &Stats, inputs: &[String]) -> Summary {
        let (start, bucket_seconds, per_second) = qps_buckets(stats, 60);
        let top_names = top(
            stats
                .names
                .iter()
                .map(|(k, s)| (k.clone(), u64::from(s.count))),
            TOP,
        )
        .into_iter()
        .map(|(name, queries)| {
            let s = &stats.names[&name];
            TopName {
                name: name_text(&name),
                queries,
                share: share(queries, stats.queries),
                ipv6: s.ipv6,
                mixed_case: s.upper,
            }
        })
        .collect();
        let top_suffixes = top(
            stats
                .suffixes
                .iter()
                .filter(|(_, s)| s.detail.is_some())
                .map(|(k, s)| (k.clone(), s.packets)),
            TOP,
        )
        .into_iter()
        .filter_map(|(suffix, queries)| {
            let s = &stats.suffixes[&suffix];
            let detail = s.detail.as_ref()?;
            Some(TopSuffix {
                suffix: name_text(&suffix),
                queries,
                distinct_names: s.names,
                distinct_children: detail.distinct_children().round() as u64,
                child_lengths: detail
                    .lengths
                    .iter()
                    .enumerate()
                    .filter(|(_, &n)| n > 0)
                    .map(|(l, &n)| (l.to_string(), n))
                    .collect(),
                child_charsets: CHARSETS
                    .iter()
                    .zip(detail.charsets.iter())
                    .map(|(c, &n)| (c.to_string(), n))
                    .collect(),
                mixed_case_names: detail.upper_names,
            })
        })
        .collect();
        let mut flags = BTreeMap::new();
        let mut edns = BTreeMap::new();
        for (header, &n) in &stats.headers {
            *flags.entry(header.flags).or_insert(0u64) += n;
            *edns.entry(header.edns).or_insert(0u64) += n;
        }
        let seconds = match (
            stats.per_second.first_key_value(),
            stats.per_second.last_key_value(),
        ) {
            (Some((a, _)), Some((b, _))) => b - a + 1,
            _ => 0,
        };
        Summary {
            inputs: inputs.to_vec(),
            packets: stats.packets,
            ip: IpCounts {
                ipv4: stats.ipv4,
                ipv6: stats.ipv6,
            },
            dns: stats.dns,
            malformed_dns: stats.malformed,
            queries: stats.queries,
            queries_ipv6: stats.queries_v6,
            responses: stats.responses,
            seconds,
            qps: Qps {
                start,
                bucket_seconds,
                per_second,
            },
            top_names,
            top_suffixes,
            qtypes: top(stats.qtypes.iter().map(|(k, v)| (*k, *v)), TOP)
                .into_iter()
                .map(|(t, queries)| TypeRow {
                    qtype: type_name(t),
                    queries,
                })
                .collect(),
            rcodes: stats
                .rcodes
                .iter()
                .enumerate()
                .filter(|(_, &n)| n > 0)
                .map(|(r, &responses)| RcodeRow {
                    rcode: rcode_name(r as u16),
                    responses,
                })
                .collect(),
            nxdomain_share: share(stats.rcodes[3], stats.responses),
            top_sources: top(stats.sources.iter().map(|(k, v)| (*k, *v)), TOP)
                .into_iter()
                .map(|(net, queries)| SourceRow {
                    network: network_text(&net),
                    queries,
                })
                .collect(),
            flags: top(flags.into_iter(), TOP)
                .into_iter()
                .map(|(f, queries)| FlagsRow {
                    flags: flags_text(f),
                    queries,
                })
                .collect(),
            edns: top(edns.into_iter(), TOP)
                .into_iter()
                .map(|(e, queries)| EdnsRow {
                    edns: edns_text(e),
                    queries,
                })
                .collect(),
            fingerprints: top(stats.prints.iter().map(|(k, v)| (*k, *v)), TOP)
                .into_iter()
                .map(|(p, queries)| PrintRow {
                    flags: flags_text(p.header.flags),
                    edns: edns_text(p.header.edns),
                    qtype: type_name(p.qtype),
                    queries,
                })
                .collect(),
        }
    }
}

impl FloodReport {
    fn new(flood: &Flood, analysis: &Analysis) -> FloodReport {
        let (packets, dropped) = analysis
            .outcome
            .floods
            .get(&flood.id)
            .copied()
            .unwrap_or((0, 0));
        let kind = match &flood.kind {
            FloodKind::RandomSubdomain {
                suffix,
                established_at,
                depths,
                lengths,
                charsets,
                randomized_case,
                distinct_children,
            } => KindReport::RandomSubdomain {
                suffix: name_text(suffix),
                established_at: *established_at,
                depths: depths.clone(),
                child_lengths: [lengths.0, lengths.1],
                child_charsets: CHARSETS
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| charsets >> i & 1 == 1)
                    .map(|(_, c)| *c)
                    .collect(),
                randomized_case: *randomized_case,
                distinct_children: *distinct_children,
            },
            FloodKind::Sources { name, qtype, hosts } => KindReport::Sources {
                name: name_text(name),
                qtype: type_name(*qtype),
                sources: hosts.iter().map(|h| h.to_string()).collect(),
            },
            FloodKind::Fingerprint { name, print, .. } => KindReport::Fingerprint {
                name: name_text(name),
                flags: flags_text(print.header.flags),
                flags_word: print.header.flags,
                edns: edns_text(print.header.edns),
                qtype: type_name(print.qtype),
            },
        };
        FloodReport {
            id: flood.id.clone(),
            description: flood.describe(),
            why: flood.why.clone(),
            queries: flood.queries,
            ipv6: flood.ipv6,
            packets,
            dropped,
            dropped_share: share(dropped, packets),
            onset: analysis.onsets.get(&flood.id).copied(),
            kind,
        }
    }
}

impl RuleRow {
    fn new(rule: &RuleReport, inputs: &[String]) -> RuleRow {
        RuleRow {
            action: rule.action.as_str(),
            bpfgen: rule.bpfgen.clone(),
            family: family_key(rule.family),
            floods: rule.floods.clone(),
            note: rule.note.clone(),
            instructions: rule.instructions,
            matched: rule.matched,
            judged_flood: rule.matched_flood.clone(),
            judged_legit: rule.matched_legit.clone(),
            matched_alone: rule.matched_alone,
            check: filter_command(rule, inputs),
        }
    }
}

fn dropped_names(list: &[(&'static str, String, u64)]) -> Vec<DroppedName> {
    list.iter()
        .map(|(basis, name, queries)| DroppedName {
            basis,
            name: name.clone(),
            queries: *queries,
        })
        .collect()
}

impl Report {
    /// The report of `analysis`, with the check of each deployment command.
    pub fn new(analysis: &Analysis, deploy_checks: &[String]) -> Report {
        let outcome = &analysis.outcome;
        Report {
            summary: Summary::new(&analysis.stats, &analysis.inputs),
            floods: analysis
                .floods
                .iter()
                .map(|f| FloodReport::new(f, analysis))
                .collect(),
            rules: analysis
                .rules
                .iter()
                .map(|r| RuleRow::new(r, &analysis.inputs))
                .collect(),
            outcome: OutcomeReport {
                queries: outcome.queries,
                proven_flood: outcome.proven_flood,
                legit_packets: outcome.legit.0,
                legit_dropped: outcome.legit.1,
                legit_dropped_judged_share: share(outcome.legit.1, outcome.legit.0),
                unproven_dropped: outcome.unproven_total(),
                unproven_dropped_by_basis: outcome.unproven_dropped.clone(),
                legit_dropped_share: (outcome.legit_dropped_bound() * 1e6).ceil() / 1e6,
                top_dropped_existing_names: dropped_names(&outcome.top_unproven),
                top_dropped_names: dropped_names(&outcome.top_dropped),
            },
            deploy: deploy_commands(analysis)
                .iter()
                .map(|c| command_line(c))
                .collect(),
            deploy_checks: deploy_checks.to_vec(),
            deploy_xdp: xdp_deployments(analysis)
                .iter()
                .map(XdpDeploy::new)
                .collect(),
            deploy_xdp_incident: xdp_incident(analysis).as_ref().map(XdpDeploy::new),
            notes: analysis.notes.clone(),
            skipped: analysis.skipped.clone(),
            has_zone: analysis.has_zone,
        }
    }
}
