//! Programs longer than a conditional jump's reach: the generators emit them (trampolines),
//! they pass the kernel's rules and match exactly what their patterns match one by one.

use bpftools::asm::assemble;
use bpftools::gen::{build, DnsSpec, GenOptions, Generator};
use bpftools::vm::{validate, Profile, Program};

use crate::common::{run, stderr, stdout};
use crate::packets::{dns_query, labels, udp_packet, Ext, Shape};

fn program(patterns: &[String], inet6: bool) -> Program {
    let spec = DnsSpec {
        patterns: patterns.to_vec(),
        ignore_case: false,
        ext_headers: bpftools::gen::DEFAULT_EXT_HEADERS,
    };
    let generated = build(
        &Generator::Dns(spec),
        &GenOptions {
            inet6,
            ..GenOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("{patterns:?}: {e}"));
    validate(&generated.insns, Profile::Socket).unwrap_or_else(|e| panic!("{patterns:?}: {e}"));
    // The commented assembly is the same program.
    assert_eq!(assemble(&generated.assembly).unwrap(), generated.insns);
    Program::new(&generated.insns, Profile::Socket).unwrap()
}

/// Runs every name on every shape through the whole program and through one program per
/// pattern: the whole matches exactly when one of the patterns does. Returns how many
/// (name, shape) pairs matched.
fn same_as_patterns_one_by_one(
    patterns: &[String],
    inet6: bool,
    names: &[String],
    shapes: &[Shape],
) -> usize {
    let whole = program(patterns, inet6);
    assert!(whole.len() > 256, "{} instructions", whole.len());
    let each: Vec<Program> = patterns
        .iter()
        .map(|p| program(std::slice::from_ref(p), inet6))
        .collect();
    let mut matched = 0;
    for name in names {
        for &shape in shapes {
            let packet = udp_packet(&dns_query(&labels(name), 7), shape);
            let verdict = whole.run(&packet);
            let any = each.iter().any(|p| p.run(&packet) != 0);
            assert_eq!(verdict != 0, any, "'{name}' on {shape:?}");
            assert!(verdict == 0 || verdict == 65535, "{verdict}");
            matched += usize::from(any);
        }
    }
    matched
}

#[test]
fn thirteen_ipv6_patterns_generate_and_match_like_each_pattern() {
    let patterns: Vec<String> = (1..=13).map(|n| format!("*.www.example{n}.net")).collect();
    let mut names: Vec<String> = Vec::new();
    for n in 1..=14 {
        names.push(format!("a.www.example{n}.net"));
        names.push(format!("www.example{n}.net"));
        names.push(format!("a.b.www.example{n}.net"));
        names.push(format!("{}.www.example{n}.net", "x".repeat(63)));
    }
    names.push("a.www.example1.ne".into());
    names.push("a.www.example1.net.evil".into());
    let shapes = [
        Shape::V6,
        Shape {
            ext: Ext::HopByHop,
            ..Shape::V6
        },
        Shape {
            ext: Ext::Both,
            ..Shape::V6
        },
    ];
    let matched = same_as_patterns_one_by_one(&patterns, true, &names, &shapes);
    // a.* and the 63-character label, for examples 1..13, on every shape.
    assert_eq!(matched, 13 * 2 * shapes.len());

    // And through bpfgen: one program, exit 0.
    let mut args = vec!["-6", "dns", "--"];
    args.extend(patterns.iter().map(String::as_str));
    let out = run("bpfgen", &args, b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let count: usize = text.split(',').next().unwrap().parse().unwrap();
    assert!(count > 256 && count <= 4096, "{count}");
}

#[test]
fn forty_three_wildcard_labels_generate_and_match_like_the_pattern() {
    let stars = |n: usize| vec!["*"; n].join(".");
    let pattern = format!("{}.example.net", stars(43));
    let label_run = |n: usize, label: &str| vec![label; n].join(".");
    let names: Vec<String> = vec![
        format!("{}.example.net", label_run(43, "a")),
        format!("{}.example.net", label_run(43, "abc")),
        format!("{}.example.net", label_run(42, "a")),
        format!("{}.example.net", label_run(44, "a")),
        format!("{}.example.org", label_run(43, "a")),
        format!("{}.example.net.x", label_run(43, "a")),
    ];
    let shapes = [
        Shape::V4,
        Shape {
            ip_options: true,
            ..Shape::V4
        },
    ];
    let whole = program(std::slice::from_ref(&pattern), false);
    assert!(whole.len() > 256, "{} instructions", whole.len());
    let mut matched = Vec::new();
    for name in &names {
        for &shape in &shapes {
            let packet = udp_packet(&dns_query(&labels(name), 7), shape);
            if whole.run(&packet) != 0 {
                matched.push((name.as_str(), shape.ip_options));
            }
        }
    }
    assert_eq!(
        matched,
        [
            (names[0].as_str(), false),
            (names[0].as_str(), true),
            (names[1].as_str(), false),
            (names[1].as_str(), true)
        ]
    );
    // Two patterns past the reach, next to their one-by-one programs.
    let both = [pattern, format!("{}.example.org", stars(40))];
    let more: Vec<String> = names
        .iter()
        .cloned()
        .chain([
            format!("{}.example.org", label_run(40, "b")),
            format!("{}.example.org", label_run(41, "b")),
        ])
        .collect();
    let matched = same_as_patterns_one_by_one(&both, false, &more, &shapes);
    assert_eq!(matched, 3 * shapes.len());
}
