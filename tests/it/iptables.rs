//! iptables-bpf: script files, safety of what reaches the script, shellcheck, rule limits.
//! (The scripts are run against the real kernel by scripts/e2e-iptables.sh.)

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use bpftools::asm::parse_bytecode;
use bpftools::vm::{validate, Profile};

use crate::common::{require, run, stderr, stdout};

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("bpftools-ipt-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn script(args: &[&str]) -> String {
    let mut all = vec!["-w", "-"];
    all.extend_from_slice(args);
    let out = run("iptables-bpf", &all, b"");
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    stdout(&out)
}

/// The bytecode strings of a script's rules.
fn programs(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("    '"))
        .filter_map(|l| l.strip_suffix('\''))
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn writes_a_new_file_with_mode_0750_and_never_overwrites() {
    let dir = temp_dir("file");
    let bin = crate::common::bin("iptables-bpf");
    let out = Command::new(&bin)
        .current_dir(&dir)
        .args(["dns", "--", "*.www.example.uk"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Generated file 'bpf_dns_ip4_any_www_example_uk.sh'\n"
    );
    let path = dir.join("bpf_dns_ip4_any_www_example_uk.sh");
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o750
    );
    let again = Command::new(&bin)
        .current_dir(&dir)
        .args(["dns", "--", "*.www.example.uk"])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("exists: not overwriting it (use --force)")
    );
    let forced = Command::new(&bin)
        .current_dir(&dir)
        .args(["--force", "dns", "--", "*.www.example.uk"])
        .output()
        .unwrap();
    assert!(forced.status.success());
    let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temporary file left behind");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_rule_fits_xt_bpf_and_splits_when_needed() {
    let one = script(&["dns", "--", "*.www.example.uk"]);
    assert_eq!(programs(&one).len(), 1);
    let patterns: Vec<String> = (0..12).map(|i| format!("*.host{i}.example.org")).collect();
    let mut args = vec!["dns", "--"];
    args.extend(patterns.iter().map(String::as_str));
    let split = script(&args);
    let rules = programs(&split);
    assert!(rules.len() > 1, "{} rules", rules.len());
    for rule in rules {
        let prog = parse_bytecode(&rule).unwrap();
        validate(&prog, Profile::XtBpf).unwrap_or_else(|e| panic!("{e}"));
    }
    // Negated and split: a chain that RETURNs on any group, then DROPs.
    args.insert(0, "-n");
    let negated = script(&args);
    assert!(negated.contains("TARGETS=(RETURN RETURN"), "{negated}");
    assert!(negated.contains(" DROP)"));
    // One pattern that cannot fit at all.
    let huge = format!("{}.net", "a".repeat(63))
        + &format!(".{}", "b".repeat(63))
        + &format!(".{}", "c".repeat(63));
    let out = run("iptables-bpf", &["-w", "-", "dns", "--", &huge], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("a rule holds at most 64 and 1023 characters of bytecode"),
        "{}",
        stderr(&out)
    );
    // IPv6 with many patterns: the program for all of them cannot even be encoded (jumps over
    // 255), so it is split like any other.
    let mut args = vec!["-6", "dns", "--"];
    args.extend(patterns.iter().map(String::as_str));
    args.extend(["*.more.example.org"; 1].iter().copied());
    let many_v6 = script(&args);
    let rules = programs(&many_v6);
    assert!(rules.len() > 1, "{} rules", rules.len());
    for rule in rules {
        let prog = parse_bytecode(&rule).unwrap();
        validate(&prog, Profile::XtBpf).unwrap_or_else(|e| panic!("{e}"));
    }
    // A program within 64 instructions whose bytecode text iptables-restore cannot read
    // (its parameters hold at most 1023 characters): refused, never written.
    require("tcpdump", "tcpdump");
    let expr = (0..20)
        .map(|i| {
            format!(
                "ip[{}:4] & {} = {}",
                60000 + 4 * i,
                4_000_000_000u32 + i,
                4_000_000_000u32 + i
            )
        })
        .collect::<Vec<_>>()
        .join(" or ");
    let out = run("iptables-bpf", &["-w", "-", "tcpdump", "--", &expr], b"");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    assert!(
        stderr(&out).contains("characters long; iptables-restore reads at most 1023"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn names_fit_the_kernel_limits_and_differ_per_rule() {
    let set_of = |text: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix("SET="))
            .unwrap()
            .to_string()
    };
    let a = script(&[
        "dns",
        "--",
        "*.a-very-long-label-for-a-very-long-name.example.com",
    ]);
    let b = script(&[
        "dns",
        "--",
        "*.a-very-long-label-for-a-very-long-name.example.org",
    ]);
    let c = script(&[
        "-6",
        "dns",
        "--ext-headers",
        "1",
        "--",
        "*.a-very-long-label-for-a-very-long-name.example.com",
    ]);
    let names = [set_of(&a), set_of(&b), set_of(&c)];
    for name in &names {
        assert!(name.len() <= 31, "{name}");
    }
    assert!(
        names[0] != names[1] && names[0] != names[2] && names[1] != names[2],
        "{names:?}"
    );
    assert_eq!(
        set_of(&a),
        set_of(&script(&[
            "dns",
            "--",
            "*.a-very-long-label-for-a-very-long-name.example.com"
        ]))
    );
    // Lists that would read the same joined with spaces still get different names.
    assert_ne!(
        set_of(&script(&["dns", "--", "a b"])),
        set_of(&script(&["dns", "--", "a", "b"]))
    );
    let chain = |args: &[&str]| {
        let mut all = vec!["--chain", "guard"];
        all.extend_from_slice(args);
        set_of(&script(&all))
    };
    assert_ne!(
        chain(&["--accept", "x", "drop", "y", "--drop", "z"]),
        chain(&["--accept", "x", "--drop", "y", "drop", "z"])
    );
}

#[test]
fn hostile_values_are_refused_or_inert() {
    for comment in [
        "$(id)",
        "`id`",
        "it's",
        "a\"b",
        "two\nlines",
        "a;b",
        &"x".repeat(256),
    ] {
        let out = run(
            "iptables-bpf",
            &["-w", "-", "-c", comment, "dns", "--", "x.example.net"],
            b"",
        );
        assert_eq!(out.status.code(), Some(2), "{comment:?}");
        assert!(out.stdout.is_empty());
    }
    for address in [
        "10.0.0.1; reboot",
        "$(id)",
        "10.0.0.1/33",
        "::1",
        "0.0.0.0/0",
    ] {
        let out = run(
            "iptables-bpf",
            &["-w", "-", "-i", address, "dns", "--", "x.example.net"],
            b"",
        );
        assert_eq!(out.status.code(), Some(2), "{address:?}");
    }
    // Chain names iptables would refuse or misread, and --negate where it means nothing.
    for (args, message) in [
        (vec!["--chain=-Z", "--drop", "any"], "not starting with '-'"),
        (
            vec!["--chain", "DROP", "--drop", "any"],
            "built-in chain or target",
        ),
        (
            vec!["--chain", "RETURN", "--drop", "any"],
            "built-in chain or target",
        ),
        (vec!["--chain", "a b", "--drop", "any"], "bad chain name"),
        (
            vec!["-n", "--chain", "guard", "--drop", "any"],
            "--negate has no meaning",
        ),
    ] {
        let mut all = vec!["-w", "-"];
        all.extend(args.iter().copied());
        let out = run("iptables-bpf", &all, b"");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty());
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    }
    // Usage errors and control characters from hostile input: one line, escaped.
    let out = run("iptables-bpf", &["--chain", "guard"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    let out = run(
        "iptables-bpf",
        &["-w", "-", "dns", "--", "\x1b[31mred..x"],
        b"",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(!stderr(&out).contains('\x1b'), "{:?}", stderr(&out));
    assert!(
        stderr(&out).contains("\\u{1b}[31mred"),
        "{:?}",
        stderr(&out)
    );
    // Hostile patterns are valid DNS labels: their dangerous characters may only appear inside
    // comments (names made from them keep letters and digits only).
    let text = script(&["dns", "--", "$(touch /tmp/x)`id`.'\"\n;.example.net"]);
    for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
        for bad in ["$(touch", "`id`"] {
            assert!(!line.contains(bad), "'{bad}' outside a comment: {line}");
        }
    }
}

#[test]
fn generated_scripts_pass_shellcheck() {
    require("shellcheck", "shellcheck");
    let dir = temp_dir("shellcheck");
    let variants: Vec<Vec<&str>> = vec![
        vec!["dns", "--", "*.www.example.uk"],
        vec![
            "-6",
            "-i",
            "2001:db8::1",
            "-c",
            "incident 42",
            "dns",
            "--",
            "-i",
            "*.example.net",
        ],
        vec![
            "-n",
            "dns",
            "--",
            "a.example",
            "b.example",
            "c.example",
            "d.example",
            "e.example",
            "f.example",
            "g.example",
            "h.example",
        ],
        vec!["-i", "192.0.2.0/24", "dns_validate", "--", "--strict"],
        vec!["suffix", "--", "0001"],
        vec![
            "--chain",
            "DNSGUARD",
            "--accept",
            "www.example.net",
            "--drop",
            "any",
        ],
        vec!["dns", "--", "$(touch /tmp/x)`id`.'\"\n;.example.net"],
    ];
    for (i, args) in variants.iter().enumerate() {
        let path = dir.join(format!("s{i}.sh"));
        let mut all = vec!["-w", path.to_str().unwrap()];
        all.extend(args.iter().copied());
        let out = run("iptables-bpf", &all, b"");
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        let check = Command::new("shellcheck").arg(&path).output().unwrap();
        assert!(
            check.status.success(),
            "{args:?}:\n{}",
            String::from_utf8_lossy(&check.stdout)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_script_explains_itself_and_refuses_to_run_unprivileged() {
    let dir = temp_dir("help");
    let path = dir.join("s.sh");
    let out = run(
        "iptables-bpf",
        &[
            "-w",
            path.to_str().unwrap(),
            "dns",
            "--",
            "*.www.example.uk",
        ],
        b"",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.starts_with("#!/usr/bin/env bash\n# Generated by bpftools iptables-bpf: "),
        "{}",
        &text[..200]
    );
    assert!(
        text.contains("#       ldx 4*([0]&0xf)"),
        "the header shows the program's assembly"
    );
    assert!(text.contains("set -euo pipefail"));
    let help = Command::new("bash")
        .arg(&path)
        .arg("--help")
        .output()
        .unwrap();
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout)
        .contains("--delete     remove the rules, the chain and the ipset"));
    let bad = Command::new("bash")
        .arg(&path)
        .arg("--bogus")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    if !crate::common::is_root() {
        let denied = Command::new("bash").arg(&path).output().unwrap();
        assert_eq!(denied.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&denied.stderr).contains("must run as root"));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
