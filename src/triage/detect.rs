//! Flood detection: what stands out from the rest of the traffic, judged by the evidence the
//! capture holds (the server's own responses, how often names repeat, the sources), the zone
//! and the baseline.
//!
//! Three kinds of flood are found:
//! - **random subdomains** under a parent: many names directly under it (or two labels under
//!   it) for which nothing says they exist — the server never answered them NOERROR, the
//!   zone has neither them nor a wildcard above them, the baseline did not see them, and they
//!   are not asked more often than random labels repeat by chance (a Poisson bound on the
//!   flood's own repetition, `established_threshold`). Such names must be mostly distinct,
//!   at least as many queries as the parent's names that do exist get, and (with a baseline)
//!   at several times their rate in normal times: a parent whose rare names arrive as before,
//!   or a zone whose wildcard children are asked now and then, is no flood.
//! - **dedicated sources**: sources that each send one (name, type) for at least 90% of their
//!   queries at 5 or more queries a second, together at least 1% of all queries: a flood of one name (an existing one included),
//!   told apart from the same name asked by resolvers by where it comes from.
//! - **header fingerprints**: one name whose traffic is dominated by one fingerprint (flag
//!   bits including the reserved Z bit, EDNS presence, size and DO bit, question type and
//!   class) whose header part (flags and EDNS) is practically absent from all other traffic:
//!   the mark of one tool, not of the many resolvers legitimate queries come from.
//!
//! A flood must carry at least [`MIN_FLOOD`] queries and 0.5% of all queries.

use std::net::IpAddr;

use crate::triage::packet::{name_text, Edns, Family};
use crate::triage::stats::{charset_bits, query_key, FastMap, Fingerprint, Stats, CHARSETS};
use crate::triage::zone::{Zone, ZoneMatch};

/// The fewest queries a flood is made of.
pub const MIN_FLOOD: u64 = 50;

/// Most floods reported.
pub const MAX_FLOODS: usize = 8;

/// Shares below this, among the traffic outside a name, count as absent.
const ABSENT_SHARE: f64 = 0.001;

/// What a flood is.
#[derive(Debug, Clone, PartialEq)]
pub enum FloodKind {
    /// Random child labels under `suffix`.
    RandomSubdomain {
        /// The parent suffix (lowercase wire form).
        suffix: Vec<u8>,
        /// Names asked at least this many times under it are established (legitimate).
        established_at: u32,
        /// Depths (labels left of the suffix) of the flood's names, 1-based.
        depths: Vec<usize>,
        /// Shortest and longest child label.
        lengths: (u8, u8),
        /// Character classes of the child labels (bits of [`CHARSETS`]).
        charsets: u8,
        /// Whether names come with randomized letter case.
        randomized_case: bool,
        /// Distinct child labels (estimate).
        distinct_children: u64,
    },
    /// One (name, type) sent by sources that send (almost) nothing else.
    Sources {
        /// The name (lowercase wire form).
        name: Vec<u8>,
        /// The question type.
        qtype: u16,
        /// The sources, sorted.
        hosts: Vec<IpAddr>,
    },
    /// One name flooded by one tool's fingerprint.
    Fingerprint {
        /// The name (lowercase wire form).
        name: Vec<u8>,
        /// The fingerprint.
        print: Fingerprint,
        /// Whether the flood's names come with upper-case letters.
        upper: bool,
    },
}

/// A detected flood.
#[derive(Debug, Clone, PartialEq)]
pub struct Flood {
    /// Short identifier (`flood-1`, ...).
    pub id: String,
    /// What it is.
    pub kind: FloodKind,
    /// Queries the first pass attributes to it.
    pub queries: u64,
    /// Of which over IPv6.
    pub ipv6: u64,
    /// Why it was flagged, in words.
    pub why: String,
}

impl Flood {
    /// Whether it has traffic of `family` worth a rule (at least 0.2% of it).
    pub fn has_family(&self, family: Family) -> bool {
        let v6 = self.ipv6 as f64;
        let total = self.queries.max(1) as f64;
        match family {
            Family::V6 => v6 / total >= 0.002,
            Family::V4 => (total - v6) / total >= 0.002,
        }
    }

    /// A one-line description.
    pub fn describe(&self) -> String {
        match &self.kind {
            FloodKind::RandomSubdomain {
                suffix,
                depths,
                lengths,
                charsets,
                randomized_case,
                ..
            } => {
                let prefix: Vec<&str> = depths.iter().map(|_| "<random>").collect();
                let classes: Vec<&str> = CHARSETS
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| charsets >> i & 1 == 1)
                    .map(|(_, c)| *c)
                    .collect();
                format!(
                    "random subdomains {}.{} (child labels of {}-{} characters, {}{})",
                    prefix.join("|"),
                    name_text(suffix),
                    lengths.0,
                    lengths.1,
                    classes.join("+"),
                    if *randomized_case {
                        ", randomized case"
                    } else {
                        ""
                    }
                )
            }
            FloodKind::Sources { name, qtype, hosts } => format!(
                "{} {} from {} source{} that send nothing else",
                name_text(name),
                crate::dns::type_name(*qtype),
                hosts.len(),
                if hosts.len() == 1 { "" } else { "s" }
            ),
            FloodKind::Fingerprint { name, print, .. } => format!(
                "{} {} from one tool: flags {}, EDNS {}",
                name_text(name),
                crate::dns::type_name(print.qtype),
                flags_text(print.header.flags),
                edns_text(print.header.edns)
            ),
        }
    }
}

/// Flag bits as names (`rd,z`), `-` for none; opcode and rcode as numbers when not zero.
pub fn flags_text(flags: u16) -> String {
    const BITS: [(u16, &str); 8] = [
        (0x8000, "qr"),
        (0x0400, "aa"),
        (0x0200, "tc"),
        (0x0100, "rd"),
        (0x0080, "ra"),
        (0x0040, "z"),
        (0x0020, "ad"),
        (0x0010, "cd"),
    ];
    let mut parts: Vec<String> = BITS
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, name)| name.to_string())
        .collect();
    let opcode = (flags >> 11) & 0xf;
    if opcode != 0 {
        parts.push(format!("opcode={opcode}"));
    }
    if flags & 0xf != 0 {
        parts.push(format!("rcode={}", flags & 0xf));
    }
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(",")
    }
}

/// EDNS as text: `none`, or the size with `do` when the DO bit is set.
pub fn edns_text(edns: Edns) -> String {
    match edns {
        Edns::None => "none".into(),
        Edns::Opt { size, dnssec_ok } => {
            format!("{size}{}", if dnssec_ok { " do" } else { "" })
        }
    }
}

/// Whether `name` is `suffix` with at least one more label in front, and the depth.
pub fn depth_under(name: &[u8], suffix: &[u8]) -> Option<usize> {
    if name.len() <= suffix.len() || !name.ends_with(suffix) {
        return None;
    }
    let cut = name.len() - suffix.len();
    let mut pos = 0;
    let mut depth = 0;
    while pos < cut {
        pos += 1 + usize::from(name[pos]);
        depth += 1;
    }
    (pos == cut).then_some(depth)
}

/// Why a name is taken to exist (and its queries to be legitimate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Basis {
    /// The zone declares it.
    Zone,
    /// A wildcard of the zone answers it.
    ZoneWildcard,
    /// The server answered it NOERROR in the capture.
    Answered,
    /// The baseline saw it answered or asked repeatedly.
    Baseline,
    /// Asked more often than the flood's random names repeat.
    Repeated,
}

impl Basis {
    /// Every basis, in order.
    pub const ALL: [Basis; 5] = [
        Basis::Zone,
        Basis::ZoneWildcard,
        Basis::Answered,
        Basis::Baseline,
        Basis::Repeated,
    ];

    /// A short key (JSON).
    pub fn key(self) -> &'static str {
        match self {
            Basis::Zone => "zone",
            Basis::ZoneWildcard => "zone_wildcard",
            Basis::Answered => "answered_noerror",
            Basis::Baseline => "baseline",
            Basis::Repeated => "repeated",
        }
    }

    /// In words.
    pub fn text(self) -> &'static str {
        match self {
            Basis::Zone => "name in the zone",
            Basis::ZoneWildcard => "name under a wildcard of the zone",
            Basis::Answered => "answered NOERROR by the server",
            Basis::Baseline => "name in the baseline",
            Basis::Repeated => "asked repeatedly",
        }
    }
}

/// What the detector knows besides the capture: the zone and the baseline's counters.
pub struct Knowledge<'a> {
    /// The baseline's counters.
    pub baseline: Option<&'a Stats>,
    /// The zone's names.
    pub zone: Option<&'a Zone>,
}

impl Knowledge<'_> {
    /// Why `name` exists by the zone, the capture's responses or the baseline, if it does.
    pub fn exists(&self, stats: &Stats, name: &[u8]) -> Option<Basis> {
        if let Some(found) = self.zone.and_then(|z| z.covers(name)) {
            return Some(match found {
                ZoneMatch::Name => Basis::Zone,
                ZoneMatch::Wildcard => Basis::ZoneWildcard,
            });
        }
        if stats.names.get(name).is_some_and(|s| s.noerror > 0) {
            return Some(Basis::Answered);
        }
        if self.baseline.is_some_and(|b| {
            b.names
                .get(name)
                .is_some_and(|s| s.noerror > 0 || s.count >= 3)
        }) {
            return Some(Basis::Baseline);
        }
        None
    }
}

/// The parent of a wire name (without its first label), when it has one.
pub fn parent(name: &[u8]) -> Option<&[u8]> {
    let first = usize::from(*name.first()?);
    name.get(1 + first..)
}

/// The smallest count that the names of a random flood reach by chance less than once in two
/// captures, at least 3. The names seen are a zero-truncated Poisson sample: their mean count
/// `mean` gives the rate, and `names` of them are drawn.
fn established_threshold(mean: f64, names: u64) -> u32 {
    // Solve mean = lambda / (1 - e^-lambda) by bisection (the left side grows with lambda).
    let (mut low, mut high) = (1e-9f64, 64.0f64);
    for _ in 0..100 {
        let mid = (low + high) / 2.0;
        if mid / (1.0 - (-mid).exp()) < mean {
            low = mid;
        } else {
            high = mid;
        }
    }
    let lambda = low;
    let seen = 1.0 - (-lambda).exp();
    // P(X = k) step by step; tail = P(X >= k).
    let mut term = (-lambda).exp();
    let mut below = term;
    for k in 1..200u32 {
        let tail = (1.0 - below).max(0.0);
        if k >= 2 && names as f64 * tail / seen < 0.5 {
            return k.max(3);
        }
        term *= lambda / f64::from(k);
        below += term;
    }
    200
}

/// Finds the floods.
pub fn detect(stats: &Stats, known: &Knowledge<'_>) -> Vec<Flood> {
    let min_flood = MIN_FLOOD.max(stats.queries / 200);
    let mut floods = random_subdomains(stats, known, min_flood);
    floods.extend(sources(stats, min_flood));
    let fixed: Vec<Vec<u8>> = floods
        .iter()
        .filter_map(|f| match &f.kind {
            FloodKind::Sources { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect();
    floods.extend(fingerprints(stats, min_flood).into_iter().filter(
        |f| !matches!(&f.kind, FloodKind::Fingerprint { name, .. } if fixed.contains(name)),
    ));
    floods.sort_by_key(|f| std::cmp::Reverse(f.queries));
    floods.truncate(MAX_FLOODS);
    for (index, flood) in floods.iter_mut().enumerate() {
        flood.id = format!("flood-{}", index + 1);
    }
    floods
}

/// The names without evidence of existence under one parent, at one depth.
struct Unknown {
    queries: u64,
    ipv6: u64,
    names: u64,
    /// Distinct labels right under the parent (depth 2: the middle labels).
    children: FastMap<Vec<u8>, ()>,
    upper: u64,
    nxdomain: u64,
    answered: u64,
    /// Queries by the length of the first label.
    lengths: [u64; 64],
    charsets: [u64; 5],
    /// Names by count (index min(count, 31)), for the repetition bound.
    by_count: [u64; 32],
}

impl Default for Unknown {
    fn default() -> Unknown {
        Unknown {
            queries: 0,
            ipv6: 0,
            names: 0,
            children: FastMap::default(),
            upper: 0,
            nxdomain: 0,
            answered: 0,
            lengths: [0; 64],
            charsets: [0; 5],
            by_count: [0; 32],
        }
    }
}

impl Unknown {
    fn add(&mut self, name: &[u8], stat: &crate::triage::stats::NameStat, child: &[u8]) {
        let count = u64::from(stat.count);
        self.queries += count;
        self.ipv6 += u64::from(stat.ipv6);
        self.names += 1;
        if self.children.len() < 100_000 {
            self.children.insert(child.to_vec(), ());
        }
        self.upper += u64::from(stat.upper > 0);
        self.nxdomain += u64::from(stat.nxdomain > 0);
        self.answered += u64::from(stat.nxdomain > 0 || stat.noerror > 0);
        let first = &name[1..1 + usize::from(name[0])];
        self.lengths[first.len().min(63)] += count;
        let bits = charset_bits(first);
        for (class, slot) in self.charsets.iter_mut().enumerate() {
            *slot += count * u64::from(bits >> class & 1);
        }
        self.by_count[(stat.count as usize).min(31)] += 1;
    }
}

/// The names of `stats` grouped by their parent (depth 1) and grandparent (depth 2), those
/// without evidence apart, with the queries that do have evidence summed per ancestor.
fn random_subdomains(stats: &Stats, known: &Knowledge<'_>, min_flood: u64) -> Vec<Flood> {
    // 1. Without the repetition bound: which names have evidence, and the repetition of the
    // others per parent.
    let mut evidenced: FastMap<&[u8], bool> = FastMap::default();
    let mut repetition: FastMap<&[u8], [u64; 32]> = FastMap::default();
    for (name, stat) in &stats.names {
        if stat.count == 0 {
            continue;
        }
        let has = known.exists(stats, name).is_some();
        evidenced.insert(&name[..], has);
        if !has {
            if let Some(up) = parent(name) {
                repetition.entry(up).or_insert([0; 32])[(stat.count as usize).min(31)] += 1;
            }
        }
    }
    let thresholds: FastMap<&[u8], u32> = repetition
        .iter()
        .map(|(up, by_count)| {
            let low_names: u64 = by_count[1..=10].iter().sum();
            let low_packets: u64 = (1..=10).map(|k| by_count[k] * k as u64).sum();
            let mean = low_packets as f64 / low_names.max(1) as f64;
            (*up, established_threshold(mean, low_names))
        })
        .collect();
    // 2. Existing names' queries per ancestor; the others per parent.
    let mut existing: FastMap<&[u8], u64> = FastMap::default();
    let mut depth1: FastMap<&[u8], Unknown> = FastMap::default();
    for (name, stat) in &stats.names {
        let Some(&has) = evidenced.get(&name[..]) else {
            continue;
        };
        let up = parent(name).unwrap_or(&[]);
        let repeated = stat.count >= thresholds.get(up).copied().unwrap_or(3);
        if has || repeated {
            // The name and its ancestors: of a deep name, the two nearest and the 8 nearest
            // the root, as the parent table keeps them (bounded work per name).
            let depth = crate::triage::packet::labels(name).count();
            let mut at: &[u8] = name;
            let mut level = 0;
            loop {
                if level <= 2 || depth - level <= 8 {
                    *existing.entry(at).or_insert(0) += u64::from(stat.count);
                }
                level += 1;
                match parent(at) {
                    Some(next) if !next.is_empty() => at = next,
                    _ => break,
                }
            }
        } else if !up.is_empty() {
            let child = &name[1..1 + usize::from(name[0])];
            depth1.entry(up).or_default().add(name, stat, child);
        }
    }
    let accept = |up: &[u8], unknown: &Unknown, distinct: u64| -> bool {
        let before = existing.get(up).copied().unwrap_or(0);
        unknown.queries >= min_flood
            && distinct as f64 >= 0.3 * unknown.queries as f64
            && unknown.queries as f64 >= 0.5 * before as f64
            && grown_since_baseline(stats, known, up, unknown.queries)
    };
    let mut floods = Vec::new();
    let mut taken: FastMap<&[u8], ()> = FastMap::default();
    for (up, unknown) in &depth1 {
        if accept(up, unknown, unknown.children.len() as u64) {
            taken.insert(up, ());
            floods.push(profile(up, 1, unknown, &thresholds));
        }
    }
    // 3. Two random labels: names whose parent is itself an unknown, rarely asked name.
    let mut depth2: FastMap<&[u8], Unknown> = FastMap::default();
    for (name, stat) in &stats.names {
        if evidenced.get(&name[..]) != Some(&false) {
            continue;
        }
        let Some(up) = parent(name).filter(|u| !u.is_empty()) else {
            continue;
        };
        if stat.count >= thresholds.get(up).copied().unwrap_or(3)
            || taken.contains_key(up)
            || evidenced.get(up).copied().unwrap_or(false)
            || existing.get(up).copied().unwrap_or(0) > 0
        {
            continue;
        }
        let Some(grand) = parent(up).filter(|g| !g.is_empty()) else {
            continue;
        };
        let middle = &up[1..1 + usize::from(up[0])];
        depth2.entry(grand).or_default().add(name, stat, middle);
    }
    for (grand, unknown) in &depth2 {
        if taken.contains_key(grand) {
            continue;
        }
        if accept(grand, unknown, unknown.children.len() as u64) {
            floods.push(profile(grand, 2, unknown, &thresholds));
        }
    }
    floods
}

/// With a baseline that saw names under `parent`: whether the rate of names without evidence
/// under it is now at least three times what it was (a parent whose rare names arrive as
/// before is no flood).
fn grown_since_baseline(
    stats: &Stats,
    known: &Knowledge<'_>,
    parent_name: &[u8],
    now: u64,
) -> bool {
    let Some(baseline) = known.baseline else {
        return true;
    };
    let before: u64 = baseline
        .names
        .iter()
        .filter(|(name, s)| {
            parent(name) == Some(parent_name)
                && s.noerror == 0
                && s.count < 3
                && known.zone.is_none_or(|z| z.covers(name).is_none())
        })
        .map(|(_, s)| u64::from(s.count))
        .sum();
    let rate = |queries: u64, s: &Stats| queries as f64 / s.seconds().max(1) as f64;
    rate(now, stats) >= 3.0 * rate(before, baseline) + 1.0
}

fn profile(up: &[u8], depth: usize, unknown: &Unknown, thresholds: &FastMap<&[u8], u32>) -> Flood {
    // Child label lengths covering all but 0.1% of the queries at each end.
    let cut = unknown.queries / 1000;
    let mut seen = 0;
    let mut min = 1;
    for (length, &n) in unknown.lengths.iter().enumerate().skip(1) {
        seen += n;
        if seen > cut {
            min = length;
            break;
        }
    }
    seen = 0;
    let mut max = 63;
    for (length, &n) in unknown.lengths.iter().enumerate().skip(1).rev() {
        seen += n;
        if seen > cut {
            max = length;
            break;
        }
    }
    let class_bits = unknown
        .charsets
        .iter()
        .enumerate()
        .filter(|(_, &n)| n > cut)
        .fold(0u8, |bits, (class, _)| bits | 1 << class);
    let randomized_case = unknown.upper as f64 >= 0.3 * unknown.names as f64;
    let established_at = thresholds.get(up).copied().unwrap_or(3);
    let nx = if unknown.answered > 0 {
        format!(
            "; the server answered {} of the {} it answered NXDOMAIN",
            unknown.nxdomain, unknown.answered
        )
    } else {
        "; no response to them is in the capture".to_string()
    };
    let why = format!(
        "{} queries for {} names {} under {} with no evidence that they exist ({} distinct labels){nx}",
        unknown.queries,
        unknown.names,
        if depth == 1 { "directly" } else { "two labels" },
        name_text(up),
        unknown.children.len(),
    );
    Flood {
        id: String::new(),
        kind: FloodKind::RandomSubdomain {
            suffix: up.to_vec(),
            established_at,
            depths: vec![depth],
            lengths: (min.max(1) as u8, max.max(min).max(1) as u8),
            charsets: class_bits,
            randomized_case,
            distinct_children: unknown.children.len() as u64,
        },
        queries: unknown.queries,
        ipv6: unknown.ipv6,
        why,
    }
}

/// Sources that each send one (name, type) for at least 90% of their queries, at 5 queries a
/// second or more, grouped by that (name, type).
fn sources(stats: &Stats, min_flood: u64) -> Vec<Flood> {
    let mut groups: FastMap<u64, Vec<(IpAddr, u32)>> = FastMap::default();
    for (addr, host) in &stats.hosts {
        let seconds = host.seconds.1 - host.seconds.0 + 1;
        if host.queries >= 20
            && f64::from(host.key_votes) >= 0.8 * f64::from(host.queries)
            && f64::from(host.queries) / seconds as f64 >= 5.0
        {
            groups
                .entry(host.key)
                .or_default()
                .push((*addr, host.queries));
        }
    }
    let mut floods = Vec::new();
    for (key, mut hosts) in groups {
        let total: u64 = hosts.iter().map(|(_, q)| u64::from(*q)).sum();
        if total < min_flood || (total as f64) < 0.01 * stats.queries as f64 {
            continue;
        }
        // The (name, type) behind the key.
        let found = stats.names.iter().find_map(|(name, stat)| {
            stat.prints
                .iter()
                .filter_map(|(p, _)| *p)
                .find(|p| query_key(name, p.qtype) == key)
                .map(|p| (name.to_vec(), p.qtype, stat))
        });
        let Some((name, qtype, stat)) = found else {
            continue;
        };
        hosts.sort();
        let ipv6 = hosts
            .iter()
            .filter(|(a, _)| a.is_ipv6())
            .map(|(_, q)| u64::from(*q))
            .sum();
        let why = format!(
            "{} sources sent {total} queries, each at least 90% {} {} at 5/s or more; the name had {} queries in all",
            hosts.len(),
            name_text(&name),
            crate::dns::type_name(qtype),
            stat.count
        );
        floods.push(Flood {
            id: String::new(),
            kind: FloodKind::Sources {
                name,
                qtype,
                hosts: hosts.into_iter().map(|(a, _)| a).collect(),
            },
            queries: total,
            ipv6,
            why,
        });
    }
    floods
}

fn fingerprints(stats: &Stats, min_flood: u64) -> Vec<Flood> {
    let mut floods = Vec::new();
    for (name, stat) in &stats.names {
        if u64::from(stat.count) < min_flood {
            continue;
        }
        for (print, count) in stat.prints.iter().filter_map(|(p, c)| Some(((*p)?, *c))) {
            if u64::from(count) < min_flood || f64::from(count) < 0.5 * f64::from(stat.count) {
                continue;
            }
            let header_here: u32 = stat
                .prints
                .iter()
                .filter(|(p, _)| p.is_some_and(|p| p.header == print.header))
                .map(|(_, c)| *c)
                .sum();
            let header_all = stats.headers.get(&print.header).copied().unwrap_or(0);
            let elsewhere = header_all.saturating_sub(u64::from(header_here));
            let others = stats.queries.saturating_sub(u64::from(stat.count)).max(1);
            if elsewhere as f64 / others as f64 >= ABSENT_SHARE {
                continue;
            }
            // The same header must also be rare among the name's other queries: one tool,
            // not a kind of resolver.
            let rest = stat.count - count;
            if f64::from(header_here - count) > 0.01 * f64::from(rest.max(1)) + 2.0 {
                continue;
            }
            let ipv6 = u64::from(stat.ipv6) * u64::from(count) / u64::from(stat.count.max(1));
            floods.push(Flood {
                id: String::new(),
                kind: FloodKind::Fingerprint {
                    name: name.to_vec(),
                    print,
                    upper: stat.upper > stat.count / 2,
                },
                queries: u64::from(count),
                ipv6,
                why: format!(
                    "{count} of the {} queries for {} share one fingerprint (flags {}, EDNS {}, {}) seen in {elsewhere} of the {others} other queries",
                    stat.count,
                    name_text(name),
                    flags_text(print.header.flags),
                    edns_text(print.header.edns),
                    crate::dns::type_name(print.qtype)
                ),
            });
        }
    }
    floods
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_follows_the_flood_repetition_rate() {
        // Names never repeated: asked 3 times is already beyond chance.
        assert_eq!(established_threshold(1.0, 16_000), 3);
        // Short labels that repeat (16,000 draws from 17,576 three-letter names): the bound
        // rises well above the flood's own counts.
        let lambda = 16_000.0 / 17_576.0;
        let mean = lambda / (1.0 - f64::exp(-lambda));
        let threshold = established_threshold(mean, 10_000);
        assert!((7..=10).contains(&threshold), "{threshold}");
    }

    #[test]
    fn depth_and_child_label_under_a_suffix() {
        let suffix = b"\x07example\x03net";
        assert_eq!(depth_under(b"\x03www\x07example\x03net", suffix), Some(1));
        assert_eq!(
            depth_under(b"\x01a\x03www\x07example\x03net", suffix),
            Some(2)
        );
        assert_eq!(depth_under(b"\x07example\x03net", suffix), None);
        // Ends with the bytes but not at a label boundary.
        assert_eq!(depth_under(b"\x08xexample\x03net", suffix), None);
    }
}
