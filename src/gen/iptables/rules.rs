//! The rules of an iptables deployment: which programs, in which rules, with which targets.
//!
//! Keeps the one check that a program can be one rule ([`fit`]: xt_bpf's limits and
//! `iptables-restore`'s parameter length), the splitting of `dns` patterns into groups that
//! fit, chain mode's one rule per pattern, and the family a `p0f *` signature is built for.
//! Must not return a rule whose program has not passed [`fit`], and must not write script
//! text or names.

use crate::asm::{format_program, Format};
use crate::gen::{build, DnsSpec, GenError, GenOptions, Generated, Generator};
use crate::vm::{validate, Profile, ValidationError};

use super::{ChainSpec, PatternSize, ScriptError, Spec, RESTORE_PARAM_MAX};

/// One rule of the script: optional program and a target.
pub(super) struct Rule {
    /// The program of `-m bpf`; `None` for a rule that matches every packet it sees.
    pub program: Option<Generated>,
    /// The iptables target (`DROP`, `RETURN`, `ACCEPT`).
    pub target: String,
    /// What the rule matches, for the script's comments.
    pub what: String,
}

impl Rule {
    fn new(program: Option<Generated>, target: &str, what: String) -> Rule {
        Rule {
            program,
            target: target.into(),
            what,
        }
    }
}

/// The program's bytecode text as the rule carries it.
pub(super) fn bytecode_text(generated: &Generated) -> String {
    format_program(&generated.insns, Format::Bytecode)
        .trim_end()
        .to_string()
}

/// Why a program cannot be one rule.
enum Unfit {
    /// xt_bpf refuses it (too long, or not a valid program).
    XtBpf(ValidationError),
    /// Its bytecode text is longer than `iptables-restore` reads.
    Text(usize),
}

/// The one check that a program can be loaded as one rule: xt_bpf's rules (at most 64
/// instructions) and a bytecode text `iptables-restore` reads.
fn fit(generated: &Generated) -> Result<(), Unfit> {
    validate(&generated.insns, Profile::XtBpf).map_err(Unfit::XtBpf)?;
    let length = bytecode_text(generated).len();
    if length > RESTORE_PARAM_MAX {
        return Err(Unfit::Text(length));
    }
    Ok(())
}

/// A `dns` program for `spec`, or `None` when it cannot be one rule (too long, or a jump that
/// a single program cannot encode).
fn dns_if_fits(spec: &DnsSpec, opts: &GenOptions) -> Result<Option<Generated>, ScriptError> {
    match build(&Generator::Dns(spec.clone()), opts) {
        Ok(program) if fit(&program).is_ok() => Ok(Some(program)),
        Ok(_) | Err(GenError::Program(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Splits the `dns` generator's patterns into groups whose programs fit in a rule.
fn dns_groups(
    spec: &DnsSpec,
    opts: &GenOptions,
) -> Result<Vec<(Vec<String>, Generated)>, ScriptError> {
    let spec_for = |group: &[String]| DnsSpec {
        patterns: group.to_vec(),
        ..spec.clone()
    };
    let mut groups: Vec<(Vec<String>, Generated)> = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut current_program: Option<Generated> = None;
    for pattern in &spec.patterns {
        let mut candidate = current.clone();
        candidate.push(pattern.clone());
        if let Some(program) = dns_if_fits(&spec_for(&candidate), opts)? {
            current = candidate;
            current_program = Some(program);
            continue;
        }
        if let Some(done) = current_program.take() {
            groups.push((std::mem::take(&mut current), done));
        }
        let alone = spec_for(std::slice::from_ref(pattern));
        let mut fitted = dns_if_fits(&alone, opts)?;
        if fitted.is_none() && opts.inet6 {
            // Over IPv6, a pattern too long for one rule walks fewer extension headers: a
            // query behind more than it walks is matched all the same (unless the spec says
            // unwalked headers pass), so nothing gets through that the full walk would stop.
            let flag = spec.ext_headers & crate::gen::EXT_HEADERS_UNWALKED_PASS;
            let walked = spec.ext_headers & !crate::gen::EXT_HEADERS_UNWALKED_PASS;
            for fewer in (0..walked).rev() {
                let shorter = DnsSpec {
                    ext_headers: fewer | flag,
                    ..alone.clone()
                };
                fitted = dns_if_fits(&shorter, opts)?;
                if fitted.is_some() {
                    break;
                }
            }
        }
        let Some(program) = fitted else {
            let size = match build(&Generator::Dns(alone), opts) {
                Ok(program) => PatternSize::Instructions(program.insns.len()),
                Err(e) => PatternSize::Unbuildable(Box::new(e)),
            };
            return Err(ScriptError::TooLong {
                pattern: pattern.clone(),
                size,
            });
        };
        current = vec![pattern.clone()];
        current_program = Some(program);
    }
    if let Some(done) = current_program {
        groups.push((current, done));
    }
    Ok(groups)
}

/// The program of a generator that must fit in one rule.
fn single(generator: &Generator, opts: &GenOptions) -> Result<Generated, ScriptError> {
    let generated = build(generator, opts)?;
    let generator = generator.name();
    match fit(&generated) {
        Ok(()) => Ok(generated),
        Err(Unfit::XtBpf(source)) => Err(ScriptError::NotLoadable { generator, source }),
        Err(Unfit::Text(length)) => Err(ScriptError::BytecodeTooLong { generator, length }),
    }
}

/// Builds the rules and says whether they need a chain of their own.
pub(super) fn rules(spec: &Spec) -> Result<(Vec<Rule>, bool), ScriptError> {
    let base = GenOptions {
        inet6: spec.inet6,
        negate: false,
        offset: 0,
    };
    if let Some(chain) = &spec.chain {
        return Ok((chain_rules(chain, spec.inet6, &base)?, true));
    }
    let Some(generator) = &spec.generator else {
        return Err(ScriptError::NoGenerator);
    };
    if let Generator::Dns(dns) = generator {
        return dns_rules(dns, spec.negate, generator, &base);
    }
    let program = single(
        &family_generator(generator, spec.inet6),
        &GenOptions {
            negate: spec.negate,
            ..base
        },
    )?;
    let rule = Rule::new(Some(program), "DROP", generator.args().join(" "));
    Ok((vec![rule], false))
}

/// Chain mode: a rule per pattern, accepted ones first, `any` a rule without a program.
fn chain_rules(
    chain: &ChainSpec,
    inet6: bool,
    base: &GenOptions,
) -> Result<Vec<Rule>, ScriptError> {
    let mut rules = Vec::new();
    // Accepted names RETURN: they go on through INPUT's later rules (a host's own rule
    // dropping a client still applies to them).
    let accept = if chain.accept_final {
        "ACCEPT"
    } else {
        "RETURN"
    };
    for (patterns, target) in [(&chain.accept, accept), (&chain.drop, "DROP")] {
        for pattern in patterns {
            if pattern == "any" {
                rules.push(Rule::new(None, target, "any".into()));
                continue;
            }
            let program = chain_program(pattern, chain.match_case, inet6, base)?;
            rules.push(Rule::new(Some(program), target, pattern.clone()));
        }
    }
    if rules.is_empty() {
        return Err(ScriptError::NoChainPatterns);
    }
    Ok(rules)
}

/// The program of one chain-mode pattern. An IPv6 program too long for one rule walks fewer
/// extension headers: a query behind more of them than it walks is matched all the same
/// (accepted by an accept rule, dropped by a drop rule), so the rule stays safe.
fn chain_program(
    pattern: &str,
    match_case: bool,
    inet6: bool,
    base: &GenOptions,
) -> Result<Generated, ScriptError> {
    let build_with = |ext_headers: u8| {
        single(
            &Generator::Dns(DnsSpec {
                patterns: vec![pattern.to_string()],
                ignore_case: !match_case,
                ext_headers,
            }),
            base,
        )
    };
    let mut program = build_with(crate::gen::DEFAULT_EXT_HEADERS);
    if inet6 {
        for fewer in (0..crate::gen::DEFAULT_EXT_HEADERS).rev() {
            if program.is_ok() {
                break;
            }
            if let Ok(shorter) = build_with(fewer) {
                program = Ok(shorter);
            }
        }
    }
    program
}

/// The rules of the `dns` generator: one rule when all patterns fit in one program, else a
/// rule per group (with `negate`, groups that RETURN and a last rule that drops the rest).
fn dns_rules(
    dns: &DnsSpec,
    negate: bool,
    generator: &Generator,
    base: &GenOptions,
) -> Result<(Vec<Rule>, bool), ScriptError> {
    let patterns = &dns.patterns;
    if patterns.is_empty() {
        // Let the generator say what is missing.
        build(generator, base)?;
    }
    let all = dns_if_fits(dns, &GenOptions { negate, ..*base })?;
    if let Some(all) = all {
        return Ok((
            vec![Rule::new(Some(all), "DROP", patterns.join(" "))],
            false,
        ));
    }
    let groups = dns_groups(dns, base)?;
    if negate {
        // Drop what matches no group: RETURN on any group, then DROP.
        let mut rules: Vec<Rule> = groups
            .into_iter()
            .map(|(group, program)| Rule::new(Some(program), "RETURN", group.join(" ")))
            .collect();
        rules.push(Rule::new(None, "DROP", "not matched by any group".into()));
        return Ok((rules, true));
    }
    let rules = groups
        .into_iter()
        .map(|(group, program)| Rule::new(Some(program), "DROP", group.join(" ")))
        .collect();
    Ok((rules, false))
}

/// The generator whose program a rule of this family holds: iptables hands xt_bpf only IPv4
/// packets and ip6tables only IPv6 ones, so a p0f signature of version `*` is built as that
/// family's signature ([`P0fSpec::for_family`](crate::gen::P0fSpec::for_family)), which gives
/// the same verdicts on every packet the rule can see, in fewer instructions (a `*` program
/// checks both families and often needs more than xt_bpf's 64).
fn family_generator(generator: &Generator, inet6: bool) -> Generator {
    match generator {
        Generator::P0f(p0f) => Generator::P0f(p0f.for_family(inet6)),
        other => other.clone(),
    }
}
