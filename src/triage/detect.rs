//! Flood detection: what stands out from the rest of the traffic (and from the baseline and
//! the zone, when given).
//!
//! Two kinds of flood are found:
//! - **random subdomains** under a parent suffix: many names under it that are rarely asked
//!   again, with many distinct child labels. A name is *established* when it is asked more
//!   often than random labels of the flood would repeat by chance (a Poisson bound on the
//!   flood's own repetition rate, see [`established_threshold`]), or when the zone or the baseline has it: established names
//!   are legitimate, the rare ones are the flood. The most specific parent wins when nested
//!   parents see the same flood.
//! - **header fingerprints**: one name whose traffic is dominated by one fingerprint (flag
//!   bits including the reserved Z bit, EDNS presence, size and DO bit, question type and
//!   class) whose header part (flags and EDNS) is practically absent from all other traffic:
//!   the mark of one tool, not of the many resolvers legitimate queries come from.
//!
//! A flood must carry at least [`MIN_FLOOD`] queries and 0.5% of all queries.

use crate::triage::packet::{label_starts, name_text, Edns, Family};
use crate::triage::stats::{charset_bits, FastMap, Fingerprint, Stats, CHARSETS};
use crate::triage::zone::Zone;

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

/// The child label of `name` directly left of `suffix` (which it is under).
pub fn child_label<'a>(name: &'a [u8], suffix: &[u8]) -> &'a [u8] {
    let cut = name.len() - suffix.len();
    let mut pos = 0;
    let mut last = 0;
    while pos < cut {
        last = pos;
        pos += 1 + usize::from(name[pos]);
    }
    &name[last + 1..cut]
}

/// What the detector knows besides the capture: names that are legitimate by the zone or the
/// baseline, and the baseline's counters.
pub struct Knowledge<'a> {
    /// The baseline's counters.
    pub baseline: Option<&'a Stats>,
    /// The zone's names.
    pub zone: Option<&'a Zone>,
}

impl Knowledge<'_> {
    /// Why `name` is legitimate whatever the capture says, if it is.
    pub fn known(&self, name: &[u8]) -> Option<&'static str> {
        if self.zone.is_some_and(|z| z.contains(name)) {
            return Some("in the zone");
        }
        if self
            .baseline
            .is_some_and(|b| b.names.get(name).is_some_and(|s| s.count >= 2))
        {
            return Some("in the baseline");
        }
        None
    }
}

/// Per-suffix tallies from the name table.
#[derive(Default)]
struct Tally<'a> {
    /// Distinct names by count (index min(count, 31)).
    names_by_count: [u64; 32],
    /// Queries by the count of their name (index min(count, 31)).
    packets_by_count: [u64; 32],
    established_at: u32,
    established: Vec<(&'a [u8], u32)>,
    established_packets: u64,
    established_v6: u64,
    established_children: FastMap<&'a [u8], ()>,
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
    floods.extend(fingerprints(stats, min_flood));
    floods.sort_by_key(|f| std::cmp::Reverse(f.queries));
    floods.truncate(MAX_FLOODS);
    for (index, flood) in floods.iter_mut().enumerate() {
        flood.id = format!("flood-{}", index + 1);
    }
    floods
}

struct Candidate<'a> {
    suffix: Vec<u8>,
    rare: u64,
    rare_v6: u64,
    rare_names: u64,
    rare_children: f64,
    established_at: u32,
    established: Vec<(&'a [u8], u32)>,
}

fn random_subdomains(stats: &Stats, known: &Knowledge<'_>, min_flood: u64) -> Vec<Flood> {
    // Parents with enough traffic to hold a flood.
    let mut tallies: FastMap<&[u8], Tally<'_>> = stats
        .suffixes
        .iter()
        .filter(|(_, s)| s.packets >= min_flood && s.detail.is_some())
        .map(|(k, _)| (&k[..], Tally::default()))
        .collect();
    let mut starts = Vec::new();
    for (name, stat) in &stats.names {
        label_starts(name, &mut starts);
        for &at in starts.iter().skip(1) {
            if let Some(tally) = tallies.get_mut(&name[at..]) {
                let bucket = (stat.count as usize).min(31);
                tally.names_by_count[bucket] += 1;
                tally.packets_by_count[bucket] += u64::from(stat.count);
            }
        }
    }
    for (suffix, tally) in tallies.iter_mut() {
        let stat = &stats.suffixes[*suffix];
        // The flood's repetition rate, from names asked up to 10 times (plus the forgotten
        // ones, all asked once).
        let low_names: u64 = tally.names_by_count[1..=10].iter().sum();
        let low_packets: u64 = tally.packets_by_count[1..=10].iter().sum();
        let forgotten = stat
            .packets
            .saturating_sub(tally.packets_by_count.iter().sum::<u64>());
        let mean = (low_packets + forgotten) as f64 / (low_names + forgotten).max(1) as f64;
        tally.established_at = established_threshold(mean, low_names + forgotten);
    }
    for (name, s) in &stats.names {
        let is_known = known.known(name).is_some();
        label_starts(name, &mut starts);
        for &at in starts.iter().skip(1) {
            let suffix = &name[at..];
            if let Some(tally) = tallies.get_mut(suffix) {
                if s.count >= tally.established_at || is_known {
                    tally.established_packets += u64::from(s.count);
                    tally.established_v6 += u64::from(s.ipv6);
                    tally
                        .established_children
                        .insert(child_label(name, suffix), ());
                    tally.established.push((&name[..], s.count));
                }
            }
        }
    }
    let mut candidates = Vec::new();
    for (suffix, tally) in tallies {
        let stat = &stats.suffixes[suffix];
        let rare = stat.packets.saturating_sub(tally.established_packets);
        if rare < min_flood {
            continue;
        }
        let detail = stat.detail.as_ref().expect("filtered above");
        let rare_children = detail.distinct_children() - tally.established_children.len() as f64;
        let rare_names = u64::from(stat.names).saturating_sub(tally.established.len() as u64);
        if rare_children < 0.3 * rare as f64 || rare_names < min_flood / 2 {
            continue;
        }
        if let Some(baseline) = known.baseline {
            // Against normal times: the share of rare names under this parent must have grown.
            if let Some(before) = baseline_rare_share(baseline, suffix) {
                let now = rare as f64 / stats.queries.max(1) as f64;
                if now < 5.0 * before {
                    continue;
                }
            }
        }
        candidates.push(Candidate {
            suffix: suffix.to_vec(),
            rare,
            rare_v6: stat.ipv6.saturating_sub(tally.established_v6),
            rare_names,
            rare_children,
            established_at: tally.established_at,
            established: tally.established,
        });
    }
    candidates.sort_by(|a, b| b.rare.cmp(&a.rare).then(a.suffix.cmp(&b.suffix)));
    // Nested parents seeing the same flood: keep the most specific one unless the other
    // holds clearly more.
    let mut kept: Vec<Candidate<'_>> = Vec::new();
    for c in candidates {
        let mut replace = None;
        let mut skip = false;
        for (index, k) in kept.iter().enumerate() {
            let c_specific = depth_under(&c.suffix, &k.suffix).is_some();
            if !c_specific && depth_under(&k.suffix, &c.suffix).is_none() {
                continue;
            }
            if c_specific && (c.rare as f64) >= 0.8 * k.rare as f64 {
                replace = Some(index);
            } else {
                skip = true;
            }
            break;
        }
        match (replace, skip) {
            (Some(index), _) => kept[index] = c,
            (None, false) => kept.push(c),
            (None, true) => {}
        }
    }
    kept.into_iter().map(|c| profile(stats, c)).collect()
}

/// The share of all queries that went to rare names under `suffix` in the baseline, when the
/// baseline saw the suffix at all.
fn baseline_rare_share(baseline: &Stats, suffix: &[u8]) -> Option<f64> {
    let stat = baseline.suffixes.get(suffix)?;
    let repeated: u64 = baseline
        .names
        .iter()
        .filter(|(name, s)| s.count >= 3 && depth_under(name, suffix).is_some())
        .map(|(_, s)| u64::from(s.count))
        .sum();
    Some(stat.packets.saturating_sub(repeated) as f64 / baseline.queries.max(1) as f64)
}

fn profile(stats: &Stats, c: Candidate<'_>) -> Flood {
    let detail = stats.suffixes[&c.suffix[..]]
        .detail
        .as_ref()
        .expect("candidates have a profile");
    let mut lengths = detail.lengths;
    let mut depths = detail.depths;
    let mut charsets = detail.charsets;
    for (name, _) in &c.established {
        let child = child_label(name, &c.suffix);
        let index = child.len().min(63);
        lengths[index] = lengths[index].saturating_sub(1);
        if let Some(depth) = depth_under(name, &c.suffix) {
            depths[(depth - 1).min(3)] = depths[(depth - 1).min(3)].saturating_sub(1);
        }
        let bits = charset_bits(child);
        for (class, slot) in charsets.iter_mut().enumerate() {
            *slot = slot.saturating_sub(u32::from(bits >> class & 1));
        }
    }
    let rare_names: u64 = lengths.iter().map(|&n| u64::from(n)).sum();
    let floor = (rare_names / 1000).max(1) as u32;
    let present: Vec<usize> = (1..64).filter(|&l| lengths[l] >= floor).collect();
    let min = present.first().copied().unwrap_or(1) as u8;
    let max = present.last().copied().unwrap_or(63) as u8;
    let depth_floor = (rare_names / 100).max(1) as u32;
    let mut depth_list: Vec<usize> = (0..4)
        .filter(|&d| depths[d] >= depth_floor)
        .map(|d| d + 1)
        .collect();
    if depth_list.is_empty() {
        depth_list.push(1);
    }
    let class_bits = charsets
        .iter()
        .enumerate()
        .filter(|(_, &n)| n >= floor)
        .fold(0u8, |bits, (class, _)| bits | 1 << class);
    let randomized_case = f64::from(detail.upper_names) >= 0.3 * c.rare_names as f64;
    let why = format!(
        "{} queries for {} rarely repeated names under {} (~{} distinct child labels); names asked {} times or more are taken as legitimate",
        c.rare,
        c.rare_names,
        name_text(&c.suffix),
        c.rare_children.round() as u64,
        c.established_at
    );
    Flood {
        id: String::new(),
        kind: FloodKind::RandomSubdomain {
            suffix: c.suffix,
            established_at: c.established_at,
            depths: depth_list,
            lengths: (min, max),
            charsets: class_bits,
            randomized_case,
            distinct_children: c.rare_children.max(0.0).round() as u64,
        },
        queries: c.rare,
        ipv6: c.rare_v6,
        why,
    }
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
        assert_eq!(
            child_label(b"\x01a\x03www\x07example\x03net", suffix),
            b"www"
        );
        assert_eq!(depth_under(b"\x07example\x03net", suffix), None);
        // Ends with the bytes but not at a label boundary.
        assert_eq!(depth_under(b"\x08xexample\x03net", suffix), None);
    }
}
