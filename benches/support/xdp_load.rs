//! The native matcher loaded as a deployment loads it: every map of `MapRole::ALL` created
//! with `MapRole::spec`, the lookup maps filled from `MapContents`, the address tries with
//! the protected prefixes, the program given every map's descriptor. Shared by
//! `benches/xdp.rs` and `examples/xdp_bench.rs` (included with `#[path]`).
#![allow(dead_code)]

use std::error::Error;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd};

use bpftools::ebpf::matcher::{
    self, suffix_value_bytes, Action, MapContents, MapRole, MatcherOptions, BPF_MAP_TYPE_HASH,
    BPF_MAP_TYPE_LPM_TRIE, BPF_MAP_TYPE_PERCPU_ARRAY, BPF_MAP_TYPE_PROG_ARRAY,
};
use bpftools::ebpf::sys::{lpm_key, Map, MapKind, MapSpec, Program, ProgramKind, Update};

/// A loaded matcher and its maps.
pub struct Loaded {
    /// The XDP program.
    pub program: Program,
    /// What the lookup maps hold.
    pub contents: MapContents,
    /// Every map, by role.
    pub maps: Vec<(MapRole, Map)>,
}

/// The kernel's map type for a matcher map's `BPF_MAP_TYPE_*` number.
fn map_kind(map_type: u32) -> MapKind {
    match map_type {
        BPF_MAP_TYPE_HASH => MapKind::Hash,
        BPF_MAP_TYPE_PROG_ARRAY => MapKind::ProgArray,
        BPF_MAP_TYPE_PERCPU_ARRAY => MapKind::PerCpuArray,
        BPF_MAP_TYPE_LPM_TRIE => MapKind::LpmTrie,
        other => MapKind::Other(other),
    }
}

/// Loads the matcher for `rules` (in order, the first match decides); `protected` are the
/// destination prefixes the address tries hold (`0.0.0.0/0` and `::/0` protect everything).
pub fn load_matcher(
    rules: &[(Action, String)],
    options: MatcherOptions,
    protected: &[(IpAddr, u32)],
) -> Result<Loaded, Box<dyn Error + Send + Sync>> {
    let contents = MapContents::new(rules, options)?;
    let capacity = u32::try_from(rules.len().max(protected.len()).max(16))?;
    let mut maps = Vec::new();
    for role in MapRole::ALL {
        let spec = role.spec(capacity);
        let map = Map::create(&MapSpec {
            name: role.name().to_string(),
            kind: map_kind(spec.map_type),
            key_size: spec.key_size,
            value_size: spec.value_size,
            max_entries: spec.max_entries,
            flags: spec.flags,
        })
        .map_err(|e| format!("map {}: {e}", role.name()))?;
        maps.push((role, map));
    }
    let map = |role: MapRole| {
        &maps
            .iter()
            .find(|(r, _)| *r == role)
            .expect("every role has its map")
            .1
    };
    for (key, rank) in &contents.names {
        map(MapRole::Names).update(&key.0, &rank.to_ne_bytes(), Update::NoExist)?;
    }
    for (key, ranks) in &contents.suffixes {
        map(MapRole::Suffixes).update(&key.0, &suffix_value_bytes(ranks), Update::NoExist)?;
    }
    for &(address, prefix) in protected {
        let (role, key) = match address {
            IpAddr::V4(v4) => (MapRole::Addr4, lpm_key(prefix, &v4.octets())),
            IpAddr::V6(v6) => (MapRole::Addr6, lpm_key(prefix, &v6.octets())),
        };
        map(role).update(&key, &[1], Update::Any)?;
    }
    let insns = matcher::program(options).with_map_fds(|role| map(role).as_fd().as_raw_fd());
    let program = Program::load(ProgramKind::Xdp, "xdp_matcher", &insns)?;
    Ok(Loaded {
        program,
        contents,
        maps,
    })
}

/// Drop rules for `patterns`, in order.
pub fn drop_rules(patterns: &[String]) -> Vec<(Action, String)> {
    patterns.iter().map(|p| (Action::Drop, p.clone())).collect()
}
