//! Flood triage: from a capture to the rules that stop the flood, with the collateral measured.
//!
//! [`analyze`] reads the captures twice:
//! 1. **Counting** ([`stats`]): every packet is counted into bounded tables (names, parent
//!    suffixes with their child-label profile, fingerprints, sources, ...); nothing of the
//!    packet is kept. The [`detect`]or then finds the floods in the tables.
//! 2. **Measuring** ([`rules`]): candidate rules for each flood are built by the suite's
//!    generators and run by the suite's VM over every packet again; each packet is also judged
//!    flood or legitimate (and why) from the first pass's tables. Only the count of packets per
//!    (judgment, family, set of candidates matched) is kept, from which the counts of any
//!    ordered rule list follow exactly; the plan kept for each flood is chosen from them, and
//!    the final list's counts are the first-match counts of those same runs.
//!
//! A file is simply read twice; standard input is spooled to a temporary file first (removed
//! when done), so memory stays bounded by the tables whatever the capture's size. Rules
//! apply, as deployed by `iptables-bpf` (`-p udp --dport 53`), to UDP packets to port 53 of
//! their family; everything else passes.

pub mod detect;
mod measure;
pub mod model;
pub mod packet;
pub mod report;
pub mod rules;
pub mod stats;
pub mod zone;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::net::IpAddr;

use crate::pcap::Reader;
use crate::triage::detect::{depth_under, Basis, Flood, FloodKind, Knowledge};
use crate::triage::packet::{dns_view, ip_view, Family, DNS_PORT};
use crate::triage::rules::{Action, Candidates};
use crate::triage::stats::{FastMap, Fingerprint, Stats};
use crate::triage::zone::Zone;
use measure::{effect, measure, Measured, NO_SLOT, TOP_DROPPED_EACH};

/// Why a query is judged legitimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// Not a readable DNS query to port 53.
    NotQuery,
    /// No flood covers its name.
    Outside,
    /// Its name exists (or repeats), by this basis.
    Exists(Basis),
    /// A fingerprinted flood's name, with another fingerprint.
    OtherFingerprint,
    /// A source flood's (name, type), from another source.
    OtherSource,
}

impl Reason {
    /// The reason with this [`Reason::key`].
    pub fn from_key(key: &str) -> Option<Reason> {
        let mut all = vec![
            Reason::NotQuery,
            Reason::Outside,
            Reason::OtherFingerprint,
            Reason::OtherSource,
        ];
        all.extend(Basis::ALL.map(Reason::Exists));
        all.into_iter().find(|r| r.key() == key)
    }

    /// A short key (JSON).
    pub fn key(self) -> &'static str {
        match self {
            Reason::NotQuery => "not_a_query",
            Reason::Outside => "outside_floods",
            Reason::Exists(basis) => basis.key(),
            Reason::OtherFingerprint => "other_fingerprint",
            Reason::OtherSource => "other_source",
        }
    }

    /// In words.
    pub fn text(self) -> &'static str {
        match self {
            Reason::NotQuery => "not a DNS query to port 53",
            Reason::Outside => "outside every flood",
            Reason::Exists(basis) => basis.text(),
            Reason::OtherFingerprint => "other fingerprint than the flood's",
            Reason::OtherSource => "the flood's name from another source",
        }
    }
}

/// How the second pass judges a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Judged {
    /// Part of the flood at this index.
    Flood(u8),
    /// Legitimate, for this reason.
    Legit(Reason),
}

/// An error of the analysis, naming the input.
#[derive(Debug, thiserror::Error)]
pub enum TriageError {
    /// A capture could not be opened.
    #[error("cannot open '{name}': {source}")]
    Open {
        /// The input, as named.
        name: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A capture could not be read.
    #[error("{name}: {source}")]
    Read {
        /// The input, as named.
        name: String,
        /// Where and why.
        #[source]
        source: crate::pcap::ReadError,
    },
}

/// One rule of the final list, with its counts.
#[derive(Debug, Clone)]
pub struct RuleReport {
    /// Accept or drop.
    pub action: Action,
    /// The bpfgen arguments of the deployable program.
    pub bpfgen: Vec<String>,
    /// The generator and its arguments.
    pub generator: crate::gen::Generator,
    /// Family it applies to.
    pub family: Family,
    /// Instructions in the program.
    pub instructions: usize,
    /// The flood(s) it is for (ids).
    pub floods: Vec<String>,
    /// What it is for.
    pub note: String,
    /// Packets this rule decided (first match in the list).
    pub matched: u64,
    /// Of which judged part of each flood (by id).
    pub matched_flood: BTreeMap<String, u64>,
    /// Of which judged legitimate, by reason.
    pub matched_legit: BTreeMap<String, u64>,
    /// Packets it matches on its own (whatever the rules before it decided).
    pub matched_alone: u64,
}

/// What happens to each flood and to legitimate traffic under the final list.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Per flood id: (packets judged part of it, of which dropped).
    pub floods: BTreeMap<String, (u64, u64)>,
    /// Packets judged legitimate, of which dropped.
    pub legit: (u64, u64),
    /// Queries (UDP to port 53, readable DNS) the rules were measured on.
    pub queries: u64,
    /// Queries proven flood: judged flood and sent by a source whose every query was (at least
    /// 10 of them, none for a name that exists).
    pub proven_flood: u64,
    /// Dropped packets not proven flood, by basis (what the rules may cost legitimate
    /// traffic, at most): the reasons of [`Reason::key`], and `unknown_nxdomain` /
    /// `unknown_unanswered` for names judged flood that nothing proves.
    pub unproven_dropped: BTreeMap<&'static str, u64>,
    /// The names behind the largest entries of `unproven_dropped`: (basis key, name, queries).
    pub top_unproven: Vec<(&'static str, String, u64)>,
    /// The most asked dropped names of each basis, names judged flood included (their
    /// queries counted whoever sent them): (basis key, name, queries).
    pub top_dropped: Vec<(&'static str, String, u64)>,
}

impl Outcome {
    /// Dropped packets not proven flood.
    pub fn unproven_total(&self) -> u64 {
        self.unproven_dropped.values().sum()
    }

    /// The upper bound of the share of legitimate queries dropped: the dropped queries not
    /// proven flood, over all queries not proven flood.
    pub fn legit_dropped_bound(&self) -> f64 {
        let base = self.queries.saturating_sub(self.proven_flood);
        if base == 0 {
            0.0
        } else {
            (self.unproven_total() as f64 / base as f64).min(1.0)
        }
    }
}

/// Where a flood begins within the capture: the step in its time line.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Onset {
    /// Seconds from the capture's first second to the start of the time bucket where the
    /// flood first reached a fifth of its peak rate.
    pub at_seconds: u64,
    /// The flood's queries per second before then.
    pub before_qps: f64,
    /// Its queries per second from then on.
    pub after_qps: f64,
}

/// The onset of a flood from its queries per time bucket (`width` seconds each, the last
/// bucket ending at `span` seconds): `None` when the flood runs from the first bucket or
/// rises less than threefold (no step within the capture).
pub fn onset(timeline: &[u64], width: u64, span: u64) -> Option<Onset> {
    let n = timeline.len();
    if n < 2 || width == 0 {
        return None;
    }
    let seconds = |i: usize| {
        if i + 1 == n {
            span.saturating_sub(width * (n as u64 - 1)).max(1)
        } else {
            width
        }
    };
    let rate = |i: usize| timeline[i] as f64 / seconds(i) as f64;
    let peak = (0..n).map(rate).fold(0.0, f64::max);
    let start = (0..n).find(|&i| rate(i) >= 0.2 * peak)?;
    if start == 0 {
        return None;
    }
    let at = width * start as u64;
    let before = timeline[..start].iter().sum::<u64>() as f64 / at as f64;
    let after =
        timeline[start..].iter().sum::<u64>() as f64 / span.saturating_sub(at).max(1) as f64;
    (after >= 3.0 * before).then_some(Onset {
        at_seconds: at,
        before_qps: (before * 10.0).round() / 10.0,
        after_qps: (after * 10.0).round() / 10.0,
    })
}

/// The analysis of one or more captures.
pub struct Analysis {
    /// The capture's counters.
    pub stats: Stats,
    /// The floods found.
    pub floods: Vec<Flood>,
    /// The rule list, in order (first match decides, no match passes).
    pub rules: Vec<RuleReport>,
    /// What the list does.
    pub outcome: Outcome,
    /// Per flood id: the destination addresses it was sent to (at least 1% of it each), and
    /// for a family it did not reach while the server takes queries over it, the server's
    /// addresses of that family (for `iptables-bpf -i`).
    pub destinations: BTreeMap<String, Vec<IpAddr>>,
    /// Per flood id: where it begins within the capture, when its time line has a step.
    pub onsets: BTreeMap<String, Onset>,
    /// Per flood id and family whose rules accept names that exist: the names its drop rule
    /// also matches beyond the [`rules::MAX_EXCEPTIONS`] its accept rules list (most asked
    /// first). The rules and their counts stop at the cut, as an iptables chain does; the
    /// `xdp-bpf` command accepts these too.
    pub accepts_beyond_cut: Vec<(String, Family, Vec<String>)>,
    /// Candidates that could not be built, and why.
    pub skipped: Vec<String>,
    /// The inputs, as named on the command line.
    pub inputs: Vec<String>,
    /// Whether a zone was given.
    pub has_zone: bool,
    /// What the reader should know about the input and the figures (cut records, snap
    /// length, tables at their caps, floods relayed by resolvers, the zone loaded).
    pub notes: Vec<String>,
}

/// An input: a file path (read twice), named as given.
pub struct Source {
    /// As named to the user.
    pub name: String,
    /// The file to read.
    pub path: std::path::PathBuf,
}

fn read_all(
    source: &Source,
    mut each: impl FnMut(&crate::pcap::Packet<'_>),
) -> Result<Option<String>, TriageError> {
    let file = File::open(&source.path).map_err(|e| TriageError::Open {
        name: source.name.clone(),
        source: e,
    })?;
    read_stream(
        &source.name,
        BufReader::with_capacity(1 << 16, file),
        &mut each,
    )
}

/// Reads every packet of `input`; a last record cut short (a capture still being written, a
/// full disk) ends the input with a warning instead of an error, so the report covers what was
/// read.
fn read_stream<R: Read>(
    name: &str,
    input: R,
    each: &mut dyn FnMut(&crate::pcap::Packet<'_>),
) -> Result<Option<String>, TriageError> {
    let read_error = |source| TriageError::Read {
        name: name.to_string(),
        source,
    };
    let mut reader = Reader::new(input).map_err(read_error)?;
    loop {
        match reader.next_packet() {
            Ok(Some(packet)) => each(&packet),
            Ok(None) => return Ok(None),
            Err(e) if e.cut.is_some() => {
                return Ok(Some(format!(
                "{name}: the last record is cut ({e}): the report covers the {} packets before it",
                e.packet - 1
            )))
            }
            Err(e) => return Err(read_error(e)),
        }
    }
}

/// Counts the packets of `sources` (the first pass; also how a baseline is read).
pub fn count(sources: &[Source]) -> Result<Stats, TriageError> {
    let mut stats = Stats::default();
    let mut name = Vec::with_capacity(256);
    for source in sources {
        let warning = read_all(source, |packet| {
            let Some(ip) = ip_view(packet.linktype, packet.data) else {
                stats.add_other();
                return;
            };
            let second = packet.timestamp.as_secs();
            let dns_port = ip.udp.is_some_and(|(s, d)| s == DNS_PORT || d == DNS_PORT);
            if !dns_port {
                stats.add(&ip, None, false, second);
                return;
            }
            match dns_view(ip.payload, &mut name) {
                Some(view) => stats.add(&ip, Some((&view, &name)), false, second),
                None => {
                    if packet.orig_len as usize > packet.data.len() {
                        stats.truncated += 1;
                    }
                    stats.add(&ip, None, true, second)
                }
            }
        })?;
        if let Some(warning) = warning {
            stats.warnings.push(warning);
        }
    }
    stats.finish();
    Ok(stats)
}

/// Judges one query (lowercase wire name, fingerprint and source) against the floods.
pub fn judge(
    floods: &[Flood],
    stats: &Stats,
    known: &Knowledge<'_>,
    name: &[u8],
    print: &Fingerprint,
    source: IpAddr,
) -> Judged {
    for (index, flood) in floods.iter().enumerate() {
        let index = index as u8;
        match &flood.kind {
            FloodKind::Fingerprint {
                name: flooded,
                print: flood_print,
                ..
            } => {
                if name == &flooded[..] {
                    return if print == flood_print {
                        Judged::Flood(index)
                    } else {
                        Judged::Legit(Reason::OtherFingerprint)
                    };
                }
            }
            FloodKind::Sources {
                name: flooded,
                qtype,
                hosts,
            } => {
                if name == &flooded[..] && print.qtype == *qtype {
                    return if hosts.binary_search(&source).is_ok() {
                        Judged::Flood(index)
                    } else {
                        Judged::Legit(Reason::OtherSource)
                    };
                }
            }
            FloodKind::RandomSubdomain {
                suffix,
                established_at,
                depths,
                ..
            } => {
                if depth_under(name, suffix).is_some_and(|d| depths.contains(&d)) {
                    if let Some(basis) = known.exists(stats, name) {
                        return Judged::Legit(Reason::Exists(basis));
                    }
                    let count = stats.names.get(name).map_or(0, |s| s.count);
                    return if count >= *established_at {
                        Judged::Legit(Reason::Exists(Basis::Repeated))
                    } else {
                        Judged::Flood(index)
                    };
                }
            }
        }
    }
    Judged::Legit(Reason::Outside)
}

/// Most candidates run in the second pass (one bit each in a 64-bit set).
const MAX_CANDIDATES: usize = 64;

/// Analyzes `sources` (read twice) with the optional baseline counters and zone.
pub fn analyze(
    sources: &[Source],
    baseline: Option<&Stats>,
    zone: Option<&Zone>,
) -> Result<Analysis, TriageError> {
    let stats = count(sources)?;
    let known = Knowledge { baseline, zone };
    let floods = detect::detect(&stats, &known);
    let mut candidates = rules::candidates(&floods, &stats, &known);
    if candidates.list.len() > MAX_CANDIDATES {
        candidates.list.truncate(MAX_CANDIDATES);
        candidates
            .plans
            .retain(|p| p.rules.iter().all(|&r| r < MAX_CANDIDATES));
        candidates.skipped.push(format!(
            "more than {MAX_CANDIDATES} candidate rules: the rest were not tried"
        ));
    }
    let mut measured = if floods.is_empty() {
        Measured {
            cells: FastMap::default(),
            destinations: Vec::new(),
            hosts: Vec::new(),
            existing: FastMap::default(),
            flood_names: FastMap::default(),
            timeline: Vec::new(),
        }
    } else {
        measure(sources, &stats, &floods, &known, &candidates)?
    };
    let mut dedicated = dedicated_sources(&measured);
    let mut chosen = choose(&floods, &candidates, &measured, &dedicated);
    // Spare the names that only sources with legitimate traffic asked, when the flood
    // itself comes from sources that send nothing else: accept them before its drop rule,
    // and measure again.
    if spare(&floods, &mut candidates, &measured, &dedicated, &chosen) {
        measured = measure(sources, &stats, &floods, &known, &candidates)?;
        dedicated = dedicated_sources(&measured);
        chosen = choose(&floods, &candidates, &measured, &dedicated);
    }
    // Source and fingerprint floods first (their rules are the narrowest), then by size.
    chosen.sort_by_key(|(index, family, _)| {
        (
            matches!(floods[*index].kind, FloodKind::RandomSubdomain { .. }),
            *index,
            *family == Family::V6,
        )
    });
    let accepts_beyond_cut = chosen
        .iter()
        .filter_map(|(index, family, list)| {
            let plan = candidates
                .plans
                .iter()
                .find(|p| p.flood == *index && p.family == *family && p.rules == *list)?;
            (!plan.accepts_beyond_cut.is_empty()).then(|| {
                (
                    floods[*index].id.clone(),
                    *family,
                    plan.accepts_beyond_cut.clone(),
                )
            })
        })
        .collect();
    let (order, owners) = rule_order(&chosen, &floods);
    let (reports, outcome) = tally(&floods, &candidates, &measured, &dedicated, &order, &owners);
    let notes = notes(&stats, zone, &floods, &measured, &dedicated);
    let destinations = floods
        .iter()
        .zip(&measured.destinations)
        .map(|(flood, map)| {
            (
                flood.id.clone(),
                flood_destinations(&stats, flood, map, &chosen, &floods),
            )
        })
        .collect();
    let (_, width, _) = report::qps_buckets(&stats, measure::TIMELINE_BUCKETS);
    let onsets = floods
        .iter()
        .zip(&measured.timeline)
        .filter_map(|(flood, line)| {
            onset(line, width, stats.seconds()).map(|o| (flood.id.clone(), o))
        })
        .collect();
    Ok(Analysis {
        onsets,
        accepts_beyond_cut,
        stats,
        floods,
        rules: reports,
        outcome,
        destinations,
        skipped: candidates.skipped,
        inputs: sources.iter().map(|s| s.name.clone()).collect(),
        has_zone: zone.is_some(),
        notes,
    })
}

/// The chosen candidates in deployment order (each once), and the floods each is for.
fn rule_order(
    chosen: &[(usize, Family, Vec<usize>)],
    floods: &[Flood],
) -> (Vec<usize>, BTreeMap<usize, Vec<String>>) {
    let mut order: Vec<usize> = Vec::new();
    let mut owners: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for (index, _, list) in chosen {
        for &c in list {
            if !order.contains(&c) {
                order.push(c);
            }
            let ids = owners.entry(c).or_default();
            if !ids.contains(&floods[*index].id) {
                ids.push(floods[*index].id.clone());
            }
        }
    }
    (order, owners)
}

/// What the rule list in `order` does, packet cell by packet cell: the rules' counts and the
/// outcome (floods dropped, legitimate traffic dropped, the bound and its basis, the most
/// asked dropped names).
fn tally(
    floods: &[Flood],
    candidates: &Candidates,
    measured: &Measured,
    dedicated: &[bool],
    order: &[usize],
    owners: &BTreeMap<usize, Vec<String>>,
) -> (Vec<RuleReport>, Outcome) {
    let mut reports: Vec<RuleReport> = order
        .iter()
        .map(|&c| {
            let candidate = &candidates.list[c];
            RuleReport {
                action: candidate.action,
                bpfgen: candidate.bpfgen(),
                generator: candidate.generator.clone(),
                family: candidate.family,
                instructions: candidate.program.len(),
                floods: owners.get(&c).cloned().unwrap_or_default(),
                note: candidate.note.clone(),
                matched: 0,
                matched_flood: BTreeMap::new(),
                matched_legit: BTreeMap::new(),
                matched_alone: 0,
            }
        })
        .collect();
    let decide = |family: Family, mask: u64| {
        order
            .iter()
            .position(|&c| mask & (1 << c) != 0 && candidates.list[c].family == family)
    };
    let mut outcome = Outcome::default();
    for flood in floods {
        outcome.floods.insert(flood.id.clone(), (0, 0));
    }
    for (&(judged, family, mask, slot, nx), &count) in &measured.cells {
        for (position, &c) in order.iter().enumerate() {
            if mask & (1 << c) != 0 && candidates.list[c].family == family {
                reports[position].matched_alone += count;
            }
        }
        let decided = decide(family, mask);
        let dropped = decided.is_some_and(|p| reports[p].action == Action::Drop);
        if let Some(p) = decided {
            let report = &mut reports[p];
            report.matched += count;
            match judged {
                Judged::Flood(f) => {
                    *report
                        .matched_flood
                        .entry(floods[usize::from(f)].id.clone())
                        .or_insert(0) += count
                }
                Judged::Legit(r) => {
                    *report
                        .matched_legit
                        .entry(r.text().to_string())
                        .or_insert(0) += count
                }
            }
        }
        if judged != Judged::Legit(Reason::NotQuery) {
            outcome.queries += count;
        }
        let proven = matches!(judged, Judged::Flood(_))
            && dedicated.get(slot as usize).copied().unwrap_or(false);
        if proven {
            outcome.proven_flood += count;
        } else if dropped {
            let basis = match judged {
                Judged::Flood(_) if nx => "unknown_nxdomain",
                Judged::Flood(_) => "unknown_unanswered",
                Judged::Legit(reason) => reason.key(),
            };
            *outcome.unproven_dropped.entry(basis).or_insert(0) += count;
        }
        match judged {
            Judged::Flood(f) => {
                let entry = outcome
                    .floods
                    .get_mut(&floods[usize::from(f)].id)
                    .expect("every flood has an entry");
                entry.0 += count;
                entry.1 += u64::from(dropped) * count;
            }
            Judged::Legit(_) => {
                outcome.legit.0 += count;
                outcome.legit.1 += u64::from(dropped) * count;
            }
        }
    }
    // The names that exist and are dropped, most asked first.
    let mut dropped_names: BTreeMap<(&'static str, Vec<u8>), u64> = BTreeMap::new();
    for ((name, family, mask), (reason, count)) in &measured.existing {
        if decide(*family, *mask).is_some_and(|p| reports[p].action == Action::Drop) {
            *dropped_names
                .entry((reason.key(), name.to_vec()))
                .or_insert(0) += count;
        }
    }
    let mut top: Vec<(&'static str, String, u64)> = dropped_names
        .into_iter()
        .map(|((basis, name), count)| (basis, packet::name_text(&name), count))
        .collect();
    top.sort_by(|a, b| b.2.cmp(&a.2).then(a.1.cmp(&b.1)));
    // Of each basis, the most asked few; names judged flood too.
    // The names judged flood are many: of each basis, the few most asked are kept while
    // they are scanned (no sort of them all).
    let mut dropped_unknown: BTreeMap<&'static str, Vec<(u64, &[u8])>> = BTreeMap::new();
    for (name, seen) in &measured.flood_names {
        let family = if seen.first_family == 1 {
            Family::V6
        } else {
            Family::V4
        };
        let dropped = seen.first_mask != 0
            && decide(family, seen.first_mask).is_some_and(|p| reports[p].action == Action::Drop);
        if !dropped {
            continue;
        }
        let basis = if seen.nx {
            "unknown_nxdomain"
        } else {
            "unknown_unanswered"
        };
        let kept = dropped_unknown.entry(basis).or_default();
        let entry = (u64::from(seen.queries), &name[..]);
        // Most asked first, then by name; at most TOP_DROPPED_EACH.
        let before = |a: &(u64, &[u8]), b: &(u64, &[u8])| a.0 > b.0 || (a.0 == b.0 && a.1 < b.1);
        if kept.len() == TOP_DROPPED_EACH && !before(&entry, &kept[TOP_DROPPED_EACH - 1]) {
            continue;
        }
        let at = kept
            .iter()
            .position(|k| before(&entry, k))
            .unwrap_or(kept.len());
        kept.insert(at, entry);
        kept.truncate(TOP_DROPPED_EACH);
    }
    let mut each: Vec<(&'static str, String, u64)> = top.clone();
    each.extend(dropped_unknown.into_iter().flat_map(|(basis, kept)| {
        kept.into_iter()
            .map(move |(count, name)| (basis, packet::name_text(name), count))
    }));
    each.sort_by(|a, b| a.0.cmp(b.0).then(b.2.cmp(&a.2)).then(a.1.cmp(&b.1)));
    let mut kept: BTreeMap<&'static str, usize> = BTreeMap::new();
    each.retain(|(basis, _, _)| {
        let n = kept.entry(basis).or_insert(0);
        *n += 1;
        *n <= TOP_DROPPED_EACH
    });
    outcome.top_dropped = each;
    top.truncate(10);
    outcome.top_unproven = top;
    (reports, outcome)
}

/// What the reader should know about the input and the figures.
fn notes(
    stats: &Stats,
    zone: Option<&Zone>,
    floods: &[Flood],
    measured: &Measured,
    dedicated: &[bool],
) -> Vec<String> {
    let mut notes = stats.warnings.clone();
    if stats.truncated > 0 {
        notes.push(format!(
            "{} DNS packets were cut by the capture's snap length before their question ended: their names were not read (capture with tcpdump -s 0)",
            stats.truncated
        ));
    }
    if stats.queries == 0 {
        notes.push(if stats.responses > 0 {
            "the capture holds responses but no query: capture on the server's interface in both directions (tcpdump -i IF udp port 53)".to_string()
        } else {
            "the capture holds no DNS query".to_string()
        });
    } else if stats.responses == 0 {
        notes.push("the capture holds no response: the server's answers (NOERROR, NXDOMAIN) are the best evidence of which names exist; capture both directions, or give --zone".to_string());
    }
    if let Some(zone) = zone {
        notes.push(format!(
            "zone: {} names and {} wildcards loaded (origin {})",
            zone.len(),
            zone.wildcards().count(),
            if zone.origin.is_empty() {
                ".".to_string()
            } else {
                packet::name_text(&zone.origin)
            }
        ));
    }
    for (table, times) in &stats.evictions {
        notes.push(format!(
            "the {table} table reached its cap {times} time(s) and forgot its least counted entries: counts of rare entries are lower bounds"
        ));
    }
    if stats.name_prunes > 0 {
        notes.push(format!(
            "the name table reached its cap ({} names) {} time(s): names asked once were forgotten, and their queries count as names without evidence",
            stats::NAME_CAP,
            stats.name_prunes
        ));
    }
    for (index, flood) in floods.iter().enumerate() {
        let (total, proven) = flood_proven(measured, dedicated, index);
        if total > 0 && (proven as f64) < 0.5 * total as f64 {
            notes.push(format!(
                "{}: {} of its {total} queries come from sources that also send legitimate queries (resolvers): dropping makes them retry and move to other servers or families, so the load moves and the rule helps less; nothing proves those queries flood",
                flood.id,
                total - proven
            ));
        }
    }
    notes
}

/// The queries judged part of the flood at `index`, and of them those proven (sent by a
/// dedicated source).
fn flood_proven(measured: &Measured, dedicated: &[bool], index: usize) -> (u64, u64) {
    let (mut total, mut proven) = (0, 0);
    for (&(judged, _, _, slot, _), &count) in &measured.cells {
        if judged == Judged::Flood(index as u8) {
            total += count;
            if dedicated.get(slot as usize).copied().unwrap_or(false) {
                proven += count;
            }
        }
    }
    (total, proven)
}

/// Sources whose every query (10 or more, none for a name that exists) was judged flood:
/// their queries are proven flood.
fn dedicated_sources(measured: &Measured) -> Vec<bool> {
    measured
        .hosts
        .iter()
        .map(|h| h.queries >= 10 && h.exists == 0 && h.flood as f64 >= 0.99 * h.queries as f64)
        .collect()
}

/// The plan kept per flood and family: the one that drops at least 99% of the flood, then
/// with the fewest packets judged legitimate dropped, then one that spares names only
/// legitimate sources asked, then the narrowest, then the fewest dropped packets not proven
/// flood, then the fewest rules.
fn choose(
    floods: &[Flood],
    candidates: &Candidates,
    measured: &Measured,
    dedicated: &[bool],
) -> Vec<(usize, Family, Vec<usize>)> {
    let mut chosen = Vec::new();
    for index in 0..floods.len() {
        for family in [Family::V4, Family::V6] {
            let best = candidates
                .plans
                .iter()
                .filter(|p| p.flood == index && p.family == family)
                .map(|p| {
                    let e = effect(
                        measured,
                        dedicated,
                        &p.rules,
                        candidates,
                        family,
                        index as u8,
                    );
                    let covered = e.flood_dropped as f64 >= 0.99 * e.flood_total as f64;
                    (
                        (
                            !covered,
                            e.legit_dropped,
                            !p.spares,
                            p.preference,
                            e.unproven_dropped,
                            p.rules.len(),
                        ),
                        p,
                    )
                })
                .min_by(|a, b| a.0.cmp(&b.0));
            if let Some((_, plan)) = best {
                chosen.push((index, family, plan.rules.clone()));
            }
        }
    }
    chosen
}

/// Most names one flood's spare list holds.
const MAX_SPARED: usize = 500;

/// Adds, for each random-subdomain flood at least 90% of which is proven (from sources that
/// send nothing else), a plan that accepts the names judged part of it that only other
/// sources asked (resolvers' typos and probes), before the chosen plan's rules, when those
/// names are at most 1% of the flood. Returns whether any was added.
fn spare(
    floods: &[Flood],
    candidates: &mut Candidates,
    measured: &Measured,
    dedicated: &[bool],
    chosen: &[(usize, Family, Vec<usize>)],
) -> bool {
    let is_dedicated = |slot: u32| dedicated.get(slot as usize).copied().unwrap_or(false);
    let mut added = false;
    for (index, flood) in floods.iter().enumerate() {
        if !matches!(flood.kind, FloodKind::RandomSubdomain { .. }) {
            continue;
        }
        let (total, proven) = flood_proven(measured, dedicated, index);
        if total == 0 || (proven as f64) < 0.9 * total as f64 {
            continue;
        }
        for family in [Family::V4, Family::V6] {
            let f = usize::from(family == Family::V6);
            let mut names: Vec<(&[u8], u64)> = measured
                .flood_names
                .iter()
                .filter(|(_, n)| {
                    usize::from(n.flood) == index
                        && n.families[f]
                        && !n.slots.iter().any(|&s| s != NO_SLOT && is_dedicated(s))
                        && n.slots[0] != NO_SLOT
                })
                .map(|(name, n)| (&name[..], u64::from(n.queries)))
                .collect();
            let spared: u64 = names.iter().map(|(_, q)| q).sum();
            if names.is_empty() || names.len() > MAX_SPARED || spared as f64 > 0.01 * total as f64 {
                continue;
            }
            names.sort();
            if !chosen
                .iter()
                .any(|(i, fam, _)| *i == index && *fam == family)
            {
                continue;
            }
            let texts: Vec<String> = names.iter().map(|(n, _)| packet::name_text(n)).collect();
            let mut plan = Vec::new();
            for chunk in texts.chunks(rules::NAMES_PER_ACCEPT) {
                let note = format!(
                    "names under the flood's parent asked only by sources that also send legitimate queries ({} of {})",
                    chunk.len(),
                    texts.len()
                );
                let generator = rules::dns(chunk.to_vec(), true);
                let built = rules::build(Action::Accept, family, generator, note).map(|mut c| {
                    c.spares = true;
                    c
                });
                match candidates.add(built, "spared names") {
                    Some(c) if c < MAX_CANDIDATES => plan.push(c),
                    _ => {
                        plan.clear();
                        break;
                    }
                }
            }
            if plan.is_empty() {
                continue;
            }
            // Every plan of the flood and family, with the spared names accepted first.
            let spared: Vec<rules::Plan> = candidates
                .plans
                .iter()
                .filter(|p| p.flood == index && p.family == family && !p.spares)
                .map(|p| rules::Plan {
                    flood: index,
                    family,
                    rules: plan.iter().chain(p.rules.iter()).copied().collect(),
                    preference: p.preference,
                    spares: true,
                    accepts_beyond_cut: p.accepts_beyond_cut.clone(),
                })
                .collect();
            added |= !spared.is_empty();
            candidates.plans.extend(spared);
        }
    }
    added
}

/// Most destination addresses named per flood and family.
const MAX_DESTINATIONS: usize = 16;

/// The addresses a flood's rules protect: every destination that got at least 1% of the flood
/// (most first), and for a family the flood did not reach but has rules in, the server's
/// addresses of that family (each with at least 1% of that family's queries).
fn flood_destinations(
    stats: &Stats,
    flood: &Flood,
    map: &FastMap<IpAddr, u64>,
    chosen: &[(usize, Family, Vec<usize>)],
    floods: &[Flood],
) -> Vec<IpAddr> {
    let total: u64 = map.values().sum();
    let mut out: Vec<(IpAddr, u64)> = map
        .iter()
        .filter(|(_, &n)| n as f64 >= 0.01 * total as f64)
        .map(|(a, n)| (*a, *n))
        .collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut out: Vec<IpAddr> = out
        .into_iter()
        .map(|(a, _)| a)
        .take(MAX_DESTINATIONS)
        .collect();
    for family in [Family::V4, Family::V6] {
        let has_rules = chosen
            .iter()
            .any(|(i, f, _)| *f == family && floods[*i].id == flood.id);
        let is_family = |a: &IpAddr| a.is_ipv6() == (family == Family::V6);
        if !has_rules || out.iter().any(is_family) {
            continue;
        }
        let family_total: u64 = stats
            .destinations
            .iter()
            .filter(|(a, _)| is_family(a))
            .map(|(_, n)| n)
            .sum();
        let mut servers: Vec<(IpAddr, u64)> = stats
            .destinations
            .iter()
            .filter(|(a, &n)| is_family(a) && n as f64 >= 0.01 * family_total as f64)
            .map(|(a, n)| (*a, *n))
            .collect();
        servers.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        out.extend(servers.into_iter().map(|(a, _)| a).take(MAX_DESTINATIONS));
    }
    out
}

#[cfg(test)]
mod onset_tests {
    use super::onset;

    #[test]
    fn a_step_within_the_capture_is_an_onset() {
        // 10 buckets of 6 s: 2 queries a bucket, then 600 from the 4th on.
        let mut line = vec![2u64; 10];
        for n in &mut line[3..] {
            *n = 600;
        }
        let o = onset(&line, 6, 60).unwrap();
        assert_eq!(o.at_seconds, 18);
        assert_eq!(o.before_qps, 0.3);
        assert_eq!(o.after_qps, 100.0);
    }

    #[test]
    fn a_flood_from_the_start_or_a_slow_rise_has_none() {
        assert_eq!(onset(&[500, 600, 550, 580], 10, 40), None);
        // One busy bucket, but no lasting rise: less than threefold before and after.
        assert_eq!(onset(&[5, 30, 1, 1, 1, 1, 1, 1], 10, 80), None);
        assert_eq!(onset(&[], 1, 0), None);
        assert_eq!(onset(&[5], 1, 1), None);
    }
}
