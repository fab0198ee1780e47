//! Program builder and generators (dns, dns_validate, suffix, tcpdump, p0f).
//!
//! A generator and its arguments are a typed [`Generator`] value; [`build`] turns one into a
//! program for the common [`GenOptions`]. This is the one entry point, used by `bpfgen`,
//! `iptables-bpf` and `triage`. The library knows nothing of command lines: the tools parse
//! their arguments (src/cli) into these types, and [`Generator::args`] gives back the
//! arguments `bpfgen` takes for the same program.
//!
//! Every generator returns 65535 for "match" (socket filters keep that many bytes; xt_bpf only
//! needs non-zero) and 0 otherwise; `--negate` swaps them.

pub mod builder;
pub mod dns;
pub mod iptables;
pub mod p0f;
pub mod tcpdump;

use thiserror::Error;

pub use builder::{Builder, Generated};
pub use p0f::P0fSpec;

use crate::asm::labels::LabelError;
use crate::dns::{field, flags};
use crate::insn::{AluOp, Insn, Operand, Size, BPF_MAXINSNS};

/// Options common to every generator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GenOptions {
    /// IPv6 instead of IPv4.
    pub inet6: bool,
    /// Match what the program would not match.
    pub negate: bool,
    /// Bytes before the IP header (0 for xt_bpf, 14 for Ethernet pcaps, ...).
    pub offset: u32,
}

/// How many IPv6 extension headers the `dns` and `dns_validate` programs skip by default.
pub const DEFAULT_EXT_HEADERS: u8 = dns::IPV6_EXTENSION_HEADERS as u8;

/// A bit of [`DnsSpec::ext_headers`]: a `dns` query behind more IPv6 extension headers than
/// the walk skips is not matched (the behaviour before 0.2). Without it such a query is
/// matched (verdict 65535 whatever `negate` says), so extension headers cannot carry a flood
/// past the rule.
pub const EXT_HEADERS_UNWALKED_PASS: u8 = 0x80;

/// The `dns` generator's arguments: DNS queries whose first question name matches a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsSpec {
    /// Name patterns (at least one; see [`dns`] for the language).
    pub patterns: Vec<String>,
    /// Letters match in either case.
    pub ignore_case: bool,
    /// IPv6 only: how many extension headers before UDP are skipped (0 to 3), with
    /// [`EXT_HEADERS_UNWALKED_PASS`] set when a query behind more is not matched.
    pub ext_headers: u8,
}

/// The `dns_validate` generator's arguments: malformed DNS requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsValidateSpec {
    /// Also refuse the RD and RA flags (authoritative-only servers).
    pub strict: bool,
    /// IPv6 only: how many extension headers before UDP are skipped (0 to 3).
    pub ext_headers: u8,
}

/// The `suffix` generator's arguments: packets that end with these bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuffixSpec {
    /// The bytes (at least one).
    pub bytes: Vec<u8>,
}

/// The `tcpdump` generator's arguments: a filter expression compiled by the system's tcpdump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpdumpSpec {
    /// The expression.
    pub expr: String,
}

/// A generator with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Generator {
    /// `dns`: queries by name pattern.
    Dns(DnsSpec),
    /// `dns_validate`: malformed requests.
    DnsValidate(DnsValidateSpec),
    /// `suffix`: packets ending with bytes.
    Suffix(SuffixSpec),
    /// `tcpdump`: a tcpdump expression.
    Tcpdump(TcpdumpSpec),
    /// `p0f`: TCP packets that fit a p0f v3 signature.
    P0f(P0fSpec),
}

/// The generators' names, as the tools take them.
pub const GENERATOR_NAMES: [&str; 5] = ["dns", "dns_validate", "suffix", "tcpdump", "p0f"];

impl Generator {
    /// The generator's name as the tools take it (`dns`, `dns_validate`, `suffix`, `tcpdump`,
    /// `p0f`).
    pub fn name(&self) -> &'static str {
        match self {
            Generator::Dns(_) => "dns",
            Generator::DnsValidate(_) => "dns_validate",
            Generator::Suffix(_) => "suffix",
            Generator::Tcpdump(_) => "tcpdump",
            Generator::P0f(_) => "p0f",
        }
    }

    /// What the generator's arguments make likely to go wrong although they are valid, one
    /// sentence each (the tools print them on stderr unless asked to be quiet). Today: `dns`
    /// patterns with upper-case letters without `-i` (names are case-insensitive, and resolvers
    /// randomize the case of the names they send, "0x20", so such a pattern misses queries).
    pub fn warnings(&self) -> Vec<String> {
        match self {
            Generator::Dns(spec) if !spec.ignore_case => spec
                .patterns
                .iter()
                .filter(|p| dns::has_upper_case(p))
                .map(|p| {
                    format!(
                        "pattern '{p}' has upper-case letters and matches them exactly: DNS names \
                         are case-insensitive and resolvers randomize their case (0x20); add -i \
                         to match any case"
                    )
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The transport protocol the generator's programs are written for, as iptables names it
    /// (`-p udp` / `-p tcp`): `dns` and `dns_validate` read UDP DNS queries, `p0f` TCP headers;
    /// `None` when the program says nothing of it (`suffix`, `tcpdump`).
    pub fn transport(&self) -> Option<&'static str> {
        match self {
            Generator::Dns(_) | Generator::DnsValidate(_) => Some("udp"),
            Generator::P0f(_) => Some("tcp"),
            Generator::Suffix(_) | Generator::Tcpdump(_) => None,
        }
    }

    /// The arguments that follow the generator's name on `bpfgen`'s command line for this
    /// generator (`["--", "-i", "*.example.net"]`); empty when there are none. A value that
    /// starts with `-` is put after a second `--`, so it is never read as an option.
    pub fn args(&self) -> Vec<String> {
        let mut options: Vec<String> = Vec::new();
        let values: Vec<String> = match self {
            Generator::Dns(spec) => {
                if spec.ignore_case {
                    options.push("-i".into());
                }
                let walked = spec.ext_headers & !EXT_HEADERS_UNWALKED_PASS;
                if walked != DEFAULT_EXT_HEADERS {
                    options.push("--ext-headers".into());
                    options.push(walked.to_string());
                }
                if spec.ext_headers & EXT_HEADERS_UNWALKED_PASS != 0 {
                    options.push("--unwalked-pass".into());
                }
                spec.patterns.clone()
            }
            Generator::DnsValidate(spec) => {
                if spec.strict {
                    options.push("--strict".into());
                }
                if spec.ext_headers != DEFAULT_EXT_HEADERS {
                    options.push("--ext-headers".into());
                    options.push(spec.ext_headers.to_string());
                }
                Vec::new()
            }
            Generator::Suffix(spec) => vec![hex::encode(&spec.bytes)],
            Generator::Tcpdump(spec) => vec![spec.expr.clone()],
            Generator::P0f(spec) => vec![spec.to_string()],
        };
        if options.is_empty() && values.is_empty() {
            return Vec::new();
        }
        let mut args = vec!["--".to_string()];
        args.extend(options);
        if values.iter().any(|v| v.starts_with('-')) {
            args.push("--".into());
        }
        args.extend(values);
        args
    }
}

/// Why a program could not be generated.
#[derive(Debug, Error)]
pub enum GenError {
    /// A bad DNS pattern.
    #[error(transparent)]
    Pattern(#[from] dns::PatternError),
    /// A generator's arguments are not acceptable.
    #[error("{generator}: {message}")]
    Invalid {
        /// The generator's name.
        generator: &'static str,
        /// What is wrong and what was expected.
        message: String,
    },
    /// The program does not fit (jump range or length).
    #[error("{0}")]
    Program(#[from] LabelError<String>),
    /// tcpdump failed.
    #[error(transparent)]
    Tcpdump(#[from] tcpdump::TcpdumpError),
}

/// Builds the program of `generator` for `opts`.
pub fn build(generator: &Generator, opts: &GenOptions) -> Result<Generated, GenError> {
    let mut b = Builder::new();
    match generator {
        Generator::Dns(spec) => {
            if spec.patterns.is_empty() {
                return Err(GenError::Invalid {
                    generator: "dns",
                    message: "no pattern given: expected at least one name pattern".into(),
                });
            }
            let walked = spec.ext_headers & !EXT_HEADERS_UNWALKED_PASS;
            check_ext_headers("dns", walked)?;
            let patterns = spec
                .patterns
                .iter()
                .map(|p| dns::parse_pattern(p, spec.ignore_case))
                .collect::<Result<Vec<_>, _>>()?;
            let unwalked_match = spec.ext_headers & EXT_HEADERS_UNWALKED_PASS == 0;
            dns::build(&patterns, opts, usize::from(walked), unwalked_match, &mut b);
        }
        Generator::DnsValidate(spec) => {
            check_ext_headers("dns_validate", spec.ext_headers)?;
            build_dns_validate(spec.strict, opts, usize::from(spec.ext_headers), &mut b);
        }
        Generator::Suffix(spec) => {
            if spec.bytes.is_empty() {
                return Err(GenError::Invalid {
                    generator: "suffix",
                    message: "no bytes given: expected hex digits".into(),
                });
            }
            build_suffix(&spec.bytes, opts, &mut b);
        }
        Generator::Tcpdump(spec) => {
            let linktype = tcpdump::linktype_for(opts.offset, opts.inet6)?;
            let mut insns = tcpdump::compile(std::slice::from_ref(&spec.expr), linktype)?;
            if opts.negate {
                insns = tcpdump::negate(&insns)?;
            }
            let assembly = crate::asm::disassemble(&insns);
            return Ok(Generated { insns, assembly });
        }
        Generator::P0f(spec) => {
            p0f::check_family(spec, opts).map_err(|e| GenError::Invalid {
                generator: "p0f",
                message: e.to_string(),
            })?;
            p0f::build(spec, opts, &mut b);
        }
    }
    Ok(b.finish(BPF_MAXINSNS)?)
}

fn check_ext_headers(generator: &'static str, ext_headers: u8) -> Result<(), GenError> {
    if ext_headers > 3 {
        return Err(GenError::Invalid {
            generator,
            message: format!("--ext-headers {ext_headers}: expected 0 to 3"),
        });
    }
    Ok(())
}

fn verdicts(opts: &GenOptions) -> (u32, u32) {
    if opts.negate {
        (0, 65535)
    } else {
        (65535, 0)
    }
}

/// Where the UDP header holds the datagram's length (header included).
const UDP_LENGTH_FIELD: u32 = 4;

fn build_dns_validate(strict: bool, opts: &GenOptions, ext_headers: usize, b: &mut Builder) {
    let (malformed, fine) = verdicts(opts);
    let bad = b.new_label("malformed");
    let fail = b.new_label("fragment");
    b.context("dns_validate");
    // UDP fields are read at [x + udp + field], DNS fields at [x + udp + UDP_LEN + field].
    let udp = dns::emit_udp_offset(b, opts, ext_headers, 0, &fail, None);
    let load = |b: &mut Builder, size, offset: u32| {
        b.insn(Insn::LoadInd {
            size,
            offset: udp + offset,
        })
    };
    let dns_field = |field: usize| dns::UDP_LEN + field as u32;
    let unless = |b: &mut Builder, cond, k, jump_if_true: bool| {
        use crate::asm::labels::Target;
        let label = Target::Label(bad.clone());
        if jump_if_true {
            b.jump(cond, Operand::K(k), label, Target::Next);
        } else {
            b.jump(cond, Operand::K(k), Target::Next, label);
        }
    };
    use crate::insn::JumpCond::{Eq, Ge, Gt};
    // The shortest question is the root name (1 byte), type and class.
    let shortest = dns_field(field::HEADER_LEN) + 1 + field::question::LEN as u32;
    b.comment(format!(
        "UDP length: {} of UDP header + {} of DNS header + at least {} of question",
        dns::UDP_LEN,
        field::HEADER_LEN,
        1 + field::question::LEN
    ));
    load(b, Size::Half, UDP_LENGTH_FIELD);
    unless(b, Ge, shortest, false);
    let allowed = flags::CD | flags::AD | flags::Z | if strict { 0 } else { flags::RA | flags::RD };
    // (The original documented this set but its mask, 0xfc8f, let TC through and refused RA.)
    b.comment(if strict {
        "flags: only Z, AD and CD may be set (QR, opcode, AA, TC, RD, RA, rcode must be 0)"
    } else {
        "flags: only RD, RA, Z, AD and CD may be set (QR, opcode, AA, TC, rcode must be 0)"
    });
    load(b, Size::Half, dns_field(field::FLAGS));
    b.insn(Insn::Alu {
        op: AluOp::And,
        operand: Operand::K(u32::from(!allowed)),
    });
    unless(b, Eq, 0, false);
    b.comment("qdcount == 1");
    load(b, Size::Half, dns_field(field::QDCOUNT));
    unless(b, Eq, 1, false);
    b.comment("ancount == 0 and nscount == 0");
    load(b, Size::Word, dns_field(field::ANCOUNT));
    unless(b, Eq, 0, false);
    b.comment("arcount <= 1");
    load(b, Size::Half, dns_field(field::ARCOUNT));
    unless(b, Gt, 1, true);
    b.label(&fail);
    b.insn(Insn::RetK(fine));
    b.label(&bad);
    b.insn(Insn::RetK(malformed));
}

fn build_suffix(bytes: &[u8], opts: &GenOptions, b: &mut Builder) {
    let (yes, no) = verdicts(opts);
    let nomatch = b.new_label("nomatch");
    b.context("suffix");
    b.comment(format!("x = packet length - {}", bytes.len()));
    b.insn(Insn::LoadLen);
    b.insn(Insn::Alu {
        op: AluOp::Sub,
        operand: Operand::K(bytes.len() as u32),
    });
    b.insn(Insn::Tax);
    b.comment(format!("match {}", hex::encode(bytes)));
    let masked: Vec<dns::MaskedByte> = bytes
        .iter()
        .map(|&value| dns::MaskedByte { value, mask: 0 })
        .collect();
    dns::compare_bytes(b, &masked, 0, &nomatch);
    b.insn(Insn::RetK(yes));
    b.label(&nomatch);
    b.insn(Insn::RetK(no));
}
