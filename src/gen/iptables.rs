//! iptables deployment scripts: an ipset plus `iptables -m bpf` rules, converged atomically.
//!
//! Rules of this module:
//! - every program is checked once, by `fit`, against the kernel's xt_bpf rules (at most 64
//!   instructions) and `iptables-restore`'s parameter limit (1023 characters of bytecode text)
//!   before it is written: no rule the kernel or iptables would refuse is ever emitted;
//! - a `p0f` signature of version `*` is built for the script's family (its IPv4 program for
//!   iptables, its IPv6 one for ip6tables): a rule only ever sees packets of its family, on
//!   which that program and the `*` one agree, and it is shorter;
//! - a `dns` pattern list whose program does not fit is split into groups, one rule each; with
//!   `--negate` the groups go into a chain that RETURNs what any group matches and drops the
//!   rest (a union of negated DROP rules would drop everything);
//! - nothing that reaches the script can run as shell code: bytecode is digits, commas and
//!   spaces; set and chain names are generated from `[a-z0-9_]`; addresses are parsed as IP
//!   networks; comments are limited to a safe character set; patterns appear only inside `#`
//!   comment lines, with every non-printable character escaped, and as sanitized descriptions;
//! - ownership: a script tags everything it makes with its deployment id (a hash of the
//!   deployment name and family) and its version (a hash of everything that makes the rules:
//!   family, negation, generator and each argument, comment, chain); set and chain names end
//!   with the deployment id, rule comments carry `bpftools=DEPLOYMENT/VERSION/RULE/INTERFACE`.
//!   A script touches only objects tagged with its deployment id, so two deployments never
//!   share or remove each other's objects, and a new version of a deployment replaces the old;
//! - names fit the kernel's limits (ipset 31, chain 28 characters); a user chain name given
//!   with `--chain` is only the readable part of the chain's name, never used as it is;
//! - the script's logic is one template (`iptables/script.bash`, a complete script that
//!   shellcheck checks on its own); only its data block is generated.
//!
//! Layout: this file keeps the public types (what to deploy, the script, the errors) and
//! the limits; `checks` refuses unsafe or meaningless input, `rules` builds and fits the
//! programs, `naming` derives every name and id, [`render`] writes the script text. This file
//! must not build programs nor write script text itself.

mod checks;
mod naming;
mod render;
mod rules;

use thiserror::Error;

use crate::gen::{GenError, Generator};
use crate::vm::ValidationError;

pub use checks::{check_address, looks_like_address};
pub use naming::{default_file_name, deployment_id};
pub use render::render;

/// Why a script could not be made.
#[derive(Debug, Error)]
pub enum ScriptError {
    /// The generator failed.
    #[error(transparent)]
    Gen(#[from] GenError),
    /// The comment carries the form of the ownership tags.
    #[error("comment contains 'bpftools=', the form of the deployments' ownership tags: a rule carrying it could be taken for another deployment's")]
    CommentHasTag,
    /// The comment is longer than [`COMMENT_MAX`].
    #[error("comment is {length} characters long, at most {COMMENT_MAX} are accepted (the rules add their ownership tag to it, iptables keeps 255)")]
    CommentTooLong {
        /// Its length in bytes.
        length: usize,
    },
    /// The comment holds a character outside the safe set.
    #[error("comment contains '{}': allowed are letters, digits, spaces and - _ . : , / * @ = + # % [ ] ( )", .character.escape_default())]
    CommentCharacter {
        /// The first such character.
        character: char,
    },
    /// An address that is not an IP address or network.
    #[error("bad address '{}': expected an IP address or network{}", checks::comment_safe(.address), if *.octal { " (no leading zeros: ipset would read them as octal)" } else { "" })]
    BadAddress {
        /// The address as given.
        address: String,
        /// It has an octet with a leading zero (ipset reads it as octal).
        octal: bool,
    },
    /// An address of the other family.
    #[error("address '{address}' is {}, the rules are for {} ({})", family_name(.address_inet6), family_name(.inet6), if *.inet6 { "-6 makes an IPv6 script: generate a second script without -6 for IPv4 addresses" } else { "use -6 for IPv6 (one script per family)" })]
    WrongFamily {
        /// The address as given.
        address: String,
        /// The address is IPv6.
        address_inet6: bool,
        /// The script is for IPv6.
        inet6: bool,
    },
    /// A prefix length that is not a number from 0 to the family's bits.
    #[error("bad prefix length in '{}': expected 1..{max}", checks::comment_safe(.address))]
    BadPrefix {
        /// The network as given.
        address: String,
        /// The family's address bits.
        max: u8,
    },
    /// A /0 network, which ipset's hash:net cannot hold.
    #[error("'{address}': an ipset hash:net cannot hold a /0 network; for every address give {}", if *.inet6 { "::/1 and 8000::/1" } else { "0.0.0.0/1 and 128.0.0.0/1" })]
    ZeroPrefix {
        /// The network as given.
        address: String,
        /// The script is for IPv6.
        inet6: bool,
    },
    /// A chain name iptables would refuse.
    #[error("bad chain name '{}': expected 1 to 28 of A-Z a-z 0-9 _ -, not starting with '-'", checks::comment_safe(.name))]
    BadChainName {
        /// The name as given.
        name: String,
    },
    /// A chain name that is a built-in chain's or a target's.
    #[error("bad chain name '{name}': it is a built-in chain or target name")]
    ReservedChainName {
        /// The name as given.
        name: String,
    },
    /// `--negate` in chain mode.
    #[error("--negate has no meaning in chain mode: say what to accept and drop with --accept and --drop")]
    NegateInChainMode,
    /// A generator argument that reads as an address.
    #[error("'{shown}' after the generator reads as an address, not a DNS pattern: protected addresses are given before the generator, e.g. 'iptables-bpf -i {shown} dns -- PATTERN' (a DNS name written like an address: add a final dot, '{shown}.')", shown = checks::comment_safe(.address))]
    AddressAsPattern {
        /// The argument.
        address: String,
    },
    /// Chain mode without patterns.
    #[error("chain mode needs --accept or --drop patterns")]
    NoChainPatterns,
    /// Neither a generator nor chain mode.
    #[error("no generator: expected e.g. 'dns -- PATTERN'")]
    NoGenerator,
    /// A program xt_bpf refuses.
    #[error("the {generator} program cannot be loaded by xt_bpf: {source}")]
    NotLoadable {
        /// The generator's name.
        generator: &'static str,
        /// The kernel rule it breaks.
        #[source]
        source: ValidationError,
    },
    /// A program whose bytecode text `iptables-restore` cannot read.
    #[error("the {generator} program's bytecode is {length} characters long; iptables-restore reads at most {RESTORE_PARAM_MAX}")]
    BytecodeTooLong {
        /// The generator's name.
        generator: &'static str,
        /// The length of its bytecode text.
        length: usize,
    },
    /// Even one pattern does not fit in an xt_bpf rule.
    #[error("pattern '{pattern}' alone does not fit in one iptables bpf rule ({size}; a rule holds at most 64 and {RESTORE_PARAM_MAX} characters of bytecode; for IPv6, 'dns --ext-headers 1' or 0 makes the program shorter)")]
    TooLong {
        /// The pattern.
        pattern: String,
        /// Its size, or why it could not even be built.
        size: PatternSize,
    },
}

/// The size of a pattern's program that does not fit in one rule.
#[derive(Debug, Error)]
pub enum PatternSize {
    /// Built, with this many instructions.
    #[error("{0} instructions")]
    Instructions(usize),
    /// Not even built.
    #[error("its program cannot be built: {0}")]
    Unbuildable(#[source] Box<GenError>),
}

fn family_name(inet6: &bool) -> &'static str {
    if *inet6 {
        "IPv6"
    } else {
        "IPv4"
    }
}

/// What to deploy.
#[derive(Debug, Clone, Default)]
pub struct Spec {
    /// The generator and its arguments (`None` in chain mode, whose rules are `dns` rules).
    pub generator: Option<Generator>,
    /// IPv6 (ip6tables, family inet6).
    pub inet6: bool,
    /// Drop what does NOT match.
    pub negate: bool,
    /// Destination addresses (or networks) protected; more can be added to the set later.
    pub addresses: Vec<String>,
    /// Rule comment; default: derived from the generator and arguments.
    pub comment: Option<String>,
    /// The command that made the script, for its header.
    pub command: String,
    /// Chain mode: the chain's name, patterns to accept, patterns (or `any`) to drop.
    pub chain: Option<ChainSpec>,
    /// What makes two scripts the same deployment (e.g. `file:/root/guard.sh`, `chain:NAME`):
    /// a script replaces the objects of an earlier script of the same deployment. `None`:
    /// the rules themselves (only an identical script is the same deployment).
    pub deployment: Option<String>,
}

impl Spec {
    fn family(&self) -> &'static str {
        if self.inet6 {
            "ip6"
        } else {
            "ip4"
        }
    }

    fn generator_name(&self) -> &'static str {
        self.generator.as_ref().map_or("dns", Generator::name)
    }

    /// The generator's arguments as `bpfgen` takes them (after its name).
    fn generator_args(&self) -> Vec<String> {
        self.generator
            .as_ref()
            .map(Generator::args)
            .unwrap_or_default()
    }

    /// The patterns of a `dns` deployment (for readable names); empty for other generators.
    fn dns_patterns(&self) -> Vec<String> {
        match &self.generator {
            Some(Generator::Dns(dns)) => dns.patterns.clone(),
            _ => Vec::new(),
        }
    }
}

/// Chain mode (`--chain NAME --accept P... --drop P|any...`).
#[derive(Debug, Clone, Default)]
pub struct ChainSpec {
    /// Chain name.
    pub name: String,
    /// Patterns whose queries are accepted.
    pub accept: Vec<String>,
    /// Patterns whose queries are dropped; `any` drops everything else.
    pub drop: Vec<String>,
    /// Compare letters exactly (by default, like the original, chain patterns ignore case:
    /// resolvers using DNS 0x20 send `WwW.ExAmple.uK`).
    pub match_case: bool,
    /// Accepted queries jump to ACCEPT, skipping INPUT's later rules (the old behaviour); by
    /// default they RETURN to INPUT and go on through its later rules.
    pub accept_final: bool,
}

/// A rendered script.
#[derive(Debug, Clone)]
pub struct Script {
    /// Default file name (`bpf_dns_ip4_any_www_example_uk.sh`).
    pub file_name: String,
    /// The bash script.
    pub text: String,
}

/// The longest parameter `iptables-restore` reads (its buffer is 1024 bytes with the NUL).
pub const RESTORE_PARAM_MAX: usize = 1023;

/// The longest comment a user may give: the rules' comments add the ownership tag to it and
/// iptables keeps at most 255 characters.
pub const COMMENT_MAX: usize = 200;
