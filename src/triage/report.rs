//! What triage prints: a readable report, or JSON (`--json`), and the ready commands.

use std::fmt::Write;

use serde_json::{json, Value};

use crate::dns::{rcode_name, type_name};
use crate::triage::detect::{edns_text, flags_text, Flood, FloodKind};
use crate::triage::packet::{name_text, Family};
use crate::triage::rules::Action;
use crate::triage::stats::{Stats, CHARSETS};
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

fn top<K: Clone + Ord, I: Iterator<Item = (K, u64)>>(items: I, n: usize) -> Vec<(K, u64)> {
    let mut all: Vec<(K, u64)> = items.collect();
    all.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    all.truncate(n);
    all
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        (part as f64 / whole as f64 * 10000.0).round() / 10000.0
    }
}

fn network_text(addr: &std::net::IpAddr) -> String {
    match addr {
        std::net::IpAddr::V4(_) => format!("{addr}/24"),
        std::net::IpAddr::V6(_) => format!("{addr}/48"),
    }
}

/// The summary as JSON.
pub fn summary_json(stats: &Stats, inputs: &[String]) -> Value {
    let (start, width, buckets) = qps_buckets(stats, 60);
    let names = top(
        stats
            .names
            .iter()
            .map(|(k, s)| (k.clone(), u64::from(s.count))),
        TOP,
    );
    let top_names: Vec<Value> = names
        .iter()
        .map(|(name, count)| {
            let s = &stats.names[name];
            json!({
                "name": name_text(name),
                "queries": count,
                "share": share(*count, stats.queries),
                "ipv6": s.ipv6,
                "mixed_case": s.upper,
            })
        })
        .collect();
    let suffixes = top(
        stats
            .suffixes
            .iter()
            .filter(|(_, s)| s.detail.is_some())
            .map(|(k, s)| (k.clone(), s.packets)),
        TOP,
    );
    let top_suffixes: Vec<Value> = suffixes
        .iter()
        .map(|(suffix, count)| {
            let s = &stats.suffixes[suffix];
            let detail = s.detail.as_ref().expect("filtered above");
            let lengths: serde_json::Map<String, Value> = detail
                .lengths
                .iter()
                .enumerate()
                .filter(|(_, &n)| n > 0)
                .map(|(l, &n)| (l.to_string(), json!(n)))
                .collect();
            let charsets: serde_json::Map<String, Value> = CHARSETS
                .iter()
                .zip(detail.charsets.iter())
                .map(|(c, &n)| (c.to_string(), json!(n)))
                .collect();
            json!({
                "suffix": name_text(suffix),
                "queries": count,
                "distinct_names": s.names,
                "distinct_children": detail.distinct_children().round() as u64,
                "child_lengths": lengths,
                "child_charsets": charsets,
                "mixed_case_names": detail.upper_names,
            })
        })
        .collect();
    let qtypes: Vec<Value> = top(stats.qtypes.iter().map(|(k, v)| (*k, *v)), TOP)
        .iter()
        .map(|(t, n)| json!({"type": type_name(*t), "queries": n}))
        .collect();
    let rcodes: Vec<Value> = stats
        .rcodes
        .iter()
        .enumerate()
        .filter(|(_, &n)| n > 0)
        .map(|(r, &n)| json!({"rcode": rcode_name(r as u16), "responses": n}))
        .collect();
    let sources: Vec<Value> = top(stats.sources.iter().map(|(k, v)| (*k, *v)), TOP)
        .iter()
        .map(|(net, n)| json!({"network": network_text(net), "queries": n}))
        .collect();
    let mut flags = std::collections::BTreeMap::new();
    let mut edns = std::collections::BTreeMap::new();
    for (header, &n) in &stats.headers {
        *flags.entry(header.flags).or_insert(0u64) += n;
        *edns.entry(header.edns).or_insert(0u64) += n;
    }
    let flags: Vec<Value> = top(flags.into_iter(), TOP)
        .iter()
        .map(|(f, n)| json!({"flags": flags_text(*f), "queries": n}))
        .collect();
    let edns: Vec<Value> = top(edns.into_iter(), TOP)
        .iter()
        .map(|(e, n)| json!({"edns": edns_text(*e), "queries": n}))
        .collect();
    let prints: Vec<Value> = top(stats.prints.iter().map(|(k, v)| (*k, *v)), TOP)
        .iter()
        .map(|(p, n)| {
            json!({
                "flags": flags_text(p.header.flags),
                "edns": edns_text(p.header.edns),
                "qtype": type_name(p.qtype),
                "queries": n,
            })
        })
        .collect();
    let duration = match (
        stats.per_second.first_key_value(),
        stats.per_second.last_key_value(),
    ) {
        (Some((a, _)), Some((b, _))) => b - a + 1,
        _ => 0,
    };
    json!({
        "inputs": inputs,
        "packets": stats.packets,
        "ip": {"ipv4": stats.ipv4, "ipv6": stats.ipv6},
        "dns": stats.dns,
        "malformed_dns": stats.malformed,
        "queries": stats.queries,
        "queries_ipv6": stats.queries_v6,
        "responses": stats.responses,
        "seconds": duration,
        "qps": {"start": start, "bucket_seconds": width, "per_second": buckets},
        "top_names": top_names,
        "top_suffixes": top_suffixes,
        "qtypes": qtypes,
        "rcodes": rcodes,
        "nxdomain_share": share(stats.rcodes[3], stats.responses),
        "top_sources": sources,
        "flags": flags,
        "edns": edns,
        "fingerprints": prints,
    })
}

fn flood_json(flood: &Flood, analysis: &Analysis) -> Value {
    let (packets, dropped) = analysis
        .outcome
        .floods
        .get(&flood.id)
        .copied()
        .unwrap_or((0, 0));
    let mut value = json!({
        "id": flood.id,
        "description": flood.describe(),
        "why": flood.why,
        "queries": flood.queries,
        "ipv6": flood.ipv6,
        "packets": packets,
        "dropped": dropped,
        "dropped_share": share(dropped, packets),
    });
    let extra = match &flood.kind {
        FloodKind::RandomSubdomain {
            suffix,
            established_at,
            depths,
            lengths,
            charsets,
            randomized_case,
            distinct_children,
        } => json!({
            "kind": "random-subdomain",
            "suffix": name_text(suffix),
            "established_at": established_at,
            "depths": depths,
            "child_lengths": [lengths.0, lengths.1],
            "child_charsets": CHARSETS.iter().enumerate().filter(|(i, _)| charsets >> i & 1 == 1).map(|(_, c)| *c).collect::<Vec<_>>(),
            "randomized_case": randomized_case,
            "distinct_children": distinct_children,
        }),
        FloodKind::Sources { name, qtype, hosts } => json!({
            "kind": "sources",
            "name": name_text(name),
            "qtype": type_name(*qtype),
            "sources": hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
        }),
        FloodKind::Fingerprint { name, print, .. } => json!({
            "kind": "fingerprint",
            "name": name_text(name),
            "flags": flags_text(print.header.flags),
            "flags_word": print.header.flags,
            "edns": edns_text(print.header.edns),
            "qtype": type_name(print.qtype),
        }),
    };
    if let (Value::Object(map), Value::Object(more)) = (&mut value, extra) {
        map.extend(more);
    }
    value
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

/// The deployment commands (`iptables-bpf` arguments, without the program name): per flood
/// and family, the flood's rules in one script of a deployment named after the incident and
/// the flood (`triage-TAG-fN`), with every address the flood was sent to (`-i`), in chain
/// mode when accept exceptions come first or the flood has several drop rules. Patterns are
/// written `--accept=P` / after `--`, so that none is read as an option.
pub fn deploy_commands(analysis: &Analysis) -> Vec<Vec<String>> {
    let tag = incident_tag(analysis);
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
            let mut head: Vec<String> = Vec::new();
            if family == Family::V6 {
                head.push("-6".into());
            }
            for addr in analysis.destinations.get(&flood.id).into_iter().flatten() {
                if addr.is_ipv6() == (family == Family::V6) {
                    head.push("-i".into());
                    head.push(addr.to_string());
                }
            }
            head.push("-c".into());
            head.push(format!("triage {} {}", tag, flood.id));
            head.push("--deployment".into());
            head.push(format!("triage-{tag}-f{}", number + 1));
            let all_dns = rules
                .iter()
                .all(|r| matches!(r.generator, crate::gen::Generator::Dns(_)));
            let chained =
                all_dns && (rules.iter().any(|r| r.action == Action::Accept) || rules.len() > 1);
            if chained {
                let mut line = head.clone();
                line.push("--chain".into());
                line.push(format!("f{}", number + 1));
                for rule in &rules {
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
                for rule in rules.iter().filter(|r| r.action == Action::Drop) {
                    let mut line = head.clone();
                    if rules.len() > 1 {
                        // One deployment per rule of the flood.
                        let at = line.len() - 1;
                        line[at] = format!("{}-{}", line[at], out.len() + 1);
                    }
                    line.extend(
                        rule.bpfgen
                            .iter()
                            .skip(usize::from(family == Family::V6))
                            .cloned(),
                    );
                    out.push(line);
                }
            }
        }
    }
    out
}

/// A deployment command as a shell line.
pub fn command_line(args: &[String]) -> String {
    format!("iptables-bpf {}", quoted(args))
}

/// The dns patterns of a rule.
fn patterns(rule: &RuleReport) -> Vec<String> {
    match &rule.generator {
        crate::gen::Generator::Dns(spec) => spec.patterns.clone(),
        _ => Vec::new(),
    }
}

/// The whole analysis as JSON.
pub fn to_json(analysis: &Analysis, deploy_checks: &[String]) -> Value {
    let rules: Vec<Value> = analysis
        .rules
        .iter()
        .map(|r| {
            json!({
                "action": r.action.as_str(),
                "bpfgen": r.bpfgen,
                "family": if r.family == Family::V6 { "ipv6" } else { "ipv4" },
                "floods": r.floods,
                "note": r.note,
                "instructions": r.instructions,
                "matched": r.matched,
                "judged_flood": r.matched_flood,
                "judged_legit": r.matched_legit,
                "matched_alone": r.matched_alone,
                "check": filter_command(r, &analysis.inputs),
            })
        })
        .collect();
    let floods: Vec<Value> = analysis
        .floods
        .iter()
        .map(|f| flood_json(f, analysis))
        .collect();
    json!({
        "summary": summary_json(&analysis.stats, &analysis.inputs),
        "floods": floods,
        "rules": rules,
        "outcome": {
            "queries": analysis.outcome.queries,
            "proven_flood": analysis.outcome.proven_flood,
            "legit_packets": analysis.outcome.legit.0,
            "legit_dropped": analysis.outcome.legit.1,
            "legit_dropped_judged_share": share(analysis.outcome.legit.1, analysis.outcome.legit.0),
            "unproven_dropped": analysis.outcome.unproven_total(),
            "unproven_dropped_by_basis": analysis.outcome.unproven_dropped,
            "legit_dropped_share": (analysis.outcome.legit_dropped_bound() * 1e6).ceil() / 1e6,
            "top_dropped_existing_names": analysis.outcome.top_unproven.iter().map(|(b, n, c)| json!({"basis": b, "name": n, "queries": c})).collect::<Vec<_>>(),
        },
        "deploy": deploy_commands(analysis).iter().map(|c| command_line(c)).collect::<Vec<_>>(),
        "deploy_checks": deploy_checks,
        "notes": analysis.notes,
        "skipped": analysis.skipped,
    })
}

/// The readable report.
pub fn to_text(analysis: &Analysis, deploy_checks: &[String]) -> String {
    let stats = &analysis.stats;
    let mut s = String::new();
    let summary = summary_json(stats, &analysis.inputs);
    let _ = writeln!(s, "== Summary ({})", analysis.inputs.join(" "));
    let _ = writeln!(
        s,
        "packets {}  (IPv4 {}, IPv6 {})  DNS {}  queries {}  responses {}  malformed {}",
        stats.packets,
        stats.ipv4,
        stats.ipv6,
        stats.dns,
        stats.queries,
        stats.responses,
        stats.malformed
    );
    let (_, width, buckets) = qps_buckets(stats, 60);
    if !buckets.is_empty() {
        let peak = buckets.iter().max().copied().unwrap_or(0);
        let _ = writeln!(
            s,
            "queries/s over {} s ({} s per bar, peak {peak}/s): {}",
            summary["seconds"],
            width,
            sparkline(&buckets)
        );
    }
    let section = |s: &mut String, title: &str, rows: Vec<String>| {
        if !rows.is_empty() {
            let _ = writeln!(s, "\n{title}");
            for row in rows {
                let _ = writeln!(s, "  {row}");
            }
        }
    };
    let rows = |key: &str, f: &dyn Fn(&Value) -> String| -> Vec<String> {
        summary[key]
            .as_array()
            .map(|a| a.iter().map(f).collect())
            .unwrap_or_default()
    };
    let pct = |v: &Value| v.as_f64().unwrap_or(0.0) * 100.0;
    section(
        &mut s,
        "top names                        queries  share   ipv6 mixed-case",
        rows("top_names", &|v| {
            format!(
                "{:<32} {:>7} {:>5.1}% {:>6} {:>6}",
                v["name"].as_str().unwrap_or(""),
                v["queries"].as_u64().unwrap_or(0),
                pct(&v["share"]),
                v["ipv6"].as_u64().unwrap_or(0),
                v["mixed_case"].as_u64().unwrap_or(0)
            )
        }),
    );
    let suffix_rows: Vec<String> = summary["top_suffixes"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| {
                    let lengths = v["child_lengths"].as_object();
                    let (min, max) = lengths
                        .map(|m| {
                            let ls: Vec<u64> = m.keys().filter_map(|k| k.parse().ok()).collect();
                            (
                                ls.iter().min().copied().unwrap_or(0),
                                ls.iter().max().copied().unwrap_or(0),
                            )
                        })
                        .unwrap_or((0, 0));
                    let classes: Vec<String> = v["child_charsets"]
                        .as_object()
                        .map(|m| {
                            m.iter()
                                .filter(|(_, n)| n.as_u64().unwrap_or(0) > 0)
                                .map(|(c, n)| format!("{c}:{n}"))
                                .collect()
                        })
                        .unwrap_or_default();
                    format!(
                        "{:<32} {:>7} {:>8} {:>8}  {:<6} {:>6}  {}",
                        v["suffix"].as_str().unwrap_or(""),
                        v["queries"].as_u64().unwrap_or(0),
                        v["distinct_names"].as_u64().unwrap_or(0),
                        v["distinct_children"].as_u64().unwrap_or(0),
                        format!("{min}-{max}"),
                        v["mixed_case_names"].as_u64().unwrap_or(0),
                        classes.join(" ")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    section(
        &mut s,
        "top parents                      queries    names children  length  mixed  child charsets (names)",
        suffix_rows,
    );
    section(
        &mut s,
        "query types",
        rows("qtypes", &|v| {
            format!(
                "{:<10} {:>8}",
                v["type"].as_str().unwrap_or(""),
                v["queries"].as_u64().unwrap_or(0)
            )
        }),
    );
    let mut rcode_rows = rows("rcodes", &|v| {
        format!(
            "{:<10} {:>8}",
            v["rcode"].as_str().unwrap_or(""),
            v["responses"].as_u64().unwrap_or(0)
        )
    });
    if stats.responses > 0 {
        rcode_rows.push(format!(
            "NXDOMAIN share {:.1}%",
            pct(&summary["nxdomain_share"])
        ));
    }
    section(&mut s, "response codes", rcode_rows);
    section(
        &mut s,
        "top source networks",
        rows("top_sources", &|v| {
            format!(
                "{:<24} {:>8}",
                v["network"].as_str().unwrap_or(""),
                v["queries"].as_u64().unwrap_or(0)
            )
        }),
    );
    section(
        &mut s,
        "header fingerprints (flags / EDNS / type)",
        rows("fingerprints", &|v| {
            format!(
                "{:<12} {:<10} {:<8} {:>8}",
                v["flags"].as_str().unwrap_or(""),
                v["edns"].as_str().unwrap_or(""),
                v["qtype"].as_str().unwrap_or(""),
                v["queries"].as_u64().unwrap_or(0)
            )
        }),
    );
    if !analysis.notes.is_empty() {
        let _ = writeln!(s, "\n== Notes");
        for note in &analysis.notes {
            let _ = writeln!(s, "- {note}");
        }
    }
    if analysis.floods.is_empty() {
        let _ = writeln!(s, "\n== No flood found: nothing to block.");
        return s;
    }
    let _ = writeln!(s, "\n== Floods");
    for flood in &analysis.floods {
        let (packets, dropped) = analysis.outcome.floods[&flood.id];
        let _ = writeln!(s, "{}: {}", flood.id, flood.describe());
        let _ = writeln!(s, "  why: {}", flood.why);
        let _ = writeln!(
            s,
            "  judged part of it: {packets} packets ({} over IPv6 by the first pass); the rules below drop {dropped} ({:.2}%)",
            flood.ipv6,
            share(dropped, packets) * 100.0
        );
    }
    let _ = writeln!(
        s,
        "\n== Rules (in order: the first match decides, no match passes; UDP to port 53 of the rule's family)"
    );
    for (index, rule) in analysis.rules.iter().enumerate() {
        let _ = writeln!(
            s,
            "{}. {} {}   [{}; {} instructions]",
            index + 1,
            rule.action.as_str(),
            quoted(&rule.bpfgen),
            rule.floods.join(", "),
            rule.instructions
        );
        let flood: u64 = rule.matched_flood.values().sum();
        let legit: Vec<String> = rule
            .matched_legit
            .iter()
            .map(|(why, n)| format!("{n} {why}"))
            .collect();
        let _ = writeln!(
            s,
            "   matched {}: judged flood {flood}, legitimate {}{}",
            rule.matched,
            rule.matched_legit.values().sum::<u64>(),
            if legit.is_empty() {
                String::new()
            } else {
                format!(" ({})", legit.join("; "))
            }
        );
        let _ = writeln!(s, "   {}", rule.note);
        let _ = writeln!(s, "   check: {}", filter_command(rule, &analysis.inputs));
    }
    let outcome = &analysis.outcome;
    let (legit, dropped) = outcome.legit;
    let _ = writeln!(s, "\n== What the rules cost");
    let _ = writeln!(
        s,
        "queries {}: {} proven flood (from sources that sent nothing else), {} judged legitimate of which {dropped} dropped ({:.3}%)",
        outcome.queries,
        outcome.proven_flood,
        legit,
        share(dropped, legit) * 100.0
    );
    let _ = writeln!(
        s,
        "legitimate queries dropped, at most: {} of the {} queries not proven flood ({:.3}%)",
        outcome.unproven_total(),
        outcome.queries.saturating_sub(outcome.proven_flood),
        outcome.legit_dropped_bound() * 100.0
    );
    for (basis, count) in &outcome.unproven_dropped {
        let what = match *basis {
            "unknown_nxdomain" => "no evidence either way, answered NXDOMAIN (judged flood)",
            "unknown_unanswered" => "no evidence either way, no response seen (judged flood)",
            other => crate::triage::Reason::from_key(other).map_or(other, |r| r.text()),
        };
        let _ = writeln!(s, "  {count:>8}  {what}");
    }
    if !outcome.top_unproven.is_empty() {
        let _ = writeln!(s, "  dropped names that exist (most asked first):");
        for (basis, name, count) in &outcome.top_unproven {
            let _ = writeln!(s, "  {count:>8}  {name}  ({basis})");
        }
    }
    if analysis
        .floods
        .iter()
        .any(|f| matches!(f.kind, FloodKind::RandomSubdomain { .. }))
        && !analysis.has_zone
    {
        let _ = writeln!(
            s,
            "  without --zone, names that exist but were not answered in the capture count as unknown: give the zone file to spare them"
        );
    }
    let _ = writeln!(
        s,
        "\n== Deploy (the program for each rule: bpfgen ARGS as listed above)"
    );
    for (command, check) in deploy_commands(analysis).iter().zip(deploy_checks) {
        let _ = writeln!(s, "  {}", command_line(command));
        if !check.is_empty() {
            let _ = writeln!(s, "    ({check})");
        }
    }
    for skipped in &analysis.skipped {
        let _ = writeln!(s, "note: candidate not built: {skipped}");
    }
    s
}
