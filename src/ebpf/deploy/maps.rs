//! The contents of a deployment's maps for a rule list, and bringing the kernel's maps to
//! them: in full ([`sync`]) or one rule at a time ([`Index`]).

use std::collections::{BTreeMap, BTreeSet};

use crate::ebpf::deploy::{DeployError, Prefix, Rule, RuleBody};
use crate::ebpf::matcher::{
    self, rank, Key, KeyKind, MapContents, MapRole, MatcherOptions, RuleError, Skips,
    ADDR_VALUE_SIZE, SUFFIX_RANKS,
};
use crate::ebpf::sys::{lpm_key, Map, SysError, Update};

/// The map entries of one native rule at its order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Entries {
    pub names: Vec<(Key, u32)>,
    pub suffixes: Vec<(Key, [u32; SUFFIX_RANKS])>,
}

/// The entries of `rule` at `order`; `None` when the maps cannot express it (it runs as a
/// compiled program); an invalid pattern is an error.
pub(crate) fn native_entries(
    order: u32,
    rule: &Rule,
    options: MatcherOptions,
) -> Result<Option<Entries>, RuleError> {
    let RuleBody::Pattern(pattern) = &rule.body else {
        return Ok(None);
    };
    let single = match MapContents::new(&[(rule.action, pattern.as_str())], options) {
        Ok(contents) => contents,
        Err(RuleError::Unsupported { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let first = rank(0, rule.action).expect("order 0 has a rank");
    let own = rank(order as usize, rule.action).ok_or(RuleError::TooManyRules {
        count: order as usize + 1,
    })?;
    let rerank = |r: u32| if r == first { own } else { r };
    Ok(Some(Entries {
        names: single
            .names
            .into_iter()
            .map(|(k, r)| (k, rerank(r)))
            .collect(),
        suffixes: single
            .suffixes
            .into_iter()
            .map(|(k, ranks)| (k, ranks.map(rerank)))
            .collect(),
    }))
}

/// Which map a key is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Table {
    Names,
    Suffixes,
}

/// The native rules' entries, indexed by key: what each key's value is for the rules present.
#[derive(Debug)]
pub(crate) struct Index {
    by_key: BTreeMap<(Table, Key), BTreeSet<u32>>,
    entries: BTreeMap<u32, Entries>,
    /// How many keys of `by_key` each lookup could hit: prefixes by wire length, exact
    /// names, suffixes (for [`Index::skips`]).
    prefixes: Vec<usize>,
    exact: usize,
    suffixes: usize,
    first: usize,
}

impl Default for Index {
    fn default() -> Index {
        Index {
            by_key: BTreeMap::new(),
            entries: BTreeMap::new(),
            prefixes: vec![0; 256],
            exact: 0,
            suffixes: 0,
            first: 0,
        }
    }
}

/// A value in the name maps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Rank(u32),
    Ranks(Box<[u32; SUFFIX_RANKS]>),
}

impl Value {
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            Value::Rank(r) => r.to_ne_bytes().to_vec(),
            Value::Ranks(ranks) => matcher::suffix_value_bytes(ranks),
        }
    }
}

impl Index {
    /// Adds the rule at `order`; the keys it touches.
    pub fn insert(&mut self, order: u32, entries: Entries) -> Vec<(Table, Key)> {
        let keys = keys_of(&entries);
        for key in &keys {
            if !self.by_key.contains_key(key) {
                *self.kind_count(key) += 1;
            }
            self.by_key.entry(key.clone()).or_default().insert(order);
        }
        self.entries.insert(order, entries);
        keys
    }

    /// The count in [`Index::skips`]'s tallies that `key` belongs to.
    fn kind_count(&mut self, key: &(Table, Key)) -> &mut usize {
        match key.0 {
            Table::Suffixes => &mut self.suffixes,
            Table::Names if key.1.kind() == KeyKind::Prefix as u8 => {
                &mut self.prefixes[usize::from(key.1 .0[1])]
            }
            Table::Names if key.1.kind() == KeyKind::Exact as u8 => &mut self.exact,
            // The first rule's key: no lookup to skip.
            Table::Names => &mut self.first,
        }
    }

    /// The [`MapRole::Lengths`] value for the keys present: the lookups none can answer.
    pub fn skips(&self) -> Skips {
        Skips::new(
            |n| self.prefixes[usize::from(n)] > 0,
            self.exact > 0,
            self.suffixes > 0,
        )
    }

    /// Removes the rule at `order`; the keys it touched.
    pub fn remove(&mut self, order: u32) -> Vec<(Table, Key)> {
        let Some(entries) = self.entries.remove(&order) else {
            return Vec::new();
        };
        let keys = keys_of(&entries);
        for key in &keys {
            if let Some(set) = self.by_key.get_mut(key) {
                set.remove(&order);
                if set.is_empty() {
                    self.by_key.remove(key);
                    *self.kind_count(key) -= 1;
                }
            }
        }
        keys
    }

    /// The value of `key` for the rules present (`None`: no rule has it).
    pub fn value(&self, key: &(Table, Key)) -> Option<Value> {
        let orders = self.by_key.get(key)?;
        match key.0 {
            Table::Names => {
                let mut best = 0;
                for order in orders {
                    for (k, r) in &self.entries[order].names {
                        if *k == key.1 {
                            best = best.max(*r);
                        }
                    }
                }
                Some(Value::Rank(best))
            }
            Table::Suffixes => {
                let mut best = [0u32; SUFFIX_RANKS];
                for order in orders {
                    for (k, ranks) in &self.entries[order].suffixes {
                        if *k == key.1 {
                            for (b, r) in best.iter_mut().zip(ranks) {
                                *b = (*b).max(*r);
                            }
                        }
                    }
                }
                Some(Value::Ranks(Box::new(best)))
            }
        }
    }

    /// Every key with its value.
    pub fn all(&self) -> BTreeMap<(Table, Key), Value> {
        self.by_key
            .keys()
            .filter_map(|k| self.value(k).map(|v| (k.clone(), v)))
            .collect()
    }

    /// The number of keys in each table.
    pub fn counts(&self) -> (usize, usize) {
        let names = self
            .by_key
            .keys()
            .filter(|(t, _)| *t == Table::Names)
            .count();
        (names, self.by_key.len() - names)
    }
}

fn keys_of(entries: &Entries) -> Vec<(Table, Key)> {
    entries
        .names
        .iter()
        .map(|(k, _)| (Table::Names, k.clone()))
        .chain(
            entries
                .suffixes
                .iter()
                .map(|(k, _)| (Table::Suffixes, k.clone())),
        )
        .collect()
}

/// The deployment's maps by role.
pub(crate) type Maps = BTreeMap<MapRole, Map>;

fn table_map(maps: &Maps, table: Table) -> &Map {
    &maps[&match table {
        Table::Names => MapRole::Names,
        Table::Suffixes => MapRole::Suffixes,
    }]
}

/// Writes `key`'s value for the rules in `index` (or deletes it when no rule has it), and
/// the [`MapRole::Lengths`] value for `index` in the order that loses no rule: before a key
/// is written (its lookup stops being skipped first), after one is deleted (its lookup is
/// skipped once no key of its kind and length is left).
pub(crate) fn write_key(maps: &Maps, index: &Index, key: &(Table, Key)) -> Result<(), SysError> {
    let map = table_map(maps, key.0);
    match index.value(key) {
        Some(value) => {
            write_skips(maps, index)?;
            map.update(&key.1 .0, &value.bytes(), Update::Any)
        }
        None => {
            map.delete(&key.1 .0)?;
            write_skips(maps, index)
        }
    }
}

/// The key of the one [`MapRole::Lengths`] value.
const LENGTHS_KEY: [u8; 4] = 0u32.to_ne_bytes();

/// Writes the [`MapRole::Lengths`] value for `index` (nothing when the maps have none: a
/// generation made before it existed, whose program does not read it).
fn write_skips(maps: &Maps, index: &Index) -> Result<(), SysError> {
    match maps.get(&MapRole::Lengths) {
        Some(map) => map.update(&LENGTHS_KEY, &index.skips().0, Update::Any),
        None => Ok(()),
    }
}

/// The LPM keys of the protected prefixes (`/0` of both families when there are none).
pub(crate) fn address_keys(prefixes: &[Prefix]) -> (BTreeSet<Vec<u8>>, BTreeSet<Vec<u8>>) {
    let all;
    let prefixes = if prefixes.is_empty() {
        all = [Prefix::all(false), Prefix::all(true)];
        &all[..]
    } else {
        prefixes
    };
    let mut v4 = BTreeSet::new();
    let mut v6 = BTreeSet::new();
    for p in prefixes {
        let key = lpm_key(u32::from(p.len), &p.octets());
        if p.is_v6() {
            v6.insert(key);
        } else {
            v4.insert(key);
        }
    }
    (v4, v6)
}

/// What [`sync`] changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Synced {
    /// Entries written or deleted.
    pub repaired: usize,
}

fn sync_map(
    map: &Map,
    want: &BTreeMap<Vec<u8>, Vec<u8>>,
    dry_run: bool,
) -> Result<usize, SysError> {
    let mut changed = 0;
    for key in map.keys()? {
        if !want.contains_key(&key) {
            changed += 1;
            if !dry_run {
                map.delete(&key)?;
            }
        }
    }
    for (key, value) in want {
        if map.lookup(key)?.as_deref() != Some(value.as_slice()) {
            changed += 1;
            if !dry_run {
                map.update(key, value, Update::Any)?;
            }
        }
    }
    Ok(changed)
}

/// Brings the name maps and address tries to what `index` and `prefixes` say (with
/// `dry_run`, only counts the differences).
pub(crate) fn sync(
    maps: &Maps,
    index: &Index,
    prefixes: &[Prefix],
    dry_run: bool,
) -> Result<Synced, SysError> {
    let mut names = BTreeMap::new();
    let mut suffixes = BTreeMap::new();
    for ((table, key), value) in index.all() {
        match table {
            Table::Names => names.insert(key.0.to_vec(), value.bytes()),
            Table::Suffixes => suffixes.insert(key.0.to_vec(), value.bytes()),
        };
    }
    let (v4, v6) = address_keys(prefixes);
    let addresses = |keys: BTreeSet<Vec<u8>>| {
        keys.into_iter()
            .map(|k| (k, vec![1u8; ADDR_VALUE_SIZE as usize]))
            .collect::<BTreeMap<_, _>>()
    };
    let mut repaired = 0;
    // The skips are written as for one key: cleared before the keys they cover are
    // written, set after the keys are deleted.
    let skips = index.skips();
    let lengths = maps.get(&MapRole::Lengths);
    let stale = match lengths {
        Some(map) => map.lookup(&LENGTHS_KEY)?.as_deref() != Some(&skips.0[..]),
        None => false,
    };
    let write_lengths = |map: &Map, clear: bool| -> Result<(), SysError> {
        let cleared: Vec<u8> = match map.lookup(&LENGTHS_KEY)? {
            Some(had) if clear => had.iter().zip(skips.0).map(|(h, s)| h & s).collect(),
            _ => skips.0.to_vec(),
        };
        map.update(&LENGTHS_KEY, &cleared, Update::Any)
    };
    if let (Some(map), true, false) = (lengths, stale, dry_run) {
        write_lengths(map, true)?;
    }
    repaired += sync_map(&maps[&MapRole::Names], &names, dry_run)?;
    repaired += sync_map(&maps[&MapRole::Suffixes], &suffixes, dry_run)?;
    if let (Some(map), true) = (lengths, stale) {
        repaired += 1;
        if !dry_run {
            write_lengths(map, false)?;
        }
    }
    repaired += sync_map(&maps[&MapRole::Addr4], &addresses(v4), dry_run)?;
    repaired += sync_map(&maps[&MapRole::Addr6], &addresses(v6), dry_run)?;
    Ok(Synced { repaired })
}

/// The rules run as compiled programs, with their orders.
pub(crate) type Classic = Vec<(u32, Rule)>;

/// The native and classic rules of a list with orders, the native ones indexed; an invalid
/// pattern is refused naming its rule (number in the list, from 1).
pub(crate) fn index_rules(
    rules: &[(u32, Rule)],
    options: MatcherOptions,
) -> Result<(Index, Classic), DeployError> {
    let mut index = Index::default();
    let mut classic = Vec::new();
    for (position, (order, rule)) in rules.iter().enumerate() {
        let entries =
            native_entries(*order, rule, options).map_err(|source| DeployError::Rule {
                index: position + 1,
                rule: rule.to_string(),
                source,
            })?;
        match entries {
            Some(entries) => {
                index.insert(*order, entries);
            }
            None => classic.push((*order, rule.clone())),
        }
    }
    Ok((index, classic))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ebpf::matcher::Action;

    /// The deploy index's skips (what `sync` and `write_key` write) equal those of the map
    /// contents of the same rules, after every insert and every remove.
    #[test]
    fn the_index_skips_equal_the_map_contents_skips_as_rules_come_and_go() {
        let options = MatcherOptions { ignore_case: true };
        let patterns = [
            "a.**",
            "www.example.**",
            "x.y.z.**",
            "ok.www.example.**",
            "**",
            "www.example.net",
            "*.example.net",
            "*{2-5}.www.example.net",
            "b.**",
            "www.example.**",
        ];
        let rule = |p: &str| Rule {
            action: Action::Drop,
            body: RuleBody::Pattern(p.to_string()),
        };
        let mut index = Index::default();
        let mut present: Vec<(u32, Action, &str)> = Vec::new();
        let mut compared = 0;
        let mut check = |index: &Index, present: &[(u32, Action, &str)]| {
            let contents = MapContents::with_orders(present, options).expect("contents");
            assert_eq!(index.skips(), contents.skips(), "{present:?}");
            compared += 1;
        };
        check(&index, &present);
        for (order, p) in patterns.iter().enumerate() {
            let entries = native_entries(order as u32, &rule(p), options)
                .expect("valid")
                .expect("native");
            index.insert(order as u32, entries);
            present.push((order as u32, Action::Drop, p));
            check(&index, &present);
        }
        // Removed in another order: shared lengths (two `www.example.**`) stay until the last.
        for order in [9, 0, 4, 1, 7, 5, 2, 8, 6, 3] {
            index.remove(order);
            present.retain(|r| r.0 != order);
            check(&index, &present);
        }
        assert_eq!(compared, 1 + 2 * patterns.len());
        assert_eq!(index.skips(), MapContents::default().skips());
    }
}
