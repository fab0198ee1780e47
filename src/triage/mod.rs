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
use crate::triage::detect::{depth_under, Flood, FloodKind, Knowledge};
use crate::triage::packet::{dns_view, ip_view, Family, DNS_PORT};
use crate::triage::rules::{Action, Candidates};
use crate::triage::stats::{FastMap, Fingerprint, Stats};
use crate::triage::zone::Zone;
use crate::vm::{Context, Input};

/// Why a packet is judged legitimate.
pub const LEGIT_REASONS: [&str; 6] = [
    "not a DNS query to port 53",
    "outside every flood",
    "established name (asked often)",
    "name in the zone",
    "name in the baseline",
    "other fingerprint than the flood's",
];

/// How the second pass judges a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Judged {
    /// Part of the flood at this index.
    Flood(u8),
    /// Legitimate, for the reason at this index of [`LEGIT_REASONS`].
    Legit(u8),
}

/// An error of the analysis, naming the input.
#[derive(Debug, thiserror::Error)]
pub enum TriageError {
    /// A capture could not be read.
    #[error("{0}")]
    Input(String),
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
    /// Per flood id: its most frequent destination address (for `iptables-bpf -i`).
    pub destinations: BTreeMap<String, IpAddr>,
    /// Candidates that could not be built, and why.
    pub skipped: Vec<String>,
    /// The inputs, as named on the command line.
    pub inputs: Vec<String>,
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
) -> Result<(), TriageError> {
    let file = File::open(&source.path)
        .map_err(|e| TriageError::Input(format!("cannot open '{}': {e}", source.name)))?;
    read_stream(
        &source.name,
        BufReader::with_capacity(1 << 16, file),
        &mut each,
    )
}

fn read_stream<R: Read>(
    name: &str,
    input: R,
    each: &mut dyn FnMut(&crate::pcap::Packet<'_>),
) -> Result<(), TriageError> {
    let mut reader = Reader::new(input).map_err(|e| TriageError::Input(format!("{name}: {e}")))?;
    loop {
        match reader.next_packet() {
            Ok(Some(packet)) => each(&packet),
            Ok(None) => return Ok(()),
            Err(e) => return Err(TriageError::Input(format!("{name}: {e}"))),
        }
    }
}

/// Counts the packets of `sources` (the first pass; also how a baseline is read).
pub fn count(sources: &[Source]) -> Result<Stats, TriageError> {
    let mut stats = Stats::default();
    let mut name = Vec::with_capacity(256);
    for source in sources {
        read_all(source, |packet| {
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
                None => stats.add(&ip, None, true, second),
            }
        })?;
    }
    stats.finish();
    Ok(stats)
}

/// Judges one query (lowercase wire name and its view) against the floods.
pub fn judge(
    floods: &[Flood],
    stats: &Stats,
    known: &Knowledge<'_>,
    name: &[u8],
    print: &Fingerprint,
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
                        Judged::Legit(5)
                    };
                }
            }
            FloodKind::RandomSubdomain {
                suffix,
                established_at,
                ..
            } => {
                if depth_under(name, suffix).is_some() {
                    if let Some(why) = known.known(name) {
                        return Judged::Legit(if why == "in the zone" { 3 } else { 4 });
                    }
                    let count = stats.names.get(name).map_or(0, |s| s.count);
                    return if count >= *established_at {
                        Judged::Legit(2)
                    } else {
                        Judged::Flood(index)
                    };
                }
            }
        }
    }
    Judged::Legit(1)
}

/// The second pass's result: packets per (judgment, family, candidates matched), and the
/// most frequent destinations of each flood.
struct Measured {
    cells: FastMap<(Judged, Family, u64), u64>,
    destinations: Vec<FastMap<IpAddr, u64>>,
}

fn measure(
    sources: &[Source],
    stats: &Stats,
    floods: &[Flood],
    known: &Knowledge<'_>,
    candidates: &Candidates,
) -> Result<Measured, TriageError> {
    let mut measured = Measured {
        cells: FastMap::default(),
        destinations: vec![FastMap::default(); floods.len()],
    };
    let mut name = Vec::with_capacity(256);
    let by_family: Vec<(Family, Vec<usize>)> = [Family::V4, Family::V6]
        .into_iter()
        .map(|f| {
            (
                f,
                (0..candidates.list.len())
                    .filter(|&i| candidates.list[i].family == f)
                    .collect(),
            )
        })
        .collect();
    for source in sources {
        read_all(source, |packet| {
            let Some(ip) = ip_view(packet.linktype, packet.data) else {
                return;
            };
            let Some((_, dst_port)) = ip.udp else {
                return;
            };
            if dst_port != DNS_PORT {
                return;
            }
            let judged = match dns_view(ip.payload, &mut name) {
                Some(view) if !view.is_response() => {
                    let judged = judge(floods, stats, known, &name, &Fingerprint::of(&view));
                    if let Judged::Flood(index) = judged {
                        let map = &mut measured.destinations[usize::from(index)];
                        if map.len() < 1024 || map.contains_key(&ip.dst) {
                            *map.entry(ip.dst).or_insert(0) += 1;
                        }
                    }
                    judged
                }
                _ => Judged::Legit(0),
            };
            let input = Input {
                frame: packet.data,
                start: ip.net.offset,
                net: Some(ip.net.offset),
                link: Some(0),
                wire_len: packet.orig_len.saturating_sub(ip.net.offset as u32),
                ctx: Context {
                    protocol: ip.net.ethertype,
                    ..Context::default()
                },
            };
            let list = &by_family[usize::from(ip.family == Family::V6)].1;
            let mut mask = 0u64;
            for &index in list {
                if candidates.list[index].program.run_with(&input) != 0 {
                    mask |= 1 << index;
                }
            }
            *measured.cells.entry((judged, ip.family, mask)).or_insert(0) += 1;
        })?;
    }
    Ok(measured)
}

/// The effect of an ordered list of candidates on one flood: (flood packets dropped, judged
/// legitimate packets dropped), over the packets of `family`.
fn effect(
    cells: &FastMap<(Judged, Family, u64), u64>,
    list: &[usize],
    candidates: &Candidates,
    family: Family,
    flood: u8,
) -> (u64, u64, u64) {
    let (mut flood_total, mut flood_dropped, mut legit_dropped) = (0, 0, 0);
    for (&(judged, fam, mask), &count) in cells {
        if fam != family {
            continue;
        }
        if judged == Judged::Flood(flood) {
            flood_total += count;
        }
        let decided = list.iter().find(|&&i| mask & (1 << i) != 0);
        let dropped = decided.is_some_and(|&i| candidates.list[i].action == Action::Drop);
        if dropped {
            match judged {
                Judged::Flood(f) if f == flood => flood_dropped += count,
                Judged::Flood(_) => {}
                Judged::Legit(_) => legit_dropped += count,
            }
        }
    }
    (flood_total, flood_dropped, legit_dropped)
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
    let measured = if floods.is_empty() {
        Measured {
            cells: FastMap::default(),
            destinations: Vec::new(),
        }
    } else {
        measure(sources, &stats, &floods, &known, &candidates)?
    };
    // The plan kept per flood and family.
    let mut chosen: Vec<(usize, Family, Vec<usize>)> = Vec::new();
    for (index, _) in floods.iter().enumerate() {
        let in_family = |family: Family| -> u64 {
            measured
                .cells
                .iter()
                .filter(|((j, f, _), _)| *j == Judged::Flood(index as u8) && *f == family)
                .map(|(_, c)| c)
                .sum()
        };
        let total = in_family(Family::V4) + in_family(Family::V6);
        for family in [Family::V4, Family::V6] {
            // A family with (almost) none of the flood needs no rule.
            if (in_family(family) as f64) < 0.002 * total as f64 || in_family(family) == 0 {
                continue;
            }
            let best = candidates
                .plans
                .iter()
                .filter(|p| p.flood == index && p.family == family)
                .map(|p| {
                    let (total, dropped, legit) =
                        effect(&measured.cells, &p.rules, &candidates, family, index as u8);
                    let covered = dropped as f64 >= 0.99 * total as f64;
                    (
                        (
                            !covered,
                            legit,
                            u64::MAX - dropped,
                            p.rules.len(),
                            p.preference,
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
    // Fingerprint floods first (their rules are the narrowest), then by size.
    chosen.sort_by_key(|(index, family, _)| {
        (
            !matches!(floods[*index].kind, FloodKind::Fingerprint { .. }),
            *index,
            *family == Family::V6,
        )
    });
    let mut order: Vec<usize> = Vec::new();
    let mut owners: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for (index, _, list) in &chosen {
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
    let mut outcome = Outcome::default();
    for flood in &floods {
        outcome.floods.insert(flood.id.clone(), (0, 0));
    }
    for (&(judged, family, mask), &count) in &measured.cells {
        for (position, &c) in order.iter().enumerate() {
            if mask & (1 << c) != 0 && candidates.list[c].family == family {
                reports[position].matched_alone += count;
            }
        }
        let decided = order
            .iter()
            .position(|&c| mask & (1 << c) != 0 && candidates.list[c].family == family);
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
                        .entry(LEGIT_REASONS[usize::from(r)].to_string())
                        .or_insert(0) += count
                }
            }
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
    let destinations = floods
        .iter()
        .zip(&measured.destinations)
        .filter_map(|(flood, map)| {
            map.iter()
                .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
                .map(|(addr, _)| (flood.id.clone(), *addr))
        })
        .collect();
    Ok(Analysis {
        stats,
        floods,
        rules: reports,
        outcome,
        destinations,
        skipped: candidates.skipped,
        inputs: sources.iter().map(|s| s.name.clone()).collect(),
    })
}
