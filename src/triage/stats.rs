//! The first pass: counters over every packet, with memory bounded by fixed table sizes.
//!
//! Tables keyed by something an attacker chooses (query names, parent suffixes, source
//! networks) hold at most a fixed number of entries: when one is full, the entries seen only
//! once are forgotten (a name seen once is, for triage, simply "rare", whichever it was). A
//! forgotten key seen again starts counting anew, so counts are exact for every key that
//! repeats before its table fills and an underestimate by at most the number of times it was
//! forgotten otherwise. Per-suffix profiles are kept for suffixes that have been seen a few
//! times only.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;

use crate::triage::packet::{label_starts, DnsView, Edns, Family, IpView};

/// A small, fast hasher for the counting tables (keys are not secret; the tables are bounded,
/// so a flood of colliding keys costs time, never memory).
#[derive(Default, Clone, Copy)]
pub struct FastHasher(u64);

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        // Final mix so that the low bits depend on every input bit.
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
            self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x517c_c1b7_2722_0a95);
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }
    fn write_u16(&mut self, i: u16) {
        self.write_u64(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
}

/// A hash map with [`FastHasher`].
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// Most query names remembered at once.
pub const NAME_CAP: usize = 400_000;
/// Most source addresses remembered at once.
pub const HOST_CAP: usize = 100_000;
/// Most fingerprints (and header fingerprints) remembered at once.
pub const PRINT_CAP: usize = 10_000;
/// Most parent suffixes remembered at once.
pub const SUFFIX_CAP: usize = 200_000;
/// Most source networks (and destination addresses) remembered at once.
pub const NETWORK_CAP: usize = 100_000;
/// Fingerprints remembered per name.
pub const NAME_PRINTS: usize = 3;

/// The header part of a query's fingerprint: flag bits (all 16, reserved Z included) and EDNS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HeaderPrint {
    /// The flags word.
    pub flags: u16,
    /// EDNS presence, size and DO bit.
    pub edns: Edns,
}

/// A query's fingerprint: its header part and question type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint {
    /// Flags and EDNS.
    pub header: HeaderPrint,
    /// Question type.
    pub qtype: u16,
    /// Question class.
    pub qclass: u16,
}

impl Fingerprint {
    /// The fingerprint of a query.
    pub fn of(view: &DnsView) -> Fingerprint {
        Fingerprint {
            header: HeaderPrint {
                flags: view.flags,
                edns: view.edns,
            },
            qtype: view.qtype,
            qclass: view.qclass,
        }
    }
}

/// What is counted per query name.
#[derive(Debug, Clone, Default)]
pub struct NameStat {
    /// Queries.
    pub count: u32,
    /// Queries over IPv6.
    pub ipv6: u32,
    /// Queries whose name had an upper-case letter.
    pub upper: u32,
    /// The first fingerprints seen and their counts.
    pub prints: [(Option<Fingerprint>, u32); NAME_PRINTS],
    /// Queries with another fingerprint.
    pub other_prints: u32,
    /// Responses for the name with NOERROR: the server says it exists.
    pub noerror: u32,
    /// Responses for the name with NXDOMAIN.
    pub nxdomain: u32,
}

impl NameStat {
    fn add(&mut self, print: Fingerprint, family: Family, upper: bool) {
        self.count += 1;
        self.ipv6 += u32::from(family == Family::V6);
        self.upper += u32::from(upper);
        for slot in &mut self.prints {
            match slot.0 {
                Some(p) if p == print => {
                    slot.1 += 1;
                    return;
                }
                None => {
                    *slot = (Some(print), 1);
                    return;
                }
                _ => {}
            }
        }
        self.other_prints += 1;
    }
}

/// What is counted per source address: its queries and, by a one-counter majority vote
/// (Misra-Gries), the (name, type) it sends most, which holds the true majority when there is
/// one (`key_votes` is then at most its lead over all others together).
#[derive(Debug, Clone, Copy, Default)]
pub struct HostStat {
    /// Queries.
    pub queries: u32,
    /// Hash of the leading (lowercase name, question type).
    pub key: u64,
    /// Votes of the leading key: a lower bound of how much more often it came than the rest.
    pub key_votes: u32,
    /// First and last second it sent a query in.
    pub seconds: (u64, u64),
}

/// The key a host's queries are voted under: the lowercase wire name and the question type.
pub fn query_key(name: &[u8], qtype: u16) -> u64 {
    let mut h = FastHasher(0x2545_f491_4f6c_dd1d);
    h.write(name);
    h.write_u16(qtype);
    h.finish()
}

/// Character classes of labels.
pub const CHARSETS: [&str; 5] = ["letters", "digits", "hyphen", "underscore", "other"];

/// Which [`CHARSETS`] a (lowercase) label uses, as bits.
pub fn charset_bits(label: &[u8]) -> u8 {
    let mut bits = 0;
    for &b in label {
        bits |= match b {
            b'a'..=b'z' => 1,
            b'0'..=b'9' => 2,
            b'-' => 4,
            b'_' => 8,
            _ => 16,
        };
    }
    bits
}

/// The profile of the names under a suffix: their child labels (the label just left of the
/// suffix) by length and character class, depth, and a distinct-count estimate.
#[derive(Debug, Clone)]
pub struct SuffixDetail {
    /// Distinct names by the length of their child label (index = length, 0..=63).
    pub lengths: [u32; 64],
    /// Distinct names by how many labels are left of the suffix (1, 2, 3, 4 or more).
    pub depths: [u32; 4],
    /// Distinct names whose child label uses each class of [`CHARSETS`].
    pub charsets: [u32; 5],
    /// Distinct names first seen with upper-case letters.
    pub upper_names: u32,
    /// HyperLogLog registers over the child labels.
    pub registers: [u8; HLL_REGISTERS],
}

const HLL_REGISTERS: usize = 64;

impl SuffixDetail {
    fn new() -> SuffixDetail {
        SuffixDetail {
            lengths: [0; 64],
            depths: [0; 4],
            charsets: [0; 5],
            upper_names: 0,
            registers: [0; HLL_REGISTERS],
        }
    }

    /// Estimated number of distinct child labels.
    pub fn distinct_children(&self) -> f64 {
        let m = HLL_REGISTERS as f64;
        let sum: f64 = self
            .registers
            .iter()
            .map(|&r| 2f64.powi(-i32::from(r)))
            .sum();
        let raw = 0.709 * m * m / sum;
        let zeros = self.registers.iter().filter(|&&r| r == 0).count();
        if raw <= 2.5 * m && zeros > 0 {
            m * (m / zeros as f64).ln()
        } else {
            raw
        }
    }
}

/// What is counted per parent suffix.
#[derive(Debug, Clone, Default)]
pub struct SuffixStat {
    /// Queries for names under the suffix.
    pub packets: u64,
    /// Of which over IPv6.
    pub ipv6: u64,
    /// Distinct names under it (counted when a name is first seen).
    pub names: u32,
    /// The profile, kept once the suffix has been seen a few times.
    pub detail: Option<Box<SuffixDetail>>,
}

/// Queries seen before a suffix gets a profile.
const DETAIL_AFTER: u64 = 4;

/// The first pass's counters.
#[derive(Debug, Default)]
pub struct Stats {
    /// Packets read.
    pub packets: u64,
    /// Packets with an IP header.
    pub ip: u64,
    /// IPv4 packets.
    pub ipv4: u64,
    /// IPv6 packets.
    pub ipv6: u64,
    /// UDP packets to or from port 53 that carry a readable DNS message.
    pub dns: u64,
    /// UDP packets to or from port 53 whose DNS message could not be read.
    pub malformed: u64,
    /// DNS queries (QR clear).
    pub queries: u64,
    /// IPv6 queries.
    pub queries_v6: u64,
    /// DNS responses.
    pub responses: u64,
    /// Responses by rcode (0..15).
    pub rcodes: [u64; 16],
    /// Queries by second since the epoch.
    pub per_second: BTreeMap<u64, u64>,
    /// Queries by question type.
    pub qtypes: FastMap<u16, u64>,
    /// Queries by header fingerprint.
    pub headers: FastMap<HeaderPrint, u64>,
    /// Queries by full fingerprint.
    pub prints: FastMap<Fingerprint, u64>,
    /// Queries by name (lowercase wire form).
    pub names: FastMap<Box<[u8]>, NameStat>,
    /// Queries by parent suffix (lowercase wire form; the root is not counted).
    pub suffixes: FastMap<Box<[u8]>, SuffixStat>,
    /// Queries by source network (/24 for IPv4, /48 for IPv6).
    pub sources: FastMap<IpAddr, u64>,
    /// Queries by destination address.
    pub destinations: FastMap<IpAddr, u64>,
    /// Queries by source address.
    pub hosts: FastMap<IpAddr, HostStat>,
    /// Tables that reached their cap and forgot their least counted entries: (table, times).
    pub evictions: BTreeMap<&'static str, u32>,
    /// DNS packets that could not be read because the capture's snap length cut them.
    pub truncated: u64,
    /// What the reading had to say (a cut last record).
    pub warnings: Vec<String>,
    /// Times the name table was pruned.
    pub name_prunes: u32,
    /// The second being counted and its queries so far (added to `per_second` when the
    /// second changes: captures are mostly in time order).
    current_second: Option<(u64, u64)>,
    label_starts: Vec<usize>,
}

/// The network a source address is counted in: its /24 (IPv4) or /48 (IPv6).
pub fn source_network(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => {
            let mut octets = v4.octets();
            octets[3] = 0;
            IpAddr::from(octets)
        }
        IpAddr::V6(v6) => {
            let mut segments = v6.segments();
            for s in &mut segments[3..] {
                *s = 0;
            }
            IpAddr::from(segments)
        }
    }
}

fn bump_capped<K: std::hash::Hash + Eq>(map: &mut FastMap<K, u64>, key: K, cap: usize) -> bool {
    *map.entry(key).or_insert(0) += 1;
    if map.len() > cap {
        evict(map, cap, |count| *count);
        return true;
    }
    false
}

/// Shrinks `map` to at most half of `cap` entries, forgetting the entries of lowest weight
/// first: with every eviction removing at least half of the table, the cost per insert stays
/// constant (amortised) whatever the keys are.
pub fn evict<K, V>(map: &mut FastMap<K, V>, cap: usize, weight: impl Fn(&V) -> u64) {
    let target = cap / 2;
    let mut threshold = 1u64;
    while map.len() > target {
        map.retain(|_, v| weight(v) > threshold);
        threshold = threshold.saturating_mul(2);
    }
}

fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h = FastHasher(0x9e37_79b9_7f4a_7c15);
    h.write(bytes);
    h.finish()
}

impl Stats {
    /// Seconds from the first query to the last (at least 1 when there is a query).
    pub fn seconds(&self) -> u64 {
        match (
            self.per_second.first_key_value(),
            self.per_second.last_key_value(),
        ) {
            (Some((a, _)), Some((b, _))) => b - a + 1,
            _ => 0,
        }
    }

    /// Adds what is still held back to the tables; call once after the last packet.
    pub fn finish(&mut self) {
        if let Some((at, count)) = self.current_second.take() {
            *self.per_second.entry(at).or_insert(0) += count;
        }
    }

    /// Counts a packet that has no IP header triage can read.
    pub fn add_other(&mut self) {
        self.packets += 1;
    }

    /// Counts an IP packet; `dns` is its DNS view when it is UDP to or from port 53 and
    /// readable, with `name` the question name. `malformed` when it is UDP port 53 but not
    /// readable. `second` is its capture time.
    pub fn add(
        &mut self,
        ip: &IpView<'_>,
        dns: Option<(&DnsView, &[u8])>,
        malformed: bool,
        second: u64,
    ) {
        self.packets += 1;
        self.ip += 1;
        match ip.family {
            Family::V4 => self.ipv4 += 1,
            Family::V6 => self.ipv6 += 1,
        }
        if malformed {
            self.malformed += 1;
        }
        let Some((view, name)) = dns else {
            return;
        };
        self.dns += 1;
        if view.is_response() {
            self.responses += 1;
            self.rcodes[usize::from(view.rcode())] += 1;
            if let Some(stat) = self.names.get_mut(name) {
                match view.rcode() {
                    0 => stat.noerror = stat.noerror.saturating_add(1),
                    3 => stat.nxdomain = stat.nxdomain.saturating_add(1),
                    _ => {}
                }
            }
            return;
        }
        self.queries += 1;
        if ip.family == Family::V6 {
            self.queries_v6 += 1;
        }
        match &mut self.current_second {
            Some((at, count)) if *at == second => *count += 1,
            current => {
                if let Some((at, count)) = current.take() {
                    *self.per_second.entry(at).or_insert(0) += count;
                }
                *current = Some((second, 1));
            }
        }
        *self.qtypes.entry(view.qtype).or_insert(0) += 1;
        let print = Fingerprint::of(view);
        if bump_capped(&mut self.headers, print.header, PRINT_CAP) {
            *self.evictions.entry("header fingerprints").or_insert(0) += 1;
        }
        if bump_capped(&mut self.prints, print, PRINT_CAP) {
            *self.evictions.entry("fingerprints").or_insert(0) += 1;
        }
        if bump_capped(&mut self.sources, source_network(ip.src), NETWORK_CAP) {
            *self.evictions.entry("source networks").or_insert(0) += 1;
        }
        if bump_capped(&mut self.destinations, ip.dst, NETWORK_CAP) {
            *self.evictions.entry("destinations").or_insert(0) += 1;
        }
        let key = query_key(name, view.qtype);
        let host = self.hosts.entry(ip.src).or_insert(HostStat {
            seconds: (second, second),
            ..HostStat::default()
        });
        host.queries = host.queries.saturating_add(1);
        host.seconds.1 = host.seconds.1.max(second);
        host.seconds.0 = host.seconds.0.min(second);
        if host.key_votes == 0 {
            host.key = key;
            host.key_votes = 1;
        } else if host.key == key {
            host.key_votes = host.key_votes.saturating_add(1);
        } else {
            host.key_votes -= 1;
        }
        if self.hosts.len() > HOST_CAP {
            evict(&mut self.hosts, HOST_CAP, |h| u64::from(h.queries));
            *self.evictions.entry("sources").or_insert(0) += 1;
        }

        let first_seen = match self.names.get_mut(name) {
            Some(stat) => {
                stat.add(print, ip.family, view.upper);
                false
            }
            None => {
                let mut stat = NameStat::default();
                stat.add(print, ip.family, view.upper);
                self.names.insert(name.into(), stat);
                if self.names.len() > NAME_CAP {
                    // Names the server answered stay longest: they are the evidence of
                    // what exists.
                    evict(&mut self.names, NAME_CAP, |stat| {
                        u64::from(stat.count) + 2 * u64::from(stat.noerror.min(1))
                    });
                    self.name_prunes += 1;
                }
                true
            }
        };
        let mut starts = std::mem::take(&mut self.label_starts);
        label_starts(name, &mut starts);
        // Every proper suffix (not the name itself, not the root) is a parent.
        // Every proper suffix of a name of up to 10 labels; of a deeper name, the two
        // nearest parents and the 8 nearest the root (bounded work per query).
        let labels = starts.len();
        for (depth, &at) in starts.iter().enumerate().skip(1) {
            if depth > 2 && labels - depth > 8 {
                continue;
            }
            let suffix = &name[at..];
            let child_at = starts[depth - 1];
            let child = &name[child_at + 1..at];
            if !self.suffixes.contains_key(suffix) {
                if self.suffixes.len() >= SUFFIX_CAP {
                    evict(&mut self.suffixes, SUFFIX_CAP, |s| s.packets);
                    *self.evictions.entry("parent names").or_insert(0) += 1;
                }
                self.suffixes.insert(suffix.into(), SuffixStat::default());
            }
            let stat = self.suffixes.get_mut(suffix).expect("inserted above");
            stat.packets += 1;
            stat.ipv6 += u64::from(ip.family == Family::V6);
            if stat.detail.is_none() && stat.packets >= DETAIL_AFTER {
                stat.detail = Some(Box::new(SuffixDetail::new()));
            }
            if let Some(detail) = &mut stat.detail {
                let h = hash_bytes(child);
                let register = (h as usize) % HLL_REGISTERS;
                let rank = ((h >> 6) | (1 << 57)).trailing_zeros() as u8 + 1;
                if detail.registers[register] < rank {
                    detail.registers[register] = rank;
                }
            }
            if first_seen {
                stat.names += 1;
                if let Some(detail) = &mut stat.detail {
                    detail.lengths[child.len().min(63)] += 1;
                    detail.depths[(depth - 1).min(3)] += 1;
                    let bits = charset_bits(child);
                    for (class, slot) in detail.charsets.iter_mut().enumerate() {
                        *slot += u32::from(bits >> class & 1);
                    }
                    detail.upper_names += u32::from(view.upper);
                }
            }
        }
        self.label_starts = starts;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eviction_halves_a_full_table_keeping_the_most_counted() {
        let mut map: FastMap<u32, u64> = FastMap::default();
        for key in 0..1000u32 {
            map.insert(key, if key < 10 { 100 } else { 2 });
        }
        evict(&mut map, 1000, |v| *v);
        assert!(map.len() <= 500);
        for key in 0..10 {
            assert!(map.contains_key(&key));
        }
        // Every entry counted alike: still halved, not looping.
        let mut same: FastMap<u32, u64> = (0..1000u32).map(|k| (k, 7)).collect();
        evict(&mut same, 1000, |v| *v);
        assert!(same.len() <= 500);
    }
}
