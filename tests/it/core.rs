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

/// Starts bpfasm with `args`, writes `head` to its stdin and keeps stdin open: bpfasm must end
/// on its own (exit 2, one line on stderr) without reading to the end of its input.
fn bpfasm_stops_before_the_end(args: &[&str], head: &[u8]) -> String {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(crate::common::bin("bpfasm"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bpfasm");
    let mut input = child.stdin.take().expect("stdin");
    // bpfasm may stop reading before all of `head` is written: a broken pipe is fine.
    let _ = input.write_all(head);
    let _ = input.flush();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("bpfasm {args:?} still reading after its input went wrong");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    drop(input);
    let out = child.wait_with_output().expect("output");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("bpfasm: "), "{err}");
    err
}

#[test]
fn bpfasm_stops_reading_at_the_first_error() {
    // A wrong line 2 in a long file: the error names line 2 and bpfasm does not wait for more.
    let err = bpfasm_stops_before_the_end(&["-"], b"ld #1\nfoo bar\nld #1\nld #1\n");
    assert!(
        err.contains("<stdin>:2:1: unknown instruction 'foo'"),
        "{err}"
    );
    // The 4097th instruction is one too many, whatever follows.
    let err = bpfasm_stops_before_the_end(&["-"], "ld #1\n".repeat(4100).as_bytes());
    assert!(
        err.contains("<stdin>:4097:1: program has 4097 instructions, expected at most 4096"),
        "{err}"
    );
    // Binary input, refused at its first bytes, as assembly and as bytecode.
    let mut binary = vec![0x6c, 0x64, 0x00, 0xff];
    binary.extend(std::iter::repeat_n(0xa5u8, 64 * 1024));
    let err = bpfasm_stops_before_the_end(&["-"], &binary);
    assert!(
        err.contains("line 1: not text (a NUL byte at column 3)"),
        "{err}"
    );
    let err = bpfasm_stops_before_the_end(&["-d", "-"], &binary);
    assert!(err.contains("line 1: not text"), "{err}");
    let err = bpfasm_stops_before_the_end(&["-"], &[b'l', b'd', 0xc3, 0x28, b'\n']);
    assert!(
        err.contains("line 1: not text (bytes that are not UTF-8 at column 3)"),
        "{err}"
    );
    // A line longer than any assembly line, with no line end in sight.
    let err = bpfasm_stops_before_the_end(&["-"], "ld #1 ".repeat(20_000).as_bytes());
    assert!(err.contains("line 1: longer than 65536 bytes"), "{err}");
}

#[test]
fn bpfasm_reads_dev_urandom_no_further_than_its_first_line() {
    let urandom = std::fs::File::open("/dev/urandom").expect("/dev/urandom");
    let mut child = std::process::Command::new(crate::common::bin("bpfasm"))
        .stdin(urandom)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("bpfasm");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("bpfasm is still reading /dev/urandom");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    // Random bytes are refused as they come: mostly as a line that is not text, and now and
    // then (when the first bytes happen to be valid UTF-8) at a character of line 1.
    assert!(
        (err.starts_with("bpfasm: <stdin>: line 1: ") || err.starts_with("bpfasm: <stdin>:1:"))
            && err.lines().count() == 1,
        "{err}"
    );
}

#[test]
fn bytecode_messages_say_what_is_wrong() {
    let cases = [
        (
            "{ 0x28, 0, 0, 12 }, { 0x6, 0, 0, 0",
            "instruction 1: '{ 0x6, 0, 0, 0' has no closing '}'",
        ),
        ("1,", "instruction count 1, but no instruction follows"),
    ];
    for (text, message) in cases {
        let out = run("bpfasm", &["-d", text], b"");
        assert_eq!(out.status.code(), Some(2));
        assert!(stderr(&out).contains(message), "{}", stderr(&out));
    }
    let long = "9".repeat(301);
    for text in [format!("1,6 0 0 {long}"), format!("{long},6 0 0 0")] {
        let out = run("bpfasm", &["-d", &text], b"");
        assert_eq!(out.status.code(), Some(2));
        let err = stderr(&out);
        assert!(err.len() < 200 && err.contains("9999..."), "{err}");
    }
    let out = run("bpfasm", &["-"], format!("ld #{long}\nret a\n").as_bytes());
    let err = stderr(&out);
    assert!(
        err.len() < 250 && err.contains("<stdin>:1:5: bad number"),
        "{err}"
    );
}
