//! The second pass over the captures: every packet judged (flood or legitimate, and why),
//! matched against every candidate rule at once, and counted by cell; what each source sent;
//! the names behind the dropped traffic. Then what an ordered rule list does to one flood.
//!
//! This module measures; it must not choose rules (the parent module does) nor word anything
//! for the report.

use std::net::IpAddr;

use super::*;

/// A cell of the second pass: how a packet was judged, its family, the candidates that
/// matched it, its source's slot, and (for a name judged flood) whether the server answered
/// it NXDOMAIN.
pub(super) type Cell = (Judged, Family, u64, u32, bool);

/// No source slot (not a query, or the source table was full).
pub(super) const NO_SLOT: u32 = u32::MAX;

/// What one source sent, by the second pass's judgment.
#[derive(Default, Clone, Copy)]
pub(super) struct HostTally {
    pub(super) queries: u64,
    pub(super) flood: u64,
    pub(super) exists: u64,
}

/// The second pass's result: packets per cell, the destinations of each flood, what each
/// source sent, and the names judged to exist with the candidates that matched them.
pub(super) struct Measured {
    pub(super) cells: FastMap<Cell, u64>,
    pub(super) destinations: Vec<FastMap<IpAddr, u64>>,
    pub(super) hosts: Vec<HostTally>,
    pub(super) existing: FastMap<ExistingKey, (Reason, u64)>,
    /// Names judged flood with the candidates that matched them: whether NXDOMAIN was their
    /// answer, and how often (bounded like `existing`).
    /// Names judged flood: the flood, the first two source slots that asked them, whether
    /// they came over IPv4 and IPv6, and how often (bounded).
    pub(super) flood_names: FastMap<Box<[u8]>, FloodName>,
    /// Per flood: its queries in each of the summary's time buckets
    /// ([`crate::triage::report::qps_buckets`] with [`TIMELINE_BUCKETS`]).
    pub(super) timeline: Vec<Vec<u64>>,
}

/// Time buckets of a flood's time line (those of the summary's sparkline).
pub(super) const TIMELINE_BUCKETS: usize = 60;

/// A name judged to exist, its family and the candidates that matched it.
pub(super) type ExistingKey = (Box<[u8]>, Family, u64);

/// Who asked a name judged flood.
#[derive(Clone, Copy)]
pub(super) struct FloodName {
    pub(super) flood: u8,
    pub(super) slots: [u32; 2],
    pub(super) families: [bool; 2],
    /// The server answered it NXDOMAIN.
    pub(super) nx: bool,
    /// The family of its first query (1 for IPv6), and the candidates that matched that
    /// query (for the top dropped names).
    pub(super) first_family: u8,
    pub(super) first_mask: u64,
    pub(super) queries: u32,
}

/// Most names judged flood kept with their sources.
pub(super) const FLOOD_NAMES_CAP: usize = 300_000;

/// Dropped names listed of each basis.
pub(super) const TOP_DROPPED_EACH: usize = 5;

/// Most names judged to exist kept with their candidates (for the top dropped names).
pub(super) const EXISTING_CAP: usize = 50_000;

pub(super) fn measure(
    sources: &[Source],
    stats: &Stats,
    floods: &[Flood],
    known: &Knowledge<'_>,
    candidates: &Candidates,
) -> Result<Measured, TriageError> {
    let mut measured = Measured {
        cells: FastMap::default(),
        destinations: vec![FastMap::default(); floods.len()],
        hosts: Vec::new(),
        existing: FastMap::default(),
        flood_names: FastMap::default(),
        timeline: Vec::new(),
    };
    let (first_second, bucket_seconds, buckets) =
        crate::triage::report::qps_buckets(stats, TIMELINE_BUCKETS);
    measured.timeline = vec![vec![0; buckets.len()]; floods.len()];
    let mut slots: FastMap<IpAddr, u32> = FastMap::default();
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
            // The packet as the deployed rule sees it (no FCS), for the rules and for the DNS
            // view alike.
            let Some((input, _)) = crate::pcap::link::deployed_input(packet) else {
                return;
            };
            let Some(ip) = ip_view(packet.linktype, input.frame) else {
                return;
            };
            let Some((_, dst_port)) = ip.udp else {
                return;
            };
            if dst_port != DNS_PORT {
                return;
            }
            let list = &by_family[usize::from(ip.family == Family::V6)].1;
            let mut mask = 0u64;
            for &index in list {
                if candidates.list[index].program.run_with(&input) != 0 {
                    mask |= 1 << index;
                }
            }
            let (judged, slot, nx) = match dns_view(ip.payload, &mut name) {
                Some(view) if !view.is_response() => {
                    let judged =
                        judge(floods, stats, known, &name, &Fingerprint::of(&view), ip.src);
                    let next = measured.hosts.len() as u32;
                    let slot = if slots.len() < stats::HOST_CAP {
                        *slots.entry(ip.src).or_insert(next)
                    } else {
                        slots.get(&ip.src).copied().unwrap_or(NO_SLOT)
                    };
                    if slot == next {
                        measured.hosts.push(HostTally::default());
                    }
                    let mut nx = false;
                    if let Some(tally) = measured.hosts.get_mut(slot as usize) {
                        tally.queries += 1;
                        match judged {
                            Judged::Flood(_) => tally.flood += 1,
                            Judged::Legit(Reason::Exists(_)) => tally.exists += 1,
                            Judged::Legit(_) => {}
                        }
                    }
                    match judged {
                        Judged::Flood(index) => {
                            let bucket = packet.timestamp.as_secs().saturating_sub(first_second)
                                / bucket_seconds;
                            if let Some(n) =
                                measured.timeline[usize::from(index)].get_mut(bucket as usize)
                            {
                                *n += 1;
                            }
                            let map = &mut measured.destinations[usize::from(index)];
                            if map.len() < 1024 || map.contains_key(&ip.dst) {
                                *map.entry(ip.dst).or_insert(0) += 1;
                            }
                            nx = stats.names.get(&name[..]).is_some_and(|s| s.nxdomain > 0);
                            let family = usize::from(ip.family == Family::V6);
                            if let Some(seen) = measured.flood_names.get_mut(&name[..]) {
                                if seen.slots[0] != slot && seen.slots[1] == NO_SLOT {
                                    seen.slots[1] = slot;
                                }
                                seen.families[family] = true;
                                seen.queries = seen.queries.saturating_add(1);
                            } else if measured.flood_names.len() < FLOOD_NAMES_CAP {
                                let mut families = [false; 2];
                                families[family] = true;
                                measured.flood_names.insert(
                                    name.clone().into_boxed_slice(),
                                    FloodName {
                                        flood: index,
                                        slots: [slot, NO_SLOT],
                                        families,
                                        nx,
                                        first_family: family as u8,
                                        first_mask: mask,
                                        queries: 1,
                                    },
                                );
                            }
                        }
                        Judged::Legit(reason @ Reason::Exists(_)) if mask != 0 => {
                            let key = (name.clone().into_boxed_slice(), ip.family, mask);
                            if measured.existing.len() < EXISTING_CAP
                                || measured.existing.contains_key(&key)
                            {
                                measured.existing.entry(key).or_insert((reason, 0)).1 += 1;
                            }
                        }
                        Judged::Legit(_) => {}
                    }
                    (judged, slot, nx)
                }
                _ => (Judged::Legit(Reason::NotQuery), NO_SLOT, false),
            };
            *measured
                .cells
                .entry((judged, ip.family, mask, slot, nx))
                .or_insert(0) += 1;
        })?;
    }
    Ok(measured)
}

/// What an ordered list of candidates does to one flood's family: flood packets, of which
/// dropped, judged legitimate packets dropped, and dropped packets not proven flood.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Effect {
    pub(super) flood_total: u64,
    pub(super) flood_dropped: u64,
    pub(super) legit_dropped: u64,
    pub(super) unproven_dropped: u64,
}

pub(super) fn effect(
    measured: &Measured,
    dedicated: &[bool],
    list: &[usize],
    candidates: &Candidates,
    family: Family,
    flood: u8,
) -> Effect {
    let mut out = Effect {
        flood_total: 0,
        flood_dropped: 0,
        legit_dropped: 0,
        unproven_dropped: 0,
    };
    for (&(judged, fam, mask, slot, _), &count) in &measured.cells {
        if fam != family {
            continue;
        }
        let decided = list.iter().find(|&&i| mask & (1 << i) != 0);
        // Names only legitimate sources asked, accepted on purpose, are no part of the flood
        // the plan must cover.
        let spared = decided.is_some_and(|&i| candidates.list[i].spares);
        if judged == Judged::Flood(flood) && !spared {
            out.flood_total += count;
        }
        let dropped = decided.is_some_and(|&i| candidates.list[i].action == Action::Drop);
        if dropped {
            let proven = matches!(judged, Judged::Flood(_))
                && dedicated.get(slot as usize).copied().unwrap_or(false);
            if !proven {
                out.unproven_dropped += count;
            }
            match judged {
                Judged::Flood(f) if f == flood => out.flood_dropped += count,
                Judged::Flood(_) => {}
                Judged::Legit(_) => out.legit_dropped += count,
            }
        }
    }
    out
}
