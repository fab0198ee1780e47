//! What triage prints: the text rendering of the [`Report`] (its JSON is the report as it is),
//! and the ready commands (deployment and check lines).
//!
//! This module formats for people and for the shell; it must not compute a figure the report
//! does not hold.

use std::fmt::Write;

use serde_json::Value;

use crate::triage::model::{KindReport, Report, RuleRow, Summary, TopSuffix};
use crate::triage::packet::Family;
use crate::triage::rules::Action;
use crate::triage::stats::Stats;
use crate::triage::{Analysis, RuleReport};

/// Entries shown in each "top" list.
pub const TOP: usize = 10;

/// Quotes a word for a POSIX shell when it needs it.
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,+@%".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

fn quoted(words: &[String]) -> String {
    words
        .iter()
        .map(|w| shell_quote(w))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Queries per second over time: (first second, seconds per bucket, queries per second in each
/// bucket, rounded), at most `buckets` buckets.
pub fn qps_buckets(stats: &Stats, buckets: usize) -> (u64, u64, Vec<u64>) {
    let (Some((&first, _)), Some((&last, _))) = (
        stats.per_second.first_key_value(),
        stats.per_second.last_key_value(),
    ) else {
        return (0, 1, Vec::new());
    };
    let span = last - first + 1;
    let width = span.div_ceil(buckets.max(1) as u64).max(1);
    let mut out = vec![0u64; span.div_ceil(width) as usize];
    for (&second, &count) in &stats.per_second {
        out[((second - first) / width) as usize] += count;
    }
    // The last bucket may be shorter than the others.
    let last_width = span - width * (out.len() as u64 - 1);
    let n = out.len();
    for (index, value) in out.iter_mut().enumerate() {
        let w = if index + 1 == n { last_width } else { width };
        *value = value.div_ceil(w);
    }
    (first, width, out)
}

fn sparkline(values: &[u64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let max = values.iter().copied().max().unwrap_or(0).max(1);
    values
        .iter()
        .map(|&v| BARS[((v * 7).div_ceil(max)).min(7) as usize])
        .collect()
}

/// The commands that check a rule on the captures: the packets the rule applies to (UDP to
/// port 53 of its family), then the deployable program over them; `filter -v` then says how
/// many it matches on its own (the rule's `matched_alone`).
pub fn filter_command(rule: &RuleReport, inputs: &[String]) -> String {
    let family = match rule.family {
        Family::V4 => "ip",
        Family::V6 => "ip6",
    };
    // Standard input was spooled and is gone: name a file to save the capture in.
    let files: Vec<String> = inputs
        .iter()
        .map(|i| {
            if i == "<stdin>" {
                "CAPTURE.pcap".to_string()
            } else {
                i.clone()
            }
        })
        .collect();
    format!(
        "filter --l3 -e '{family} and udp dst port 53' {} | filter --l3 -v -b \"$(bpfgen {})\" > /dev/null",
        quoted(&files),
        quoted(&rule.bpfgen)
    )
}

/// A tag of the capture, for deployment names: two incidents (captures) get different tags,
/// the same capture the same one.
pub fn incident_tag(analysis: &Analysis) -> String {
    use std::hash::Hasher;
    let mut h = crate::triage::stats::FastHasher::default();
    let stats = &analysis.stats;
    h.write_u64(stats.per_second.first_key_value().map_or(0, |(k, _)| *k));
    h.write_u64(stats.per_second.last_key_value().map_or(0, |(k, _)| *k));
    h.write_u64(stats.packets);
    h.write_u64(stats.queries);
    format!("{:06x}", h.finish() & 0xff_ffff)
}

/// One flood and family as deployed: its rules in list order, the addresses they protect,
/// and whether iptables-bpf deploys them as one chain.
struct PlanDeployment<'a> {
    /// The flood's place in the list (1 = first).
    number: usize,
    /// The flood's id.
    flood: &'a str,
    /// The family.
    family: Family,
    /// Its rules, in list order.
    rules: Vec<&'a RuleReport>,
    /// The addresses the flood was sent to, of the family.
    addresses: Vec<std::net::IpAddr>,
    /// Chain mode: every rule is `dns`, and accept exceptions come first or there are several
    /// rules.
    chained: bool,
}

/// The plans that have rules, flood by flood, IPv4 then IPv6.
fn plan_deployments(analysis: &Analysis) -> Vec<PlanDeployment<'_>> {
    let mut out = Vec::new();
    for (number, flood) in analysis.floods.iter().enumerate() {
        for family in [Family::V4, Family::V6] {
            let rules: Vec<&RuleReport> = analysis
                .rules
                .iter()
                .filter(|r| r.family == family && r.floods.contains(&flood.id))
                .collect();
            if rules.is_empty() {
                continue;
            }
            let addresses = analysis
                .destinations
                .get(&flood.id)
                .into_iter()
                .flatten()
                .filter(|addr| addr.is_ipv6() == (family == Family::V6))
                .copied()
                .collect();
            let all_dns = rules
                .iter()
                .all(|r| matches!(r.generator, crate::gen::Generator::Dns(_)));
            let chained =
                all_dns && (rules.iter().any(|r| r.action == Action::Accept) || rules.len() > 1);
            out.push(PlanDeployment {
                number: number + 1,
                flood: &flood.id,
                family,
                rules,
                addresses,
                chained,
            });
        }
    }
    out
}

/// The `iptables-bpf` commands of one plan (appended to `out`, whose length numbers the
/// deployments of a plan that needs one per rule).
fn iptables_commands(tag: &str, plan: &PlanDeployment<'_>, out: &mut Vec<Vec<String>>) {
    let mut head: Vec<String> = Vec::new();
    if plan.family == Family::V6 {
        head.push("-6".into());
    }
    for addr in &plan.addresses {
        head.push("-i".into());
        head.push(addr.to_string());
    }
    head.push("-c".into());
    head.push(format!("triage {} {}", tag, plan.flood));
    head.push("--deployment".into());
    head.push(format!("triage-{tag}-f{}", plan.number));
    if plan.chained {
        let mut line = head.clone();
        line.push("--chain".into());
        line.push(format!("f{}", plan.number));
        for rule in &plan.rules {
            let flag = match rule.action {
                Action::Accept => "--accept",
                Action::Drop => "--drop",
            };
            for pattern in patterns(rule) {
                line.push(format!("{flag}={pattern}"));
            }
        }
        out.push(line);
    } else {
        for rule in plan.rules.iter().filter(|r| r.action == Action::Drop) {
            let mut line = head.clone();
            if plan.rules.len() > 1 {
                // One deployment per rule of the flood.
                let at = line.len() - 1;
                line[at] = format!("{}-{}", line[at], out.len() + 1);
            }
            line.extend(
                rule.bpfgen
                    .iter()
                    .skip(usize::from(plan.family == Family::V6))
                    .cloned(),
            );
            out.push(line);
        }
    }
}

/// The deployment commands (`iptables-bpf` arguments, without the program name): per flood
/// and family, the flood's rules in one script of a deployment named after the incident and
/// the flood (`triage-TAG-fN`), with every address the flood was sent to (`-i`), in chain
/// mode when accept exceptions come first or the flood has several drop rules. Patterns are
/// written `--accept=P` / after `--`, so that none is read as an option.
pub fn deploy_commands(analysis: &Analysis) -> Vec<Vec<String>> {
    let tag = incident_tag(analysis);
    let mut out = Vec::new();
    for plan in plan_deployments(analysis) {
        iptables_commands(&tag, &plan, &mut out);
    }
    out
}

/// A deployment command as a shell line.
pub fn command_line(args: &[String]) -> String {
    format!("iptables-bpf {}", quoted(args))
}

/// The interface placeholder of the `xdp-bpf` commands: the interface the queries arrive on.
pub const XDP_DEV: &str = "IFACE";

/// Most rules an `xdp-bpf` command lists as options on one line; a longer list is a rules
/// file given on standard input (a here-document).
pub const XDP_LINE_RULES: usize = 10;

/// One rule of an `xdp-bpf` deployment (a line of its rules file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XdpRule {
    /// `accept PATTERN`: queries for a name the `dns` pattern matches pass.
    Accept(String),
    /// `drop PATTERN`: queries for a name the `dns` pattern matches are dropped.
    Drop(String),
    /// `drop-bpf GENERATOR ARGS...`: packets the generator's program matches are dropped.
    DropBpf(crate::gen::Generator),
}

impl XdpRule {
    /// The generator and its arguments as one text, split on whitespace by `xdp-bpf`
    /// (no argument triage makes holds whitespace of its own but the `tcpdump` expression,
    /// whose words the generator joins with spaces again).
    fn generator_text(generator: &crate::gen::Generator) -> String {
        std::iter::once(generator.name().to_string())
            .chain(generator.args())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The rule as a line of the rules file.
    pub fn line(&self) -> String {
        match self {
            XdpRule::Accept(pattern) => format!("accept {pattern}"),
            XdpRule::Drop(pattern) => format!("drop {pattern}"),
            XdpRule::DropBpf(generator) => {
                format!("drop-bpf {}", XdpRule::generator_text(generator))
            }
        }
    }

    /// The rule as command-line options (patterns as `--accept=P`, so that none is read as
    /// an option).
    pub fn options(&self) -> Vec<String> {
        match self {
            XdpRule::Accept(pattern) => vec![format!("--accept={pattern}")],
            XdpRule::Drop(pattern) => vec![format!("--drop={pattern}")],
            XdpRule::DropBpf(generator) => {
                vec!["--drop-bpf".into(), XdpRule::generator_text(generator)]
            }
        }
    }
}

/// The `xdp-bpf` deployment of one flood and family: the same rules as its `iptables-bpf`
/// commands, in the same order, with the same case rule and protected addresses, in one
/// XDP program; accept lists are whole (see [`Analysis::accepts_beyond_cut`]).
#[derive(Debug, Clone)]
pub struct XdpDeployment {
    /// The flood's id.
    pub flood: String,
    /// The family whose rules these are.
    pub family: Family,
    /// The deployment's name: `triage-TAG-fN-v4` or `-v6` (one per family: an XDP program
    /// sees both).
    pub deployment: String,
    /// The protected destinations (`-a`): those of the `iptables-bpf` commands (`-i`), or,
    /// when they have none, the family's whole range (`xdp-bpf` runs every rule on both
    /// families: the addresses keep a plan to its own).
    pub addresses: Vec<String>,
    /// Whether names are compared exactly (`--match-case`): the `dns` rules deployed by
    /// iptables-bpf outside chain mode without `-i`; chain mode ignores case, as does
    /// `xdp-bpf` by default.
    pub match_case: bool,
    /// The rules, in order (the first match decides, no match passes).
    pub rules: Vec<XdpRule>,
    /// The indexes in [`deploy_commands`] of the `iptables-bpf` commands it stands for.
    pub iptables: Vec<usize>,
    /// Accept rules beyond those of the `iptables-bpf` chain (names past its cut).
    pub beyond_cut: usize,
}

impl XdpDeployment {
    /// The arguments before the rules: `apply --dev IFACE --deployment NAME -a ADDR...`.
    pub fn head(&self) -> Vec<String> {
        let mut head: Vec<String> = vec![
            "apply".into(),
            "--dev".into(),
            XDP_DEV.into(),
            "--deployment".into(),
            self.deployment.clone(),
        ];
        for addr in &self.addresses {
            head.push("-a".into());
            head.push(addr.clone());
        }
        head
    }

    /// Whether the rules go in a rules file (more than [`XDP_LINE_RULES`]).
    pub fn uses_rules_file(&self) -> bool {
        self.rules.len() > XDP_LINE_RULES
    }

    /// The command as shell text: one line, or the command reading its rules file from a
    /// here-document (lines after the first, `EOF` last, none indented).
    pub fn command(&self) -> String {
        let mut words = self.head();
        if self.match_case {
            words.push("--match-case".into());
        }
        if self.uses_rules_file() {
            words.extend(["--rules".to_string(), "-".to_string()]);
            let mut text = format!("xdp-bpf {} <<'EOF'\n", quoted(&words));
            for rule in &self.rules {
                text.push_str(&rule.line());
                text.push('\n');
            }
            text.push_str("EOF");
            text
        } else {
            words.extend(self.rules.iter().flat_map(XdpRule::options));
            format!("xdp-bpf {}", quoted(&words))
        }
    }
}

/// The program rule of a generator that `xdp-bpf` builds for both families, for a plan of
/// `family`: a `tcpdump` expression of one family rejects every packet of the other, which
/// `tcpdump` (and so `xdp-bpf`) refuses, so it gets a branch for the other family that
/// matches no query (`udp dst port 0`: the rules see UDP to port 53 only) and leaves its own
/// family's program as it was.
fn program_rule(generator: &crate::gen::Generator, family: Family) -> XdpRule {
    use crate::gen::{Generator, TcpdumpSpec};
    match generator {
        Generator::Tcpdump(spec) => {
            let other = match family {
                Family::V4 => "ip6",
                Family::V6 => "ip",
            };
            XdpRule::DropBpf(Generator::Tcpdump(TcpdumpSpec {
                expr: format!("({}) or ({other} and udp dst port 0)", spec.expr),
            }))
        }
        other => XdpRule::DropBpf(other.clone()),
    }
}

/// The `xdp-bpf` rules of a plan (see [`XdpDeployment`]), and whether names are compared
/// exactly.
fn xdp_rules(plan: &PlanDeployment<'_>, beyond_cut: &[String]) -> (Vec<XdpRule>, bool) {
    use crate::gen::Generator;
    if plan.chained {
        // Chain mode: every pattern its own rule, case ignored; the names past the chain's
        // cut are accepted after the accept rules, before the first drop rule.
        let last_accept = plan.rules.iter().rposition(|r| r.action == Action::Accept);
        let mut rules = Vec::new();
        for (index, rule) in plan.rules.iter().enumerate() {
            for pattern in patterns(rule) {
                rules.push(match rule.action {
                    Action::Accept => XdpRule::Accept(pattern),
                    Action::Drop => XdpRule::Drop(pattern),
                });
            }
            if Some(index) == last_accept {
                rules.extend(beyond_cut.iter().cloned().map(XdpRule::Accept));
            }
        }
        return (rules, false);
    }
    // One iptables-bpf deployment per drop rule: the drop rules, each its program's verdict;
    // names compare exactly when every `dns` rule does (a `dns` rule of the other case
    // behaviour is a program).
    let drops: Vec<&RuleReport> = plan
        .rules
        .iter()
        .copied()
        .filter(|r| r.action == Action::Drop)
        .collect();
    let dns_case: Vec<bool> = drops
        .iter()
        .filter_map(|r| match &r.generator {
            Generator::Dns(spec) => Some(spec.ignore_case),
            _ => None,
        })
        .collect();
    let match_case = !dns_case.is_empty() && dns_case.iter().all(|ignore| !ignore);
    let mut rules = Vec::new();
    for rule in drops {
        match &rule.generator {
            Generator::Dns(spec) if spec.ignore_case != match_case => {
                rules.extend(spec.patterns.iter().cloned().map(XdpRule::Drop))
            }
            generator => rules.push(program_rule(generator, plan.family)),
        }
    }
    (rules, match_case)
}

/// The `xdp-bpf` deployment of each plan that has `iptables-bpf` commands, in their order.
pub fn xdp_deployments(analysis: &Analysis) -> Vec<XdpDeployment> {
    let tag = incident_tag(analysis);
    let mut iptables = Vec::new();
    let mut out = Vec::new();
    for plan in plan_deployments(analysis) {
        let first = iptables.len();
        iptables_commands(&tag, &plan, &mut iptables);
        if iptables.len() == first {
            continue;
        }
        let beyond_cut: &[String] = analysis
            .accepts_beyond_cut
            .iter()
            .find(|(flood, family, _)| flood == plan.flood && *family == plan.family)
            .map_or(&[], |(_, _, names)| names);
        let (rules, match_case) = xdp_rules(&plan, beyond_cut);
        let beyond_cut = if plan.chained { beyond_cut.len() } else { 0 };
        out.push(XdpDeployment {
            flood: plan.flood.to_string(),
            family: plan.family,
            deployment: format!(
                "triage-{tag}-f{}-{}",
                plan.number,
                match plan.family {
                    Family::V4 => "v4",
                    Family::V6 => "v6",
                }
            ),
            addresses: if plan.addresses.is_empty() {
                // Without -a xdp-bpf protects every address of both families: the family's
                // whole range keeps the rules to their own.
                vec![match plan.family {
                    Family::V4 => "0.0.0.0/0".to_string(),
                    Family::V6 => "::/0".to_string(),
                }]
            } else {
                plan.addresses.iter().map(|a| a.to_string()).collect()
            },
            match_case,
            rules,
            iptables: (first..iptables.len()).collect(),
            beyond_cut,
        });
    }
    out
}

/// The one `xdp-bpf` deployment of the whole incident: an interface carries one XDP
/// program, so the plans' deployments (see [`xdp_deployments`]) become one rule list, flood
/// by flood in their order (as the `iptables-bpf` deployments run one after the other in
/// INPUT), each flood's accept rules (of both families' plans) before its other rules, a rule
/// given twice kept at its first place, the protected addresses of them all. (An accept is
/// final here, where an iptables chain's accept returns to INPUT and a later flood's chain may
/// still drop the query: a name one flood's plan accepts and a later flood's drop matches
/// passes here.) Rules of a
/// family's plan then also see the other family's queries. When the plans differ in case
/// behaviour, names are compared ignoring case and the drop patterns of a plan that compares
/// exactly become `dns` programs (`--drop-bpf 'dns -- P'`) that still do.
pub fn xdp_incident(analysis: &Analysis) -> Option<XdpDeployment> {
    use crate::gen::{DnsSpec, Generator, DEFAULT_EXT_HEADERS};
    let plans = xdp_deployments(analysis);
    let first = plans.first()?;
    let match_case = plans.iter().all(|p| p.match_case);
    let mut rules: Vec<XdpRule> = Vec::new();
    let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut addresses: Vec<String> = Vec::new();
    // A flood's plans (one per family) go together, their accept rules before the rest:
    // an accept of one family's plan placed after the other's drop would never be reached.
    let mut floods: Vec<&str> = Vec::new();
    for plan in &plans {
        if !floods.contains(&plan.flood.as_str()) {
            floods.push(&plan.flood);
        }
    }
    for flood in &floods {
        let group: Vec<&XdpDeployment> = plans.iter().filter(|p| p.flood == *flood).collect();
        for accepts in [true, false] {
            for plan in &group {
                for rule in &plan.rules {
                    if matches!(rule, XdpRule::Accept(_)) != accepts {
                        continue;
                    }
                    let rule = match rule {
                        XdpRule::Drop(pattern) if plan.match_case && !match_case => {
                            XdpRule::DropBpf(Generator::Dns(DnsSpec {
                                patterns: vec![pattern.clone()],
                                ignore_case: false,
                                ext_headers: DEFAULT_EXT_HEADERS,
                            }))
                        }
                        other => other.clone(),
                    };
                    if seen.insert(rule.line()) {
                        rules.push(rule);
                    }
                }
            }
        }
        for plan in &group {
            for address in &plan.addresses {
                if !addresses.contains(address) {
                    addresses.push(address.clone());
                }
            }
        }
    }
    Some(XdpDeployment {
        flood: floods.join(","),
        family: first.family,
        deployment: format!("triage-{}", incident_tag(analysis)),
        addresses,
        match_case,
        rules,
        iptables: plans.iter().flat_map(|p| p.iptables.clone()).collect(),
        beyond_cut: plans.iter().map(|p| p.beyond_cut).sum(),
    })
}

/// The dns patterns of a rule.
fn patterns(rule: &RuleReport) -> Vec<String> {
    match &rule.generator {
        crate::gen::Generator::Dns(spec) => spec.patterns.clone(),
        _ => Vec::new(),
    }
}

/// The whole analysis as JSON (the [`Report`] as it is).
pub fn to_json(analysis: &Analysis, deploy_checks: &[String]) -> Value {
    serde_json::to_value(Report::new(analysis, deploy_checks))
        .expect("the report is plain data: maps with string keys, numbers and strings")
}

/// The readable report.
pub fn to_text(analysis: &Analysis, deploy_checks: &[String]) -> String {
    render(&Report::new(analysis, deploy_checks))
}

/// Writes a titled section of rows (nothing when there is no row).
fn section(s: &mut String, title: &str, rows: Vec<String>) {
    if !rows.is_empty() {
        let _ = writeln!(s, "\n{title}");
        for row in rows {
            let _ = writeln!(s, "  {row}");
        }
    }
}

/// The summary part of the text.
fn render_summary(s: &mut String, summary: &Summary) {
    let _ = writeln!(s, "== Summary ({})", summary.inputs.join(" "));
    let _ = writeln!(
        s,
        "packets {}  (IPv4 {}, IPv6 {})  DNS {}  queries {}  responses {}  malformed {}",
        summary.packets,
        summary.ip.ipv4,
        summary.ip.ipv6,
        summary.dns,
        summary.queries,
        summary.responses,
        summary.malformed_dns
    );
    let buckets = &summary.qps.per_second;
    if !buckets.is_empty() {
        let peak = buckets.iter().max().copied().unwrap_or(0);
        let _ = writeln!(
            s,
            "queries/s over {} s ({} s per bar, peak {peak}/s): {}",
            summary.seconds,
            summary.qps.bucket_seconds,
            sparkline(buckets)
        );
    }
    let pct = |v: f64| v * 100.0;
    section(
        s,
        "top names                        queries  share   ipv6 mixed-case",
        summary
            .top_names
            .iter()
            .map(|v| {
                format!(
                    "{:<32} {:>7} {:>5.1}% {:>6} {:>6}",
                    v.name,
                    v.queries,
                    pct(v.share),
                    v.ipv6,
                    v.mixed_case
                )
            })
            .collect(),
    );
    section(
        s,
        "top parents                      queries    names children  length  mixed  child charsets (names)",
        summary.top_suffixes.iter().map(suffix_row).collect(),
    );
    section(
        s,
        "query types",
        summary
            .qtypes
            .iter()
            .map(|v| format!("{:<10} {:>8}", v.qtype, v.queries))
            .collect(),
    );
    let mut rcode_rows: Vec<String> = summary
        .rcodes
        .iter()
        .map(|v| format!("{:<10} {:>8}", v.rcode, v.responses))
        .collect();
    if summary.responses > 0 {
        rcode_rows.push(format!(
            "NXDOMAIN share {:.1}%",
            pct(summary.nxdomain_share)
        ));
    }
    section(s, "response codes", rcode_rows);
    section(
        s,
        "top source networks",
        summary
            .top_sources
            .iter()
            .map(|v| format!("{:<24} {:>8}", v.network, v.queries))
            .collect(),
    );
    section(
        s,
        "header fingerprints (flags / EDNS / type)",
        summary
            .fingerprints
            .iter()
            .map(|v| {
                format!(
                    "{:<12} {:<10} {:<8} {:>8}",
                    v.flags, v.edns, v.qtype, v.queries
                )
            })
            .collect(),
    );
}

/// One row of the parents table.
fn suffix_row(v: &TopSuffix) -> String {
    let lengths: Vec<u64> = v
        .child_lengths
        .keys()
        .filter_map(|k| k.parse().ok())
        .collect();
    let min = lengths.iter().min().copied().unwrap_or(0);
    let max = lengths.iter().max().copied().unwrap_or(0);
    let classes: Vec<String> = v
        .child_charsets
        .iter()
        .filter(|(_, &n)| n > 0)
        .map(|(c, n)| format!("{c}:{n}"))
        .collect();
    format!(
        "{:<32} {:>7} {:>8} {:>8}  {:<6} {:>6}  {}",
        v.suffix,
        v.queries,
        v.distinct_names,
        v.distinct_children,
        format!("{min}-{max}"),
        v.mixed_case_names,
        classes.join(" ")
    )
}

/// The rules part of the text.
fn render_rules(s: &mut String, rules: &[RuleRow]) {
    let _ = writeln!(
        s,
        "\n== Rules (in order: the first match decides, no match passes; UDP to port 53 of the rule's family)"
    );
    for (index, rule) in rules.iter().enumerate() {
        let _ = writeln!(
            s,
            "{}. {} {}   [{}; {} instructions]",
            index + 1,
            rule.action,
            quoted(&rule.bpfgen),
            rule.floods.join(", "),
            rule.instructions
        );
        let flood: u64 = rule.judged_flood.values().sum();
        let legit: Vec<String> = rule
            .judged_legit
            .iter()
            .map(|(why, n)| format!("{n} {why}"))
            .collect();
        let _ = writeln!(
            s,
            "   matched {}: judged flood {flood}, legitimate {}{}",
            rule.matched,
            rule.judged_legit.values().sum::<u64>(),
            if legit.is_empty() {
                String::new()
            } else {
                format!(" ({})", legit.join("; "))
            }
        );
        let _ = writeln!(s, "   {}", rule.note);
        let _ = writeln!(s, "   check: {}", rule.check);
    }
}

/// What a basis key means, in words.
fn basis_text(basis: &str) -> &str {
    match basis {
        "unknown_nxdomain" => "no evidence either way, answered NXDOMAIN (judged flood)",
        "unknown_unanswered" => "no evidence either way, no response seen (judged flood)",
        other => crate::triage::Reason::from_key(other).map_or(other, |r| r.text()),
    }
}

/// The cost part of the text.
fn render_outcome(s: &mut String, report: &Report) {
    let outcome = &report.outcome;
    let _ = writeln!(s, "\n== What the rules cost");
    let _ = writeln!(
        s,
        "queries {}: {} proven flood (from sources that sent nothing else), {} judged legitimate of which {} dropped ({:.3}%)",
        outcome.queries,
        outcome.proven_flood,
        outcome.legit_packets,
        outcome.legit_dropped,
        outcome.legit_dropped_judged_share * 100.0
    );
    let base = outcome.queries.saturating_sub(outcome.proven_flood);
    let bound = if base == 0 {
        0.0
    } else {
        (outcome.unproven_dropped as f64 / base as f64).min(1.0)
    };
    let _ = writeln!(
        s,
        "legitimate queries dropped, at most: {} of the {base} queries not proven flood ({:.3}%)",
        outcome.unproven_dropped,
        bound * 100.0
    );
    for (basis, count) in &outcome.unproven_dropped_by_basis {
        let _ = writeln!(s, "  {count:>8}  {}", basis_text(basis));
    }
    if !outcome.top_dropped_names.is_empty() {
        let _ = writeln!(s, "  most asked dropped names of each kind:");
        for dropped in &outcome.top_dropped_names {
            let _ = writeln!(
                s,
                "  {:>8}  {}  ({})",
                dropped.queries, dropped.name, dropped.basis
            );
        }
    }
    let random = report
        .floods
        .iter()
        .any(|f| matches!(f.kind, KindReport::RandomSubdomain { .. }));
    if random && !report.has_zone {
        let _ = writeln!(
            s,
            "  without --zone, names that exist but were not answered in the capture count as unknown: give the zone file to spare them"
        );
    }
}

/// Renders a report as text.
pub fn render(report: &Report) -> String {
    let mut s = String::new();
    render_summary(&mut s, &report.summary);
    if !report.notes.is_empty() {
        let _ = writeln!(s, "\n== Notes");
        for note in &report.notes {
            let _ = writeln!(s, "- {note}");
        }
    }
    if report.floods.is_empty() {
        let _ = writeln!(s, "\n== No flood found: nothing to block.");
        return s;
    }
    let _ = writeln!(s, "\n== Floods");
    for flood in &report.floods {
        let _ = writeln!(s, "{}: {}", flood.id, flood.description);
        let _ = writeln!(s, "  why: {}", flood.why);
        let _ = writeln!(
            s,
            "  judged part of it: {} packets ({} over IPv6 by the first pass); the rules below drop {} ({:.2}%)",
            flood.packets,
            flood.ipv6,
            flood.dropped,
            flood.dropped_share * 100.0
        );
        match flood.onset {
            Some(onset) => {
                let _ = writeln!(
                    s,
                    "  onset: {} s into the capture ({}/s before, {}/s from then on)",
                    onset.at_seconds, onset.before_qps, onset.after_qps
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "  onset: no step in its rate within the capture (it began before, or rose slowly; --baseline compares with earlier traffic)"
                );
            }
        }
    }
    render_rules(&mut s, &report.rules);
    render_outcome(&mut s, report);
    let _ = writeln!(
        s,
        "\n== Deploy (the program for each rule: bpfgen ARGS as listed above; for xdp-bpf, {} is the interface the queries arrive on)",
        XDP_DEV
    );
    for (command, check) in report.deploy.iter().zip(&report.deploy_checks) {
        let _ = writeln!(s, "  {command}");
        if !check.is_empty() {
            let _ = writeln!(s, "    ({check})");
        }
    }
    if let Some(xdp) = &report.deploy_xdp_incident {
        let _ = writeln!(
            s,
            "  or at XDP, every rule above in one program on {XDP_DEV} (the rules of each family's plan also see the other family's queries):"
        );
        let _ = writeln!(s, "  {}", xdp.command);
        if xdp.accepts_beyond_iptables > 0 {
            let _ = writeln!(
                s,
                "    ({} more names accepted than by the iptables-bpf chains, which stop at the {} most asked)",
                xdp.accepts_beyond_iptables,
                crate::triage::rules::MAX_EXCEPTIONS
            );
        }
    }
    for skipped in &report.skipped {
        let _ = writeln!(s, "note: candidate not built: {skipped}");
    }
    s
}
