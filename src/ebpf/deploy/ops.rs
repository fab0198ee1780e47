//! The operations on a deployment, each under its lock: apply, change, status, delete.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use crate::ebpf::deploy::iptables;
use crate::ebpf::deploy::maps::{self, index_rules, write_key, Maps};
use crate::ebpf::deploy::state::{self, RuleState, State, FORMAT, HOOK_IPTABLES, HOOK_XDP};
use crate::ebpf::deploy::{classic_programs, DeployError, Place, Prefix, Rule, Spec};
use crate::ebpf::matcher::{self, MapRole, MatcherOptions, COUNTER_SIZE};
use crate::ebpf::sys::{
    self, attach_xdp, detach_xdp, ensure_bpffs, ifindex, query_xdp, raise_memlock, replace_xdp,
    Map, MapKind, MapSpec, Program, ProgramKind, XdpAttached, XdpMode, BPF_FS_PATH,
};

/// The kernel's name of the matcher program.
pub const PROGRAM_NAME: &str = "bpftools_xdp";

/// The maps of every generation: the XDP matcher's and the socket filter's copy of the
/// packet (so that both programs run on the same pins).
const DEPLOY_ROLES: [MapRole; 9] = {
    let mut roles = [MapRole::Packet; 9];
    let mut i = 0;
    while i < MapRole::ALL.len() {
        roles[i] = MapRole::ALL[i];
        i += 1;
    }
    roles
};

/// The smallest capacity of a generation's maps.
const MIN_CAPACITY: u32 = 4096;

/// A deployment opened under its lock.
#[derive(Debug)]
pub struct Session {
    place: Place,
    ifindex: u32,
    pins: PathBuf,
    states: PathBuf,
    _lock: Flock<File>,
}

/// Where a deployment's program runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// At XDP on the interface, in this mode.
    Xdp(XdpMode),
    /// As a socket filter in iptables' and ip6tables' INPUT chain (`-i IF -p udp --dport 53
    /// -m bpf --object-pinned PIN -j DROP`), for hosts that keep iptables.
    Iptables,
}

/// Where [`Session::apply`] is asked to put the program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted {
    /// At XDP: in this mode, or (`None`) native with generic as the fallback; a deployment
    /// already at XDP keeps its mode.
    Xdp(Option<XdpMode>),
    /// In iptables ([`Hook::Iptables`]).
    Iptables,
}

impl Wanted {
    fn accepts(self, hook: Hook) -> bool {
        match (self, hook) {
            (Wanted::Xdp(None), Hook::Xdp(_)) => true,
            (Wanted::Xdp(Some(m)), Hook::Xdp(have)) => m == have,
            (Wanted::Iptables, Hook::Iptables) => true,
            _ => false,
        }
    }
}

/// `native`, `generic`, `offload` or `iptables`.
pub fn hook_word(hook: Hook) -> &'static str {
    match hook {
        Hook::Xdp(mode) => mode_word(mode),
        Hook::Iptables => "iptables",
    }
}

/// When an XDP program this tool did not attach is an error ([`DeployError::Foreign`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Foreign {
    /// Unless ours is the one at XDP (an apply that attaches at XDP).
    Refuse,
    /// When no deployment of ours is found at all (the other commands: one of ours in
    /// iptables does not care what runs at XDP).
    RefuseWithoutOurs,
}

/// The attached generation.
struct Current {
    n: u64,
    state: Option<State>,
    prog: Program,
    hook: Hook,
    /// `None` when a pin is gone (removed by hand): only a new generation repairs that.
    maps: Option<Maps>,
    /// Whether the program's pin is there (else it was found by its id).
    pinned: bool,
}

/// What [`Session::apply`] or [`Session::change`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The generation attached now.
    pub generation: u64,
    /// Whether a new generation replaced (or became) the attached one.
    pub swapped: bool,
    /// Whether anything changed (a new generation, or map updates).
    pub changed: bool,
    /// Where the program runs.
    pub hook: Hook,
    /// When native mode was refused and the program runs generic: why.
    pub native_refused: Option<String>,
    /// Map entries found different from the rule list and repaired.
    pub repaired: usize,
    /// Generations left by killed runs and removed.
    pub leftovers: usize,
    /// The rules matched by map lookups and those run as compiled programs.
    pub native_rules: usize,
    /// Rules run as compiled programs.
    pub classic_rules: usize,
}

/// A change to a deployment's rules and addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Change {
    /// Rules to append (after the others: they rank below them).
    pub add: Vec<Rule>,
    /// Rules to remove (as they were given).
    pub remove: Vec<Rule>,
    /// Addresses to protect.
    pub add_addresses: Vec<Prefix>,
    /// Addresses to stop protecting.
    pub remove_addresses: Vec<Prefix>,
}

/// One rule as status reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RuleStatus {
    /// Its order (the counter index).
    pub order: u32,
    /// The rule as written.
    pub rule: String,
    /// Whether it runs as a compiled program (else by map lookups).
    pub compiled: bool,
    /// Packets it decided, over every CPU.
    pub packets: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// A deployment as found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Status {
    /// The interface.
    pub dev: String,
    /// The deployment's name (`None`: none found).
    pub deployment: Option<String>,
    /// The attached generation.
    pub generation: Option<u64>,
    /// `native`, `generic` or `iptables`, when ours is attached.
    pub mode: Option<String>,
    /// The attached program's id.
    pub prog_id: Option<u32>,
    /// Letters compared exactly.
    pub match_case: bool,
    /// The rules with their counters.
    pub rules: Vec<RuleStatus>,
    /// Protected prefixes (empty: every address).
    pub addresses: Vec<String>,
    /// What is not as it should be; empty when the deployment is whole.
    pub problems: Vec<String>,
}

/// What [`Session::delete`] removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deleted {
    /// Whether a program was detached.
    pub detached: bool,
    /// Generations removed.
    pub generations: usize,
}

fn file_error<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl Fn(std::io::Error) -> DeployError + 'a {
    move |source| DeployError::File {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// The inode of the caller's network namespace.
fn netns() -> Result<u64, DeployError> {
    let path = Path::new("/proc/self/ns/net");
    fs::metadata(path)
        .map(|m| m.ino())
        .map_err(file_error("network namespace", path))
}

fn sys_spec(spec: matcher::MapSpec) -> MapSpec {
    MapSpec {
        name: spec.role.name().to_string(),
        kind: MapKind::from_number(spec.map_type),
        key_size: spec.key_size,
        value_size: spec.value_size,
        max_entries: spec.max_entries,
        flags: spec.flags,
    }
}

fn generation_dirs(dir: &Path, suffix: &str) -> Result<Vec<u64>, DeployError> {
    let mut found = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(file_error("directory", dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(file_error("directory", dir))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(n) = name
            .strip_prefix('g')
            .and_then(|rest| rest.strip_suffix(suffix))
            .and_then(|n| n.parse::<u64>().ok())
        {
            found.push(n);
        }
    }
    found.sort_unstable();
    Ok(found)
}

impl Session {
    /// Opens the deployment on `place.dev` and takes its lock; `on_wait` is called once when
    /// another process holds it (then this waits).
    pub fn open(place: &Place, on_wait: impl FnOnce()) -> Result<Session, DeployError> {
        let ifindex = ifindex(&place.dev)?;
        // Pins need bpffs: mounted where it is usually found when absent (the default root is
        // under it), or on the root given; maps and programs may need a higher memory lock.
        let mount = if place.pin_root.starts_with(BPF_FS_PATH) {
            PathBuf::from(BPF_FS_PATH)
        } else {
            place.pin_root.clone()
        };
        ensure_bpffs(&mount)?;
        raise_memlock()?;
        let ns = format!("net{}", netns()?);
        let pins = place.pin_root.join(&ns).join(&place.dev);
        let states = place.state_root.join(&ns).join(&place.dev);
        fs::create_dir_all(&states).map_err(file_error("state directory", &states))?;
        let lock_path = states.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(file_error("lock file", &lock_path))?;
        let lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((file, nix::errno::Errno::EWOULDBLOCK)) => {
                on_wait();
                Flock::lock(file, FlockArg::LockExclusive)
                    .map_err(|(_, e)| file_error("lock file", &lock_path)(e.into()))?
            }
            Err((_, e)) => return Err(file_error("lock file", &lock_path)(e.into())),
        };
        Ok(Session {
            place: place.clone(),
            ifindex,
            pins,
            states,
            _lock: lock,
        })
    }

    /// The start of the iptables comment of this interface's deployments (`bpftools-xdp/
    /// net<NETNS>/<IF>/`), a generation's number after it.
    fn tag_prefix(&self) -> String {
        let ns = self
            .pins
            .parent()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        format!("bpftools-xdp/{ns}/{}/", self.place.dev)
    }

    fn gen_pins(&self, n: u64) -> PathBuf {
        self.pins.join(format!("g{n}"))
    }

    fn open_maps(&self, n: u64) -> Result<Maps, DeployError> {
        let dir = self.gen_pins(n);
        let mut maps = Maps::new();
        for role in DEPLOY_ROLES {
            let pin = dir.join(role.name());
            // A generation made before the lengths map existed runs a program that does not
            // read it: it goes on without.
            if role == MapRole::Lengths && !pin.exists() {
                continue;
            }
            maps.insert(role, Map::open_pinned(pin)?);
        }
        Ok(maps)
    }

    /// The attached program, as (mode, id).
    fn attached(&self) -> Result<Vec<(XdpMode, u32)>, DeployError> {
        Ok(match query_xdp(self.ifindex)? {
            XdpAttached::None => Vec::new(),
            XdpAttached::One { mode, prog_id } => vec![(mode, prog_id)],
            XdpAttached::Multi {
                native,
                generic,
                offload,
            } => [
                (XdpMode::Native, native),
                (XdpMode::Generic, generic),
                (XdpMode::Offload, offload),
            ]
            .into_iter()
            .filter_map(|(m, id)| id.map(|id| (m, id)))
            .collect(),
        })
    }

    /// Finds the attached generation; with `clean`, removes every other one.
    fn current(
        &self,
        clean: bool,
        foreign: Foreign,
    ) -> Result<(Option<Current>, usize), DeployError> {
        let attached = self.attached()?;
        let mut gens = generation_dirs(&self.pins, "")?;
        for n in generation_dirs(&self.states, ".json")? {
            if !gens.contains(&n) {
                gens.push(n);
            }
        }
        let mut current = None;
        let in_iptables = iptables::generations(&self.tag_prefix())?;
        for &n in &gens {
            let path = state::path(&self.states, n);
            // A rule list that cannot be read is as good as none: a new generation replaces it.
            let state = State::read(&path).ok();
            // The program by its pin, or, the pin gone, by the id its rule list recorded.
            let mut pinned = true;
            let prog = match Program::open_pinned(self.gen_pins(n).join("prog")) {
                Ok(prog) => prog,
                Err(_) => match state.as_ref().and_then(|s| s.prog_id) {
                    Some(id)
                        if attached.iter().any(|(_, a)| *a == id) || in_iptables.contains(&n) =>
                    {
                        pinned = false;
                        match Program::by_id(id) {
                            Ok(prog) => prog,
                            Err(_) => continue,
                        }
                    }
                    _ => continue,
                },
            };
            let id = prog.id()?;
            let hook = match attached.iter().find(|(_, a)| *a == id) {
                Some(&(mode, _)) => Hook::Xdp(mode),
                None if in_iptables.contains(&n) => Hook::Iptables,
                None => continue,
            };
            let maps = self.open_maps(n).ok();
            current = Some(Current {
                n,
                state,
                prog,
                hook,
                maps,
                pinned,
            });
            break;
        }
        let ours_at_xdp = matches!(
            current,
            Some(Current {
                hook: Hook::Xdp(_),
                ..
            })
        );
        let refuse = match foreign {
            Foreign::Refuse => !ours_at_xdp,
            Foreign::RefuseWithoutOurs => current.is_none(),
        };
        if refuse {
            if let Some(&(mode, prog_id)) = attached.first() {
                return Err(DeployError::Foreign {
                    dev: self.place.dev.clone(),
                    prog_id,
                    mode: mode_word(mode),
                });
            }
        }
        let mut leftovers = 0;
        if clean {
            // Temporary files of rule lists a killed run was writing (under the lock, no
            // other run is writing one).
            if let Ok(entries) = fs::read_dir(&self.states) {
                for entry in entries.flatten() {
                    if entry.file_name().to_string_lossy().starts_with(".tmp") {
                        let path = entry.path();
                        fs::remove_file(&path).map_err(file_error("temporary file", &path))?;
                    }
                }
            }
            for &n in &gens {
                if current.as_ref().is_some_and(|c| c.n == n) {
                    continue;
                }
                self.remove_generation(n)?;
                leftovers += 1;
            }
        }
        Ok((current, leftovers))
    }

    /// Takes `old`'s program out of where it runs, now that the new one (at `new`) runs.
    fn unhook(&self, old: &Current, new: Hook) -> Result<(), DeployError> {
        match old.hook {
            Hook::Xdp(mode) => {
                // Into XDP again, the old program was replaced or detached already.
                if !matches!(new, Hook::Xdp(_)) {
                    detach_xdp(self.ifindex, mode, Some(&old.prog))?;
                }
            }
            Hook::Iptables => iptables::remove(
                &self.place.dev,
                &self.gen_pins(old.n).join("prog"),
                &format!("{}g{}", self.tag_prefix(), old.n),
            )?,
        }
        Ok(())
    }

    fn remove_generation(&self, n: u64) -> Result<(), DeployError> {
        let dir = self.gen_pins(n);
        if let Ok(entries) = fs::read_dir(&dir) {
            for entry in entries {
                let path = entry.map_err(file_error("pin directory", &dir))?.path();
                fs::remove_file(&path).map_err(file_error("pin", &path))?;
            }
            fs::remove_dir(&dir).map_err(file_error("pin directory", &dir))?;
        }
        let path = state::path(&self.states, n);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(file_error("state file", &path)(e)),
        }
    }

    /// Builds, fills and pins generation `state.generation`, writes its state; returns its
    /// program and rule counts.
    fn build(&self, state: &State) -> Result<(Program, usize, usize), DeployError> {
        let path = state::path(&self.states, state.generation);
        let built = materialize(state, &path)?;
        let dir = self.gen_pins(state.generation);
        fs::create_dir_all(&dir).map_err(file_error("pin directory", &dir))?;
        for role in DEPLOY_ROLES {
            built.maps[&role].pin(dir.join(role.name()))?;
        }
        // The program last: a generation without it is a leftover to remove.
        built.prog.pin(dir.join("prog"))?;
        let mut state = state.clone();
        state.prog_id = Some(built.prog.id()?);
        state.write(&path)?;
        Ok((built.prog, built.native_rules, built.classic_rules))
    }

    fn new_state(&self, spec: &Spec, generation: u64) -> State {
        state_of(spec, &self.place.dev, generation)
    }

    fn check_name(&self, current: &Current, name: &str) -> Result<(), DeployError> {
        match &current.state {
            Some(state) if state.deployment != name => Err(DeployError::OtherDeployment {
                dev: self.place.dev.clone(),
                found: state.deployment.clone(),
                wanted: name.to_string(),
            }),
            _ => Ok(()),
        }
    }

    /// Makes the deployment what `spec` says (see the module docs). `mode`: the attach mode
    /// wanted (`None`: native, else generic with a note).
    pub fn apply(&self, spec: &Spec, wanted: Wanted) -> Result<Applied, DeployError> {
        let (current, leftovers) = self.current(
            true,
            match wanted {
                Wanted::Xdp(_) => Foreign::Refuse,
                Wanted::Iptables => Foreign::RefuseWithoutOurs,
            },
        )?;
        let options = MatcherOptions {
            ignore_case: !spec.match_case,
        };
        if let Some(current) = &current {
            self.check_name(current, &spec.name)?;
            if let (Some(state), Some(current_maps), true) =
                (&current.state, &current.maps, current.pinned)
            {
                let path = state::path(&self.states, current.n);
                let same = state.spec(&path)? == *spec && wanted.accepts(current.hook);
                if same {
                    let rules = state.rules(&path)?;
                    let (index, classic) = index_rules(&rules, options)?;
                    let synced = maps::sync(current_maps, &index, &spec.addresses, false)?;
                    return Ok(Applied {
                        generation: current.n,
                        swapped: false,
                        changed: synced.repaired > 0,
                        hook: current.hook,
                        native_refused: None,
                        repaired: synced.repaired,
                        leftovers,
                        native_rules: rules.len() - classic.len(),
                        classic_rules: classic.len(),
                    });
                }
            }
        }
        let n = current.as_ref().map_or(1, |c| c.n + 1);
        let mut state = self.new_state(spec, n);
        state.hook = match wanted {
            Wanted::Iptables => HOOK_IPTABLES.to_string(),
            Wanted::Xdp(_) => HOOK_XDP.to_string(),
        };
        self.swap(current, &state, wanted, leftovers)
    }

    /// Builds generation `state.generation` and puts it in place of `current`.
    fn swap(
        &self,
        current: Option<Current>,
        state: &State,
        wanted: Wanted,
        leftovers: usize,
    ) -> Result<Applied, DeployError> {
        let built = self.build(state);
        let (prog, native_rules, classic_rules) = match built {
            Ok(built) => built,
            Err(e) => {
                // Nothing of it is attached: remove what was made.
                let _ = self.remove_generation(state.generation);
                return Err(e);
            }
        };
        // The new program in place first, then the old one out: no moment without one.
        let mut native_refused = None;
        let hook = match (wanted, current.as_ref().map(|c| c.hook)) {
            (Wanted::Xdp(mode), Some(Hook::Xdp(old_mode)))
                if mode.is_none_or(|m| m == old_mode) =>
            {
                let old = current.as_ref().expect("a current generation");
                replace_xdp(self.ifindex, &prog, &old.prog, old_mode)?;
                Hook::Xdp(old_mode)
            }
            (Wanted::Xdp(mode), old_hook) => {
                // The first at XDP, or in another mode than the old program's: the kernel
                // does not run a native and a generic program at once, so the old one is
                // detached first (the one moment without a program; when the new one cannot
                // be attached, the old one is put back).
                let old = current
                    .as_ref()
                    .filter(|_| matches!(old_hook, Some(Hook::Xdp(_))));
                if let (Some(old), Some(Hook::Xdp(old_mode))) = (old, old_hook) {
                    detach_xdp(self.ifindex, old_mode, Some(&old.prog))?;
                    match attach_xdp(self.ifindex, &prog, mode) {
                        Ok(attached) => {
                            native_refused = attached.native_refused.map(|e| e.to_string());
                            Hook::Xdp(attached.mode)
                        }
                        Err(e) => {
                            let _ = attach_xdp(self.ifindex, &old.prog, Some(old_mode));
                            return Err(e.into());
                        }
                    }
                } else {
                    let attached = attach_xdp(self.ifindex, &prog, mode)?;
                    native_refused = attached.native_refused.map(|e| e.to_string());
                    Hook::Xdp(attached.mode)
                }
            }
            (Wanted::Iptables, _) => {
                iptables::insert(
                    &self.place.dev,
                    &self.gen_pins(state.generation).join("prog"),
                    &format!("{}g{}", self.tag_prefix(), state.generation),
                )?;
                Hook::Iptables
            }
        };
        if let Some(old) = &current {
            self.unhook(old, hook)?;
        }
        if let Some(old) = current {
            self.remove_generation(old.n)?;
        }
        Ok(Applied {
            generation: state.generation,
            swapped: true,
            changed: true,
            hook,
            native_refused,
            repaired: 0,
            leftovers,
            native_rules,
            classic_rules,
        })
    }

    /// Adds and removes rules and addresses on the attached generation by map updates, in
    /// this order, one rule (one map key) per step: drop rules removed, accept rules added,
    /// drop rules added, accept rules removed, then addresses added and removed. Between any
    /// two steps the maps hold a rule list under which a query that both the old and the new
    /// list pass also passes (removing drops and adding accepts only lets more through; the
    /// drops then added are in the new list, which still has every accept that outranks
    /// them). A change that needs a compiled program, or more room than the maps have, is
    /// made by a new generation as [`Session::apply`] makes one.
    pub fn change(&self, name: &str, change: &Change) -> Result<Applied, DeployError> {
        let (current, leftovers) = self.current(true, Foreign::RefuseWithoutOurs)?;
        let Some(current) = current else {
            return Err(DeployError::NotDeployed {
                dev: self.place.dev.clone(),
            });
        };
        self.check_name(&current, name)?;
        let path = state::path(&self.states, current.n);
        let Some(old) = current.state.clone() else {
            return Err(DeployError::State {
                path,
                message: "missing: apply the deployment again".into(),
            });
        };
        let Some(current_maps) = current.maps.as_ref() else {
            return Err(DeployError::State {
                path,
                message: "a map of the attached generation is gone: apply the deployment again"
                    .into(),
            });
        };
        let options = MatcherOptions {
            ignore_case: !old.match_case,
        };
        let old_rules = old.rules(&path)?;
        let mut new = old.clone();
        // Removals, by the rule as written.
        let mut removed = Vec::new();
        for rule in &change.remove {
            let found = new
                .rules
                .iter()
                .position(|r| r.rule().is_ok_and(|have| same_rule(&have, rule)));
            match found {
                Some(i) => removed.push(new.rules.remove(i)),
                None => {
                    return Err(DeployError::NotFound {
                        dev: self.place.dev.clone(),
                        what: format!("rule '{rule}'"),
                    })
                }
            }
        }
        let mut added = Vec::new();
        for rule in &change.add {
            let present = new
                .rules
                .iter()
                .any(|r| r.rule().is_ok_and(|have| same_rule(&have, rule)));
            if present {
                continue;
            }
            let state = RuleState::new(new.next_order, rule);
            new.next_order += 1;
            added.push(state.clone());
            new.rules.push(state);
        }
        let mut prefixes = old.prefixes(&path)?;
        for p in &change.remove_addresses {
            match prefixes.iter().position(|have| have == p) {
                Some(i) => {
                    prefixes.remove(i);
                }
                None => {
                    return Err(DeployError::NotFound {
                        dev: self.place.dev.clone(),
                        what: format!("address {p}"),
                    })
                }
            }
        }
        for p in &change.add_addresses {
            if !prefixes.contains(p) {
                prefixes.push(*p);
            }
        }
        new.addresses = prefixes.iter().map(|p| p.to_string()).collect();
        if new == old {
            // Nothing to change in the list; the maps are still brought to it (a change
            // killed halfway is repaired by running it again).
            let (index, classic) = index_rules(&old_rules, options)?;
            let synced = maps::sync(current_maps, &index, &prefixes, false)?;
            return Ok(Applied {
                generation: current.n,
                swapped: false,
                changed: synced.repaired > 0,
                hook: current.hook,
                native_refused: None,
                repaired: synced.repaired,
                leftovers,
                native_rules: old_rules.len() - classic.len(),
                classic_rules: classic.len(),
            });
        }
        let new_rules = new.rules(&path)?;
        // The old list's index: what the live steps below start from.
        let (mut live, old_classic) = index_rules(&old_rules, options)?;
        let (index, new_classic) = index_rules(&new_rules, options)?;
        let (names, suffixes) = index.counts();
        let fits = new.next_order <= new.capacity
            && names as u32 <= new.capacity
            && suffixes as u32 <= new.capacity
            && prefixes.len() as u32 + 2 <= new.capacity;
        if old_classic != new_classic || !fits {
            // A new generation, its orders from 0 again.
            let spec = new.spec(&path)?;
            let mut state = self.new_state(&spec, current.n + 1);
            state.hook = old.hook.clone();
            let wanted = match current.hook {
                Hook::Xdp(mode) => Wanted::Xdp(Some(mode)),
                Hook::Iptables => Wanted::Iptables,
            };
            return self.swap(Some(current), &state, wanted, leftovers);
        }
        // The rule list first, then the maps: a run killed in between leaves maps the next
        // run brings to the list.
        new.write(&path)?;
        let entries = |state: &RuleState| -> Result<maps::Entries, DeployError> {
            let rule = state.rule().map_err(|message| DeployError::State {
                path: path.clone(),
                message,
            })?;
            maps::native_entries(state.order, &rule, options)
                .map_err(|source| DeployError::Rule {
                    index: 0,
                    rule: rule.to_string(),
                    source,
                })?
                .ok_or_else(|| DeployError::State {
                    path: path.clone(),
                    message: format!("rule {} is not a map rule", state.order),
                })
        };
        let drop_of = |s: &RuleState| s.action == "drop";
        let steps: [(bool, bool); 4] = [(false, true), (true, false), (true, true), (false, false)];
        for (adding, drops) in steps {
            let list = if adding { &added } else { &removed };
            for state in list.iter().filter(|s| drop_of(s) == drops) {
                let keys = if adding {
                    live.insert(state.order, entries(state)?)
                } else {
                    live.remove(state.order)
                };
                for key in keys {
                    write_key(current_maps, &live, &key)?;
                }
            }
        }
        let (v4, v6) = maps::address_keys(&prefixes);
        let (old_v4, old_v6) = maps::address_keys(&old.prefixes(&path)?);
        for (map, want, had) in [
            (&current_maps[&MapRole::Addr4], &v4, &old_v4),
            (&current_maps[&MapRole::Addr6], &v6, &old_v6),
        ] {
            for key in want.difference(had) {
                map.update(key, &[1], sys::Update::Any)?;
            }
            for key in had.difference(want) {
                map.delete(key)?;
            }
        }
        // Whatever a killed run left: the maps as the list says.
        let synced = maps::sync(current_maps, &index, &prefixes, false)?;
        Ok(Applied {
            generation: current.n,
            swapped: false,
            changed: true,
            hook: current.hook,
            native_refused: None,
            repaired: synced.repaired,
            leftovers,
            native_rules: new_rules.len() - new_classic.len(),
            classic_rules: new_classic.len(),
        })
    }

    /// The deployment as found, with its counters; `expected`, when given, is compared with
    /// it (a difference is a problem).
    pub fn status(&self, expected: Option<&Spec>) -> Result<Status, DeployError> {
        let mut status = Status {
            dev: self.place.dev.clone(),
            deployment: None,
            generation: None,
            mode: None,
            prog_id: None,
            match_case: false,
            rules: Vec::new(),
            addresses: Vec::new(),
            problems: Vec::new(),
        };
        let current = match self.current(false, Foreign::RefuseWithoutOurs) {
            Ok((current, _)) => current,
            Err(e @ DeployError::Foreign { .. }) => {
                status.problems.push(e.to_string());
                return Ok(status);
            }
            Err(e) => return Err(e),
        };
        let Some(current) = current else {
            status
                .problems
                .push("no deployment is attached to the interface".into());
            return Ok(status);
        };
        status.generation = Some(current.n);
        status.mode = Some(hook_word(current.hook).to_string());
        if current.hook == Hook::Iptables {
            let tag = format!("{}g{}", self.tag_prefix(), current.n);
            for missing in iptables::missing(&tag)? {
                status.problems.push(format!(
                    "the {missing} rule of generation {} is missing",
                    current.n
                ));
            }
        }
        status.prog_id = Some(current.prog.id()?);
        let path = state::path(&self.states, current.n);
        let Some(state) = &current.state else {
            status
                .problems
                .push(format!("the rule list '{}' is missing", path.display()));
            return Ok(status);
        };
        status.deployment = Some(state.deployment.clone());
        status.match_case = state.match_case;
        status.addresses = state.addresses.clone();
        let rules = state.rules(&path)?;
        let options = MatcherOptions {
            ignore_case: !state.match_case,
        };
        let (index, classic) = index_rules(&rules, options)?;
        if !current.pinned {
            status.problems.push(format!(
                "the program's pin of generation {} is gone (it still runs): apply the \
                 deployment again",
                current.n
            ));
        }
        let Some(current_maps) = current.maps.as_ref() else {
            status.problems.push(format!(
                "a map pin of generation {} is gone: apply the deployment again",
                current.n
            ));
            return Ok(status);
        };
        let counters = &current_maps[&MapRole::Counters];
        for (order, rule) in &rules {
            let (packets, bytes) = counter(counters, *order)?;
            status.rules.push(RuleStatus {
                order: *order,
                rule: rule.to_string(),
                compiled: classic.iter().any(|(o, _)| o == order),
                packets,
                bytes,
            });
        }
        let prefixes = state.prefixes(&path)?;
        let differ = maps::sync(current_maps, &index, &prefixes, true)?.repaired;
        if differ > 0 {
            status.problems.push(format!(
                "{differ} map entries differ from the rule list (a change was interrupted: \
                 run apply or add again to repair)"
            ));
        }
        if let Some(expected) = expected {
            let have = state.spec(&path)?;
            if have.name != expected.name {
                status.problems.push(format!(
                    "deployment '{}' is attached, not '{}'",
                    have.name, expected.name
                ));
            }
            if have.rules != expected.rules {
                status
                    .problems
                    .push("the rules differ from those given".into());
            }
            let mut a = have.addresses.clone();
            let mut b = expected.addresses.clone();
            a.sort();
            b.sort();
            if a != b {
                status
                    .problems
                    .push("the protected addresses differ from those given".into());
            }
            if have.match_case != expected.match_case {
                status
                    .problems
                    .push("the case setting differs from the one given".into());
            }
        }
        Ok(status)
    }

    /// Detaches the deployment and removes every generation. Nothing attached and nothing
    /// pinned is not an error (`detached` false, no generation).
    pub fn delete(&self, name: Option<&str>) -> Result<Deleted, DeployError> {
        let (current, _) = self.current(false, Foreign::RefuseWithoutOurs)?;
        let mut detached = false;
        if let Some(current) = &current {
            if let Some(name) = name {
                self.check_name(current, name)?;
            }
            if let Hook::Xdp(mode) = current.hook {
                detach_xdp(self.ifindex, mode, Some(&current.prog))?;
            }
            detached = true;
        }
        // Every iptables rule of this interface's deployments, whatever its generation.
        detached |= iptables::remove_all(&self.tag_prefix())? > 0;
        let mut gens = generation_dirs(&self.pins, "")?;
        for n in generation_dirs(&self.states, ".json")? {
            if !gens.contains(&n) {
                gens.push(n);
            }
        }
        for &n in &gens {
            self.remove_generation(n)?;
        }
        // Empty now (and the namespace's, when this was its last interface); what holds
        // anything else stays.
        let _ = fs::remove_dir(&self.pins);
        if let Some(ns) = self.pins.parent() {
            let _ = fs::remove_dir(ns);
        }
        Ok(Deleted {
            detached,
            generations: gens.len(),
        })
    }

    /// The attached generation's program, for test runs.
    pub fn program(&self) -> Result<(Program, State), DeployError> {
        let (current, _) = self.current(false, Foreign::RefuseWithoutOurs)?;
        let current = current.ok_or_else(|| DeployError::NotDeployed {
            dev: self.place.dev.clone(),
        })?;
        let path = state::path(&self.states, current.n);
        let state = current.state.ok_or(DeployError::State {
            path,
            message: "missing".into(),
        })?;
        Ok((current.prog, state))
    }
}

/// Whether `have` is the rule `given` (a generator rule by its text).
fn same_rule(have: &Rule, given: &Rule) -> bool {
    use crate::ebpf::deploy::RuleBody;
    have.action == given.action
        && match (&have.body, &given.body) {
            (RuleBody::Pattern(a), RuleBody::Pattern(b)) => a == b,
            (RuleBody::Program { text: a, .. }, RuleBody::Program { text: b, .. }) => a == b,
            _ => false,
        }
}

/// A rule's counters summed over the CPUs.
fn counter(map: &Map, order: u32) -> Result<(u64, u64), DeployError> {
    let Some(value) = map.lookup(&order.to_ne_bytes())? else {
        return Ok((0, 0));
    };
    let slot = (COUNTER_SIZE as usize).next_multiple_of(8);
    let word = |b: &[u8]| u64::from_ne_bytes(b.try_into().expect("8 bytes"));
    let mut packets = 0u64;
    let mut bytes = 0u64;
    for cpu in value.chunks_exact(slot) {
        packets = packets.wrapping_add(word(&cpu[0..8]));
        bytes = bytes.wrapping_add(word(&cpu[8..16]));
    }
    Ok((packets, bytes))
}

/// `native`, `generic` or `offload`.
pub fn mode_word(mode: XdpMode) -> &'static str {
    match mode {
        XdpMode::Native => "native",
        XdpMode::Generic => "generic",
        XdpMode::Offload => "offload",
    }
}

/// A generation loaded and filled, not pinned nor attached.
pub(crate) struct Built {
    /// The matcher program.
    pub prog: Program,
    /// Its maps.
    pub maps: Maps,
    /// Rules matched by map lookups.
    pub native_rules: usize,
    /// Rules run as compiled programs.
    pub classic_rules: usize,
}

/// Creates and fills the maps of `state` and loads its programs (`path`: its state file, for
/// errors).
pub(crate) fn materialize(state: &State, path: &Path) -> Result<Built, DeployError> {
    let rules = state.rules(path)?;
    let prefixes = state.prefixes(path)?;
    let options = MatcherOptions {
        ignore_case: !state.match_case,
    };
    let (index, classic) = index_rules(&rules, options)?;
    let mut maps = Maps::new();
    for role in DEPLOY_ROLES {
        maps.insert(role, Map::create(&sys_spec(role.spec(state.capacity)))?);
    }
    maps::sync(&maps, &index, &prefixes, false)?;
    let positions: BTreeMap<u32, usize> = rules
        .iter()
        .enumerate()
        .map(|(i, (order, _))| (*order, i + 1))
        .collect();
    let programs = classic_programs(&classic, &positions, &maps, state.match_case)?;
    for (slot, program) in &programs {
        maps[&MapRole::Programs].set_program(*slot, program)?;
    }
    let prog = if state.hook == HOOK_IPTABLES {
        if let Some((order, rule)) = classic.first() {
            return Err(DeployError::Classic {
                index: positions.get(order).copied().unwrap_or(0),
                rule: rule.to_string(),
                message: "rules run as compiled programs need XDP: deploy them at XDP, \
                          or with iptables-bpf"
                    .into(),
            });
        }
        let insns =
            matcher::socket_program(options).with_map_fds(|role| maps[&role].as_fd().as_raw_fd());
        Program::load(ProgramKind::SocketFilter, PROGRAM_NAME, &insns)?
    } else {
        let insns = matcher::program(options).with_map_fds(|role| maps[&role].as_fd().as_raw_fd());
        Program::load(ProgramKind::Xdp, PROGRAM_NAME, &insns)?
    };
    Ok(Built {
        prog,
        maps,
        native_rules: rules.len() - classic.len(),
        classic_rules: classic.len(),
    })
}

/// The state a spec makes as generation `generation` on `dev`.
pub(crate) fn state_of(spec: &Spec, dev: &str, generation: u64) -> State {
    let n = spec.rules.len() as u32;
    let capacity = (2 * (n + spec.addresses.len() as u32))
        .max(MIN_CAPACITY)
        .next_power_of_two();
    State {
        format: FORMAT,
        deployment: spec.name.clone(),
        dev: dev.to_string(),
        generation,
        match_case: spec.match_case,
        addresses: spec.addresses.iter().map(|p| p.to_string()).collect(),
        rules: spec
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| RuleState::new(i as u32, r))
            .collect(),
        capacity,
        next_order: n,
        hook: HOOK_XDP.to_string(),
        prog_id: None,
    }
}
