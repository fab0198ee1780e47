//! Deployments at XDP: the native matcher on an interface, its rules in maps, changed live,
//! converging from any state. What `xdp-bpf` runs.
//!
//! A deployment is one interface's matcher program and its maps. Its state lives in two
//! places, both gone at reboot, like the attachment itself:
//! - under bpffs (`/sys/fs/bpf/bpftools/xdp/net<NETNS>/<IF>/g<N>/`), the program and maps of
//!   each *generation* `N`, pinned;
//! - under `/run/bpftools/xdp/net<NETNS>/<IF>/`, the lock file and `g<N>.json`, the rule
//!   list each generation was made from ([`State`]).
//!
//! `NETNS` is the inode of the caller's network namespace: two namespaces can hold interfaces
//! of the same name. The generation attached to the interface is the current one; any other
//! is what a killed run left and is removed by the next run, under the lock.
//!
//! - [`Session::apply`]: makes the deployment what a [`Spec`] says. Unchanged -> nothing happens (the
//!   maps are checked and repaired). Otherwise a new generation is built and pinned, its
//!   state written, and only then does it replace the attached program in one step
//!   (`XDP_FLAGS_REPLACE`, checked against the old program): a run killed at any point leaves
//!   the old or the new deployment attached, never a mix and never none.
//! - [`Session::change`]: adds or removes rules and addresses as map updates on the attached
//!   generation, one key per step and in an order that never drops a packet that both the
//!   old and the new rule list pass (see [`Session::change`]); a change the maps cannot take
//!   (a classic rule, a full map) is made by a new generation as [`Session::apply`] does.
//! - [`Session::status`], [`Session::delete`], and the test of a capture against the
//!   reference ([`check`]).
//!
//! Every call takes the deployment's lock (`flock`) first: two operators serialize.

pub mod check;
pub mod iptables;
mod maps;
mod ops;
pub mod state;

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

use thiserror::Error;

use crate::ebpf::matcher::{Action, RuleError};
use crate::ebpf::sys::SysError;
use crate::insn::RawInsn;

pub use ops::{
    hook_word, mode_word, Applied, Change, Deleted, Hook, RuleStatus, Session, Status, Wanted,
    PROGRAM_NAME,
};
pub use state::State;

/// Where pins go by default.
pub const PIN_ROOT: &str = "/sys/fs/bpf/bpftools/xdp";
/// Where the lock and state files go by default.
pub const STATE_ROOT: &str = "/run/bpftools/xdp";

/// One rule of a deployment's ordered list: the first rule that matches a query decides; a
/// query no rule matches passes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// What a match does.
    pub action: Action,
    /// What matches.
    pub body: RuleBody,
}

/// What a rule matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleBody {
    /// A `dns` pattern (see [`crate::gen::dns`]): by map lookups when the maps express it,
    /// else as the `dns` generator's program.
    Pattern(String),
    /// A classic program a generator made (`bpfgen GEN ARGS` with the default offset, the
    /// network header), once per family: `None` for a family it does not match.
    Program {
        /// The generator and its arguments, as the user wrote them (for status and errors).
        text: String,
        /// The IPv4 program.
        v4: Option<Vec<RawInsn>>,
        /// The IPv6 program.
        v6: Option<Vec<RawInsn>>,
    },
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let action = action_word(self.action);
        match &self.body {
            RuleBody::Pattern(p) => write!(f, "{action} {p}"),
            RuleBody::Program { text, .. } => write!(f, "{action}-bpf {text}"),
        }
    }
}

/// `accept` or `drop`.
pub fn action_word(action: Action) -> &'static str {
    match action {
        Action::Accept => "accept",
        Action::Drop => "drop",
    }
}

/// A protected destination: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Prefix {
    /// The address, its bits past the prefix cleared.
    pub addr: IpAddr,
    /// The prefix length in bits.
    pub len: u8,
}

impl Prefix {
    /// The prefix that covers every address of the family.
    pub fn all(inet6: bool) -> Prefix {
        Prefix {
            addr: if inet6 {
                IpAddr::from([0u16; 8])
            } else {
                IpAddr::from([0u8; 4])
            },
            len: 0,
        }
    }

    /// The address bytes (4 or 16).
    pub fn octets(&self) -> Vec<u8> {
        match self.addr {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        }
    }

    /// Whether it is an IPv6 prefix.
    pub fn is_v6(&self) -> bool {
        self.addr.is_ipv6()
    }
}

impl std::str::FromStr for Prefix {
    type Err = AddressError;

    /// `ADDR` or `ADDR/LEN`, IPv4 or IPv6; the host bits are cleared (as ipset's hash:net
    /// does).
    fn from_str(text: &str) -> Result<Prefix, AddressError> {
        let bad = || AddressError {
            text: text.to_string(),
        };
        let (addr, len) = match text.split_once('/') {
            Some((addr, len)) => {
                if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) || len.len() > 3 {
                    return Err(bad());
                }
                (addr, Some(len.parse::<u8>().map_err(|_| bad())?))
            }
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv6() { 128 } else { 32 };
        let len = len.unwrap_or(max);
        if len > max {
            return Err(bad());
        }
        let mut bytes = match addr {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        };
        for (i, byte) in bytes.iter_mut().enumerate() {
            let keep = (u32::from(len)).saturating_sub(8 * i as u32).min(8);
            *byte &= if keep == 0 { 0 } else { 0xffu8 << (8 - keep) };
        }
        let addr = if addr.is_ipv6() {
            let a: [u8; 16] = bytes.try_into().map_err(|_| bad())?;
            IpAddr::from(a)
        } else {
            let a: [u8; 4] = bytes.try_into().map_err(|_| bad())?;
            IpAddr::from(a)
        };
        Ok(Prefix { addr, len })
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// An address that is not `ADDR` or `ADDR/LEN`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "'{}' is not an address or network (expected e.g. 192.0.2.53, 192.0.2.0/24 or 2001:db8::/64)",
    crate::asm::quote(.text)
)]
pub struct AddressError {
    /// The text given.
    pub text: String,
}

/// What a deployment should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// The deployment's name (shown by status; another name on the same interface is refused).
    pub name: String,
    /// The rules, in order.
    pub rules: Vec<Rule>,
    /// Protected destinations; empty protects every address.
    pub addresses: Vec<Prefix>,
    /// Compare letters exactly (by default names and patterns ignore case).
    pub match_case: bool,
}

/// Where a deployment lives: the interface and the two state roots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// The interface's name.
    pub dev: String,
    /// Root of the pins ([`PIN_ROOT`] unless overridden).
    pub pin_root: PathBuf,
    /// Root of the lock and state files ([`STATE_ROOT`] unless overridden).
    pub state_root: PathBuf,
}

impl Place {
    /// The interface `dev` under the default roots, or those of the environment variables
    /// `BPFTOOLS_XDP_PINS` and `BPFTOOLS_XDP_STATE` when set.
    pub fn new(dev: &str) -> Place {
        let root = |var: &str, default: &str| {
            std::env::var_os(var)
                .filter(|v| !v.is_empty())
                .map_or_else(|| PathBuf::from(default), PathBuf::from)
        };
        Place {
            dev: dev.to_string(),
            pin_root: root("BPFTOOLS_XDP_PINS", PIN_ROOT),
            state_root: root("BPFTOOLS_XDP_STATE", STATE_ROOT),
        }
    }
}

/// Why a deployment could not be made, changed, read or removed.
#[derive(Debug, Error)]
pub enum DeployError {
    /// A kernel call failed.
    #[error(transparent)]
    Sys(#[from] SysError),
    /// A rule cannot be matched.
    #[error("rule {index} ({rule}): {source}")]
    Rule {
        /// The rule's number in the list, from 1.
        index: usize,
        /// The rule as written.
        rule: String,
        /// Why.
        #[source]
        source: RuleError,
    },
    /// A classic rule's program could not be compiled.
    #[error("rule {index} ({rule}): {message}")]
    Classic {
        /// The rule's number in the list, from 1.
        index: usize,
        /// The rule as written.
        rule: String,
        /// Why.
        message: String,
    },
    /// More classic rules than tail calls reach.
    #[error(
        "{count} rules need compiled programs (patterns with '?' or '%XX', generator rules): \
         at most {max} fit a deployment"
    )]
    TooManyClassic {
        /// Programs needed.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A file of the state (lock, rule list) could not be read or written.
    #[error("{what} '{}': {source}", .path.display())]
    File {
        /// What the file is.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A state file holds what this version cannot read.
    #[error("state file '{}': {message}", .path.display())]
    State {
        /// Its path.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The interface carries an XDP program this tool did not attach.
    #[error(
        "interface {dev} carries an XDP program this tool did not attach (id {prog_id}, {mode}): \
         not touching it (detach it first, e.g. `ip link set dev {dev} xdp off`)"
    )]
    Foreign {
        /// The interface.
        dev: String,
        /// The program's id.
        prog_id: u32,
        /// Its mode.
        mode: &'static str,
    },
    /// Another deployment is on the interface.
    #[error(
        "interface {dev} carries deployment '{found}', not '{wanted}': delete it first \
         (xdp-bpf delete --dev {dev} --deployment {found})"
    )]
    OtherDeployment {
        /// The interface.
        dev: String,
        /// The deployment found.
        found: String,
        /// The one asked for.
        wanted: String,
    },
    /// No deployment on the interface (for a change or a test).
    #[error("no deployment on interface {dev} (make one with xdp-bpf apply --dev {dev} ...)")]
    NotDeployed {
        /// The interface.
        dev: String,
    },
    /// An iptables command failed.
    #[error("{command}: {message}")]
    Command {
        /// The command line.
        command: String,
        /// What it said (its standard error) or why it could not run.
        message: String,
    },
    /// A rule or address to remove is not in the deployment.
    #[error("{what} is not in the deployment on {dev}")]
    NotFound {
        /// The interface.
        dev: String,
        /// The rule or address, as written.
        what: String,
    },
}

/// The compiled programs of the classic rules (`(order, rule)` in list order; `positions`
/// gives each order's number in the list, for errors), by their slot in
/// [`MapRole::Programs`](crate::ebpf::matcher::MapRole::Programs): one program per rule and
/// VLAN tag count.
pub(crate) fn classic_programs(
    classic: &[(u32, Rule)],
    positions: &std::collections::BTreeMap<u32, usize>,
    maps: &maps::Maps,
    match_case: bool,
) -> Result<Vec<(u32, crate::ebpf::sys::Program)>, DeployError> {
    use crate::ebpf::classic::{rule_program, ClassicRule};
    use crate::ebpf::matcher::{program_slot, rank, MAX_CLASSIC_RULES, VLAN_DEPTHS};
    use crate::ebpf::sys::{Program, ProgramKind};
    use crate::gen::{DnsSpec, Generator, DEFAULT_EXT_HEADERS};
    use std::os::fd::{AsFd, AsRawFd};

    if classic.len() > MAX_CLASSIC_RULES as usize {
        return Err(DeployError::TooManyClassic {
            count: classic.len(),
            max: MAX_CLASSIC_RULES as usize,
        });
    }
    let mut out = Vec::new();
    for (index, (order, rule)) in classic.iter().enumerate() {
        let fail = |message: String| DeployError::Classic {
            index: positions.get(order).copied().unwrap_or(0),
            rule: rule.to_string(),
            message,
        };
        let classic_rule = match &rule.body {
            RuleBody::Pattern(pattern) => {
                let generator = Generator::Dns(DnsSpec {
                    patterns: vec![pattern.clone()],
                    ignore_case: !match_case,
                    ext_headers: DEFAULT_EXT_HEADERS,
                });
                ClassicRule::from_generator(&generator, false).map_err(|e| fail(e.to_string()))?
            }
            RuleBody::Program { text, v4, v6 } => ClassicRule {
                name: text.clone(),
                ipv4: v4.clone(),
                ipv6: v6.clone(),
            },
        };
        let rank = rank(*order as usize, rule.action)
            .ok_or_else(|| fail("no rank for this order".into()))?;
        for tags in 0..VLAN_DEPTHS {
            let program = rule_program(&classic_rule, rank, tags, index as u32)
                .map_err(|e| fail(e.to_string()))?;
            let insns = program.with_map_fds(|role| maps[&role].as_fd().as_raw_fd());
            let loaded = Program::load(ProgramKind::Xdp, "bpftools_rule", &insns)?;
            out.push((program_slot(tags, index as u32), loaded));
        }
    }
    Ok(out)
}
