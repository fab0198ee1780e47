//! The rule list a generation was made from, as a JSON file beside the lock
//! (`g<N>.json`), written whole or not at all (a temporary file renamed over it).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::asm::format::format_bytecode;
use crate::asm::parse_bytecode;
use crate::ebpf::deploy::{action_word, DeployError, Prefix, Rule, RuleBody, Spec};
use crate::ebpf::matcher::Action;
use crate::insn::RawInsn;

/// The format number this version writes and reads.
pub const FORMAT: u32 = 1;

/// One generation's description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// [`FORMAT`].
    pub format: u32,
    /// The deployment's name.
    pub deployment: String,
    /// The interface.
    pub dev: String,
    /// The generation's number.
    pub generation: u64,
    /// Letters compared exactly.
    pub match_case: bool,
    /// Protected prefixes (`ADDR/LEN`); empty protects every address.
    pub addresses: Vec<String>,
    /// The rules, in order.
    pub rules: Vec<RuleState>,
    /// Entries of the name maps, address tries and rule counters.
    pub capacity: u32,
    /// The order the next added rule gets (orders are never reused within a generation).
    pub next_order: u32,
    /// Where the program runs: [`HOOK_XDP`] or [`HOOK_IPTABLES`].
    #[serde(default = "default_hook")]
    pub hook: String,
    /// The program's system-wide id (found by it when its pin is gone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prog_id: Option<u32>,
}

/// [`State::hook`] of a program attached at XDP.
pub const HOOK_XDP: &str = "xdp";
/// [`State::hook`] of a socket-filter program in iptables' INPUT chain.
pub const HOOK_IPTABLES: &str = "iptables";

fn default_hook() -> String {
    HOOK_XDP.to_string()
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleState {
    /// Its order: the rank and the counter index come from it.
    pub order: u32,
    /// `accept` or `drop`.
    pub action: String,
    /// A `dns` pattern.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// A generator and its arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator: Option<String>,
    /// The generator's IPv4 program (xt_bpf bytecode text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program4: Option<String>,
    /// The generator's IPv6 program.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program6: Option<String>,
}

impl RuleState {
    /// The state of `rule` at `order`.
    pub fn new(order: u32, rule: &Rule) -> RuleState {
        let program = |p: &Option<Vec<RawInsn>>| p.as_deref().map(format_bytecode);
        let (pattern, generator, program4, program6) = match &rule.body {
            RuleBody::Pattern(p) => (Some(p.clone()), None, None, None),
            RuleBody::Program { text, v4, v6 } => {
                (None, Some(text.clone()), program(v4), program(v6))
            }
        };
        RuleState {
            order,
            action: action_word(rule.action).to_string(),
            pattern,
            generator,
            program4,
            program6,
        }
    }

    /// The rule back.
    pub fn rule(&self) -> Result<Rule, String> {
        let action = match self.action.as_str() {
            "accept" => Action::Accept,
            "drop" => Action::Drop,
            other => return Err(format!("rule {}: unknown action '{other}'", self.order)),
        };
        let program = |text: &Option<String>| {
            text.as_deref()
                .map(parse_bytecode)
                .transpose()
                .map_err(|e| format!("rule {}: {e}", self.order))
        };
        let body = match (&self.pattern, &self.generator) {
            (Some(p), None) => RuleBody::Pattern(p.clone()),
            (None, Some(text)) => RuleBody::Program {
                text: text.clone(),
                v4: program(&self.program4)?,
                v6: program(&self.program6)?,
            },
            _ => {
                return Err(format!(
                    "rule {}: expected a pattern or a generator",
                    self.order
                ))
            }
        };
        Ok(Rule { action, body })
    }
}

impl State {
    /// The rules with their orders.
    pub fn rules(&self, path: &Path) -> Result<Vec<(u32, Rule)>, DeployError> {
        self.rules
            .iter()
            .map(|r| r.rule().map(|rule| (r.order, rule)))
            .collect::<Result<_, _>>()
            .map_err(|message| DeployError::State {
                path: path.to_path_buf(),
                message,
            })
    }

    /// The protected prefixes.
    pub fn prefixes(&self, path: &Path) -> Result<Vec<Prefix>, DeployError> {
        self.addresses
            .iter()
            .map(|a| a.parse::<Prefix>())
            .collect::<Result<_, _>>()
            .map_err(|e| DeployError::State {
                path: path.to_path_buf(),
                message: e.to_string(),
            })
    }

    /// The spec this state describes.
    pub fn spec(&self, path: &Path) -> Result<Spec, DeployError> {
        Ok(Spec {
            name: self.deployment.clone(),
            rules: self.rules(path)?.into_iter().map(|(_, r)| r).collect(),
            addresses: self.prefixes(path)?,
            match_case: self.match_case,
        })
    }

    /// Reads a state file.
    pub fn read(path: &Path) -> Result<State, DeployError> {
        let text = fs::read_to_string(path).map_err(|source| DeployError::File {
            what: "state file",
            path: path.to_path_buf(),
            source,
        })?;
        let state: State = serde_json::from_str(&text).map_err(|e| DeployError::State {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        if state.format != FORMAT {
            return Err(DeployError::State {
                path: path.to_path_buf(),
                message: format!(
                    "format {} (this version reads {FORMAT}): written by another version",
                    state.format
                ),
            });
        }
        Ok(state)
    }

    /// Writes the state to `path` whole: a temporary file in the same directory, synced, then
    /// renamed over it.
    pub fn write(&self, path: &Path) -> Result<(), DeployError> {
        let fail = |source| DeployError::File {
            what: "state file",
            path: path.to_path_buf(),
            source,
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut temp = tempfile::NamedTempFile::new_in(dir).map_err(fail)?;
        let text = serde_json::to_string_pretty(self).map_err(|e| fail(e.into()))?;
        temp.write_all(text.as_bytes()).map_err(fail)?;
        temp.write_all(b"\n").map_err(fail)?;
        temp.as_file().sync_all().map_err(fail)?;
        temp.persist(path).map_err(|e| fail(e.error))?;
        Ok(())
    }
}

/// The state file of generation `n` in `dir`.
pub fn path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("g{n}.json"))
}
