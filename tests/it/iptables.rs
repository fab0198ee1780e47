//! iptables-bpf: script files, safety of what reaches the script, shellcheck, rule limits.
//! (The scripts are run against the real kernel by scripts/e2e-iptables.sh.)

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use bpftools::asm::parse_bytecode;
use bpftools::gen::{build, GenOptions, Generator, P0fSpec};
use bpftools::insn::RawInsn;
use bpftools::vm::{validate, Profile, Program};

use crate::common::{require, require_root, run, stderr, stdout};

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("bpftools-ipt-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `$(touch /tmp/x)`id`.'"\n;.example.net` with its bytes that are not in names escaped.
const HOSTILE_ESCAPED: &str = "%24%28touch%20%2Ftmp%2Fx%29%60id%60.%27%22%0A%3B.example.net";

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
        set_of(&script(&["dns", "--", "a%20b"])),
        set_of(&script(&["dns", "--", "a", "b"]))
    );
    // Chain mode: the chain NAME is the deployment; its version still tells the lists apart.
    let chain = |args: &[&str]| {
        let mut all = vec!["--chain", "guard"];
        all.extend_from_slice(args);
        script(&all)
    };
    let one = chain(&["--accept", "x", "drop", "y", "--drop", "z"]);
    let two = chain(&["--accept", "x", "--drop", "y", "drop", "z"]);
    assert_eq!(set_of(&one), set_of(&two));
    assert_ne!(data(&one, "VERSION"), data(&two, "VERSION"));
}

/// A value of the script's data block (`NAME=value`).
fn data(text: &str, name: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} in the script"))
        .trim_matches('\'')
        .to_string()
}

fn write(dir: &std::path::Path, file: &str, args: &[&str]) -> String {
    let path = dir.join(file);
    let mut all = vec!["--force", "-w", path.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = run("iptables-bpf", &all, b"");
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    std::fs::read_to_string(&path).unwrap()
}

#[test]
fn deployments_and_versions() {
    let dir = temp_dir("deploy");
    // The same file: one deployment, whose version follows the rules.
    let v1 = write(&dir, "guard.sh", &["dns", "--", "*.a.example"]);
    let v2 = write(&dir, "guard.sh", &["dns", "--", "*.b.example"]);
    assert_eq!(data(&v1, "DEPLOYMENT"), data(&v2, "DEPLOYMENT"));
    assert_eq!(data(&v1, "SET"), data(&v2, "SET"));
    assert_ne!(data(&v1, "VERSION"), data(&v2, "VERSION"));
    // The comment is part of the version; another file is another deployment.
    let a = write(&dir, "a.sh", &["-c", "flood A", "dns", "--", "*.a.example"]);
    let b = write(&dir, "b.sh", &["-c", "flood B", "dns", "--", "*.a.example"]);
    assert_ne!(data(&a, "DEPLOYMENT"), data(&b, "DEPLOYMENT"));
    assert_ne!(data(&a, "SET"), data(&b, "SET"));
    assert_ne!(data(&a, "VERSION"), data(&b, "VERSION"));
    // --deployment names it; the family is part of it.
    let n4 = write(
        &dir,
        "x.sh",
        &["--deployment", "edge", "dns", "--", "*.a.example"],
    );
    let n4b = write(
        &dir,
        "y.sh",
        &["--deployment", "edge", "dns", "--", "*.a.example"],
    );
    let n6 = write(
        &dir,
        "z.sh",
        &["-6", "--deployment", "edge", "dns", "--", "*.a.example"],
    );
    assert_eq!(data(&n4, "DEPLOYMENT"), data(&n4b, "DEPLOYMENT"));
    assert_ne!(data(&n4, "DEPLOYMENT"), data(&n6, "DEPLOYMENT"));
    // Chain mode: a chain of the deployment, never the user's NAME itself; patterns ignore
    // case unless --match-case.
    let c = write(
        &dir,
        "c.sh",
        &["--chain", "MYCHAIN", "--drop", "www.example.uk"],
    );
    let chain = data(&c, "CHAIN");
    assert!(chain.starts_with("bpf_mychain_"), "{chain}");
    assert!(chain.ends_with(&data(&c, "DEPLOYMENT")), "{chain}");
    assert!(chain.len() <= 28);
    let exact = write(
        &dir,
        "c.sh",
        &[
            "--chain",
            "MYCHAIN",
            "--match-case",
            "--drop",
            "www.example.uk",
        ],
    );
    assert_eq!(data(&c, "DEPLOYMENT"), data(&exact, "DEPLOYMENT"));
    assert_ne!(
        programs(&c),
        programs(&exact),
        "case folding changes the program"
    );
    // The rules say the transport the programs read.
    assert_eq!(data(&c, "PROTO"), "udp");
    let p0f = write(
        &dir,
        "p.sh",
        &["p0f", "--", "4:64:0:*:mss*20,7:mss,sok,ts,nop,ws:df,id+:0"],
    );
    assert_eq!(data(&p0f, "PROTO"), "tcp");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn addresses_after_the_generator_and_family_mismatches_get_a_hint() {
    for args in [
        vec!["dns", "--", "*.example.uk", "-i", "192.0.2.53"],
        vec!["dns", "--", "*.example.uk", "192.0.2.0/24"],
        vec!["-6", "dns", "--", "*.example.uk", "2001:db8::53"],
        vec!["--chain", "g", "--drop", "192.0.2.53"],
    ] {
        let mut all = vec!["-w", "-"];
        all.extend(args.iter().copied());
        let out = run("iptables-bpf", &all, b"");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty());
        let err = stderr(&out);
        assert!(
            err.contains("reads as an address") && err.contains("before the generator"),
            "{args:?}: {err}"
        );
    }
    // A name written like an address stays possible with a final dot.
    script(&["dns", "--", "192.0.2.53."]);
    let out = run(
        "iptables-bpf",
        &["-w", "-", "-6", "-i", "10.0.0.1", "dns", "--", "x.example"],
        b"",
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(!err.contains("use -6"), "{err}");
    assert!(err.contains("without -6"), "{err}");
    let out = run(
        "iptables-bpf",
        &["-w", "-", "-i", "2001:db8::1", "dns", "--", "x.example"],
        b"",
    );
    assert!(stderr(&out).contains("use -6"), "{}", stderr(&out));
    // No address at all: the script is written, and the user is told it protects nothing.
    let out = run("iptables-bpf", &["-w", "-", "dns", "--", "x.example"], b"");
    assert!(out.status.success());
    assert!(
        stderr(&out).contains("the script protects nothing"),
        "{}",
        stderr(&out)
    );
    // Addresses are written as ipset lists them.
    let text = script(&[
        "-i",
        "192.0.2.77/24",
        "-i",
        "192.0.2.53/32",
        "dns",
        "--",
        "x.example",
    ]);
    assert!(
        text.contains("ADDRESSES=('192.0.2.0/24' '192.0.2.53')"),
        "{text}"
    );
}

#[test]
fn force_replaces_only_regular_files() {
    let dir = temp_dir("force");
    let fifo = dir.join("fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let target = dir.join("target");
    std::fs::write(&target, "keep").unwrap();
    let link = dir.join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    for path in [&fifo, &link, &dir] {
        let out = run(
            "iptables-bpf",
            &[
                "--force",
                "-w",
                path.to_str().unwrap(),
                "dns",
                "--",
                "x.example",
            ],
            b"",
        );
        assert_eq!(out.status.code(), Some(2), "{path:?}");
        assert!(
            stderr(&out).contains("is not a regular file"),
            "{path:?}: {}",
            stderr(&out)
        );
    }
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::symlink_metadata(&fifo)
        .unwrap()
        .file_type()
        .is_fifo());
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 3, "no temporary file left: {names:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_script_checks_its_arguments_before_anything_else() {
    let dir = temp_dir("args");
    write(&dir, "s4.sh", &["dns", "--", "x.example"]);
    write(&dir, "s6.sh", &["-6", "dns", "--", "x.example"]);
    let run_script = |file: &str, args: &[&str]| {
        Command::new("bash")
            .arg(dir.join(file))
            .args(args)
            .env("LOCK_FILE", dir.join("lock"))
            .output()
            .unwrap()
    };
    for (file, bad) in [
        ("s4.sh", "192.0.2.1; reboot"),
        ("s4.sh", "$(id)"),
        ("s4.sh", "192.0.2.256"),
        ("s4.sh", "192.0.2.0/33"),
        ("s4.sh", "192.0.2.0/0"),
        ("s4.sh", "2001:db8::1"),
        ("s6.sh", "192.0.2.1"),
        ("s6.sh", "2001:db8:::1"),
        ("s6.sh", "1:2:3:4:5:6:7:8:9"),
        ("s6.sh", "2001:db8::/129"),
        ("s6.sh", "12345::1"),
    ] {
        let out = run_script(file, &[bad]);
        assert_eq!(out.status.code(), Some(2), "{file} {bad:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("is not an IPv"),
            "{file} {bad:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for (args, message) in [
        (vec!["--delete", "--status"], "give one of"),
        (vec!["--delete", "192.0.2.1"], "only when applying"),
        (vec!["--bogus"], "unknown option"),
    ] {
        let out = run_script("s4.sh", &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(message),
            "{args:?}"
        );
    }
    if !crate::common::is_root() {
        // Valid addresses pass the check and reach the next one.
        for (file, good) in [
            ("s4.sh", "192.0.2.1"),
            ("s4.sh", "192.0.2.0/24"),
            ("s6.sh", "2001:db8::1"),
            ("s6.sh", "::ffff:192.0.2.1"),
            ("s6.sh", "fe80::/10"),
            ("s6.sh", "1:2:3:4:5:6:7:8"),
        ] {
            let out = run_script(file, &[good]);
            assert_eq!(out.status.code(), Some(1), "{file} {good}");
            assert!(String::from_utf8_lossy(&out.stderr).contains("must run as root"));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_script_template_passes_shellcheck_on_its_own() {
    let template = concat!(env!("CARGO_MANIFEST_DIR"), "/src/gen/iptables/script.bash");
    require("shellcheck", "shellcheck");
    let check = Command::new("shellcheck").arg(template).output().unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
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
    // Hostile patterns are refused as they are; written with escapes they are valid DNS
    // labels, whose bytes may only appear inside comments (names made from them keep letters
    // and digits only).
    let out = run(
        "iptables-bpf",
        &[
            "-w",
            "-",
            "dns",
            "--",
            "$(touch /tmp/x)`id`.'\"\n;.example.net",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    let text = script(&["dns", "--", HOSTILE_ESCAPED]);
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
        vec!["dns", "--", HOSTILE_ESCAPED],
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
    let help = String::from_utf8_lossy(&help.stdout);
    for part in [
        "--delete",
        "--status",
        "--dry-run",
        "[ADDRESS...]",
        "Deployment:",
        "IPTABLES_RESTORE",
        "absolute path",
    ] {
        assert!(help.contains(part), "{part}: {help}");
    }
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

#[test]
fn a_pattern_too_long_for_one_rule_is_refused_with_its_size() {
    let pattern = format!("{}.example", vec!["*"; 40].join("."));
    let out = run("iptables-bpf", &["-w", "-", "dns", "--", &pattern], b"");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    let message = stderr(&out);
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(
        message.contains("alone does not fit in one iptables bpf rule (249 instructions;"),
        "{message}"
    );
}

#[test]
fn upper_case_patterns_without_ignore_case_are_warned_about() {
    let out = run(
        "iptables-bpf",
        &["-w", "-", "dns", "--", "WWW.Example.net"],
        b"",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("iptables-bpf: warning:") && stderr(&out).contains("WWW.Example.net"),
        "{}",
        stderr(&out)
    );
    let out = run(
        "iptables-bpf",
        &[
            "-q",
            "-i",
            "192.0.2.53",
            "-w",
            "-",
            "dns",
            "--",
            "WWW.Example.net",
        ],
        b"",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
    let out = run(
        "iptables-bpf",
        &["-w", "-", "dns", "--", "-i", "WWW.Example.net"],
        b"",
    );
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
}

/// The rule's program for a p0f signature, from the script `iptables-bpf [-6] [-n]` writes.
fn p0f_rule(signature: &str, inet6: bool, negate: bool) -> Vec<RawInsn> {
    let mut args = vec!["-q"];
    if inet6 {
        args.push("-6");
    }
    if negate {
        args.push("-n");
    }
    args.extend(["p0f", "--", signature]);
    let rules = programs(&script(&args));
    assert_eq!(rules.len(), 1, "{args:?}: one rule");
    let program = parse_bytecode(&rules[0]).unwrap();
    validate(&program, Profile::XtBpf).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    program
}

/// A signature of version `*` (any): iptables sees only IPv4 packets and ip6tables only IPv6,
/// so the script holds the program of its family's signature, which must give the verdicts of
/// the `*` program (bpfgen's) on every packet of that family: every signature of the p0f tests
/// made version `*`, on every packet of the p0f tests (and on them cut short), negated too.
#[test]
fn a_p0f_signature_of_any_version_gets_its_familys_program_with_the_same_verdicts() {
    let cases = crate::p0f::cases();
    let mut packets: Vec<(bool, Vec<u8>)> = Vec::new();
    for (_, syn, _) in &cases {
        let packet = syn.packet();
        for cut in [packet.len() / 2, packet.len() - 1] {
            packets.push((syn.v6, packet[..cut].to_vec()));
        }
        packets.push((syn.v6, packet));
    }
    let mut signatures: Vec<String> = cases
        .iter()
        .map(|(signature, _, _)| format!("*{}", &signature[1..]))
        .collect();
    signatures.push("*:64:0:*:mss*10,6:mss,sok,ts,nop,ws:df,id+:0".into());
    signatures.push("*:64:0:*:*,*:mss,sok,ts,nop,ws:df,id+,flow:0".into());
    signatures.sort();
    signatures.dedup();
    let (mut compared, mut matched, mut too_long_for_one_rule) = (0, 0, 0);
    for signature in &signatures {
        let any: P0fSpec = signature.parse().unwrap_or_else(|e| panic!("{e}"));
        for inet6 in [false, true] {
            // The family's signature reads back as itself (the other family's quirks dropped).
            let family = any.for_family(inet6);
            assert_eq!(family.to_string().parse::<P0fSpec>(), Ok(family.clone()));
            for negate in [false, true] {
                let opts = GenOptions {
                    inet6,
                    negate,
                    offset: 0,
                };
                let star = build(&Generator::P0f(any.clone()), &opts)
                    .unwrap_or_else(|e| panic!("{signature}: {e}"))
                    .insns;
                let rule = p0f_rule(signature, inet6, negate);
                assert_eq!(
                    rule,
                    build(&Generator::P0f(family.clone()), &opts).unwrap().insns,
                    "{signature}: the rule holds the family's program"
                );
                assert!(rule.len() < star.len(), "{signature}: shorter than `*`");
                too_long_for_one_rule += usize::from(!negate && star.len() > 64);
                let star = Program::new(&star, Profile::Socket).unwrap();
                let rule = Program::new(&rule, Profile::XtBpf).unwrap();
                for (v6, packet) in packets.iter().filter(|(v6, _)| *v6 == inet6) {
                    let verdict = star.run(packet);
                    assert_eq!(
                        rule.run(packet),
                        verdict,
                        "{signature} (IPv{}, negate {negate}) on {packet:02x?}",
                        if *v6 { 6 } else { 4 }
                    );
                    compared += 1;
                    matched += usize::from((verdict != 0) ^ negate);
                }
            }
        }
    }
    eprintln!(
        "p0f `*` in scripts: {} signatures ({too_long_for_one_rule} of whose `*` programs exceed 64 \
         instructions), {compared} verdicts equal to the `*` program's, {matched} of them matches",
        signatures.len()
    );
    assert!(signatures.len() >= 60 && too_long_for_one_rule >= 10 && matched >= 5000);
}

#[test]
fn p0f_signatures_keep_their_family_checks_and_limits() {
    // A version 4 or 6 signature is deployed as it is, and must agree with -6.
    let v4 = "4:64:0:*:mss*20,7:mss,sok,ts,nop,ws:df,id+:0";
    let opts = GenOptions::default();
    assert_eq!(
        p0f_rule(v4, false, false),
        build(&Generator::P0f(v4.parse().unwrap()), &opts)
            .unwrap()
            .insns
    );
    for (args, message) in [
        (vec!["-6", "p0f", "--", v4], "the signature's version is 4 and -6"),
        (
            vec!["p0f", "--", "6:64:0:*:*,*:::0"],
            "the signature's version is 6: add -6",
        ),
        // Even one family's program can be too long for a rule: refused, never written.
        (
            vec!["p0f", "--", &"*:64:0:*:*,*:nop,nop,nop,nop,nop,nop,nop,nop,nop,nop,nop,nop,nop,nop,nop,nop,nop,nop,nop,nop,nop,nop,nop,nop,nop,nop,nop,nop,nop,nop,nop,nop,nop,nop,nop,nop,nop,nop,nop,nop:ecn,seq-,ack+,uptr+,pushf+:+"],
            "the p0f program cannot be loaded by xt_bpf",
        ),
    ] {
        let mut all = vec!["-w", "-"];
        all.extend(args.iter().copied());
        let out = run("iptables-bpf", &all, b"");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        let err = stderr(&out);
        assert!(
            err.starts_with("iptables-bpf: ") && err.lines().count() == 1 && err.contains(message),
            "{args:?}: {err}"
        );
    }
    // The script says what it holds and which traffic it drops.
    let text = script(&[
        "-6",
        "p0f",
        "--",
        "*:64:0:*:*,*:mss,sok,ts,nop,ws:df,id+,flow:0",
    ]);
    assert!(text.contains("# Drops TCP port 53 traffic"), "{text}");
    assert!(
        text.contains("ip6tables gives the rule IPv6 packets only")
            && text.contains("; p0f signature 6:64:0:*:*,*:mss,sok,ts,nop,ws:flow:0"),
        "{text}"
    );
}

/// Tries a TCP connection to port 53 of `address` inside `netns` for at most 2 seconds: 0 when
/// refused by the closed port (the SYN arrived), 124 when it timed out (the SYN was dropped).
fn connect_status(netns: &str, address: &str) -> Option<i32> {
    let connect = format!("exec 3<>/dev/tcp/{address}/53");
    Command::new("ip")
        .args([
            "netns", "exec", netns, "timeout", "2", "bash", "-c", &connect,
        ])
        .output()
        .unwrap()
        .status
        .code()
        .map(|code| if code == 1 { 0 } else { code })
}

/// Packets counted by the rules of `tool` (iptables or ip6tables) that use the set.
fn counted(netns: &str, tool: &str) -> u64 {
    let out = Command::new("ip")
        .args([
            "netns", "exec", netns, tool, "-w", "-L", "INPUT", "-v", "-x", "-n",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("match-set"))
        .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// A version `*` signature whose `*` program exceeds xt_bpf's 64 instructions, deployed with
/// iptables and with ip6tables in a network namespace: the kernel loads the family's program,
/// which drops the kernel's own SYNs over `lo` (Linux: TTL 64, DF with an IP ID, an IPv6 flow
/// label, options mss,sok,ts,nop,ws); the same signature with another initial TTL drops none.
#[test]
#[ignore = "needs root (network namespace, iptables, ipset)"]
fn a_p0f_signature_of_any_version_is_loaded_by_the_kernel_per_family() {
    require_root("network namespace, iptables, ipset");
    require("iptables", "iptables");
    require("ipset", "ipset");
    let netns = crate::kernel::Netns::new(&format!("bpftools-ipt-p0f-{}", std::process::id()));
    let dir = temp_dir("p0f-kernel");
    let linux = "*:64:0:*:*,*:mss,sok,ts,nop,ws:df,id+,flow:0";
    let other_ttl = "*:128:0:*:*,*:mss,sok,ts,nop,ws:df,id+,flow:0";
    let star = build(
        &Generator::P0f(linux.parse().unwrap()),
        &GenOptions::default(),
    )
    .unwrap();
    assert!(star.insns.len() > 64, "{} instructions", star.insns.len());
    for (inet6, address, tool) in [(false, "127.0.0.1", "iptables"), (true, "::1", "ip6tables")] {
        let apply = |path: &std::path::Path, args: &[&str]| {
            let out = Command::new("ip")
                .args(["netns", "exec", &netns.0, "bash"])
                .arg(path)
                .args(args)
                .env("DEFAULTINT", "lo")
                .env("LOCK_FILE", dir.join("lock"))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{tool} {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        assert_eq!(
            connect_status(&netns.0, address),
            Some(0),
            "{tool}: no rule yet"
        );
        for (signature, drops) in [(linux, true), (other_ttl, false)] {
            let path = dir.join(format!("{tool}.sh"));
            let mut args = vec!["-q", "--force", "-i", address, "-w", path.to_str().unwrap()];
            if inet6 {
                args.push("-6");
            }
            args.extend(["p0f", "--", signature]);
            let out = run("iptables-bpf", &args, b"");
            assert!(out.status.success(), "{args:?}: {}", stderr(&out));
            let text = std::fs::read_to_string(&path).unwrap();
            let rules = programs(&text);
            let family = signature.parse::<P0fSpec>().unwrap().for_family(inet6);
            let opts = GenOptions {
                inet6,
                ..GenOptions::default()
            };
            assert_eq!(rules.len(), 1, "{text}");
            assert_eq!(
                parse_bytecode(&rules[0]).unwrap(),
                build(&Generator::P0f(family), &opts).unwrap().insns,
                "{tool}: the script holds the family's program"
            );
            apply(&path, &[]);
            // The kernel holds the rule with the family's program.
            let saved = Command::new("ip")
                .args(["netns", "exec", &netns.0, &format!("{tool}-save")])
                .output()
                .unwrap();
            let saved = String::from_utf8_lossy(&saved.stdout);
            let loaded: Vec<&str> = saved
                .lines()
                .filter_map(|l| l.split("--bytecode \"").nth(1)?.split('"').next())
                .collect();
            assert_eq!(loaded.len(), 1, "{tool}-save:\n{saved}");
            assert_eq!(
                parse_bytecode(loaded[0]).unwrap(),
                parse_bytecode(&rules[0]).unwrap(),
                "{tool}-save:\n{saved}"
            );
            let before = counted(&netns.0, tool);
            let status = connect_status(&netns.0, address);
            let dropped = counted(&netns.0, tool) - before;
            if drops {
                assert_eq!(status, Some(124), "{tool} {signature}: the SYN is dropped");
                assert!(dropped >= 1, "{tool} {signature}: {dropped} counted");
            } else {
                assert_eq!(status, Some(0), "{tool} {signature}: the SYN passes");
                assert_eq!(dropped, 0, "{tool} {signature}");
            }
            apply(&path, &["--delete"]);
        }
        assert_eq!(
            connect_status(&netns.0, address),
            Some(0),
            "{tool}: deleted"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_comment_carrying_the_ownership_tag_form_is_refused() {
    let out = run(
        "iptables-bpf",
        &[
            "-w",
            "-",
            "-i",
            "192.0.2.53",
            "-c",
            "flood bpftools=abcdefghij/x",
            "dns",
            "--",
            "-i",
            "*.example.net",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    let message = stderr(&out);
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(message.contains("'bpftools='"), "{message}");
}

#[test]
fn a_case_sensitive_dns_rule_with_letters_is_warned_about_naming_dash_i() {
    let out = run(
        "iptables-bpf",
        &[
            "-w",
            "-",
            "-i",
            "192.0.2.53",
            "dns",
            "--",
            "*.www.example.net",
        ],
        b"",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("case-sensitive") && stderr(&out).contains("-i"),
        "{}",
        stderr(&out)
    );
    for quiet in [
        vec![
            "-w",
            "-",
            "-i",
            "192.0.2.53",
            "dns",
            "--",
            "-i",
            "*.www.example.net",
        ],
        vec![
            "-w",
            "-",
            "-q",
            "-i",
            "192.0.2.53",
            "dns",
            "--",
            "*.www.example.net",
        ],
    ] {
        let out = run("iptables-bpf", &quiet, b"");
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(!stderr(&out).contains("case-sensitive"), "{}", stderr(&out));
    }
}

#[test]
fn addresses_are_written_as_ipset_lists_them() {
    let out = run(
        "iptables-bpf",
        &[
            "-w",
            "-",
            "-6",
            "-i",
            "::10.53.1.9",
            "-i",
            "::ffff:10.53.1.9",
            "-i",
            "2001:DB8::1/128",
            "-i",
            "2001:db8::5/64",
            "dns",
            "--",
            "-i",
            "x.example",
        ],
        b"",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        data(&String::from_utf8_lossy(&out.stdout), "ADDRESSES")
            .contains("('::10.53.1.9' '::ffff:10.53.1.9' '2001:db8::1' '2001:db8::/64')"),
        "{}",
        data(&String::from_utf8_lossy(&out.stdout), "ADDRESSES")
    );
    let out = run(
        "iptables-bpf",
        &[
            "-w",
            "-",
            "-i",
            "010.53.1.2",
            "dns",
            "--",
            "-i",
            "x.example",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("octal"), "{}", stderr(&out));
}

#[test]
fn chain_mode_accepts_by_returning_unless_accept_final() {
    let targets = |args: &[&str]| {
        let mut all = vec!["-w", "-", "-q", "-i", "192.0.2.53", "--chain", "G"];
        all.extend_from_slice(args);
        let out = run("iptables-bpf", &all, b"");
        assert!(out.status.success(), "{}", stderr(&out));
        data(&String::from_utf8_lossy(&out.stdout), "TARGETS")
    };
    assert_eq!(
        targets(&["--accept", "www.example.net", "--drop", "any"]),
        "(RETURN DROP)"
    );
    assert_eq!(
        targets(&[
            "--accept-final",
            "--accept",
            "www.example.net",
            "--drop",
            "any"
        ]),
        "(ACCEPT DROP)"
    );
}

#[test]
fn versions_of_a_deployment_keep_the_set_name() {
    let plain = run(
        "iptables-bpf",
        &[
            "-w",
            "-",
            "-q",
            "--deployment",
            "guard",
            "dns",
            "--",
            "-i",
            "*.example.net",
        ],
        b"",
    );
    let chained = run(
        "iptables-bpf",
        &[
            "-w",
            "-",
            "-q",
            "--deployment",
            "guard",
            "--chain",
            "G",
            "--accept",
            "www.example.net",
            "--drop",
            "any",
        ],
        b"",
    );
    let plain = String::from_utf8_lossy(&plain.stdout);
    let chained = String::from_utf8_lossy(&chained.stdout);
    assert_eq!(data(&plain, "SET"), data(&chained, "SET"));
    assert_eq!(data(&plain, "DEPLOYMENT"), data(&chained, "DEPLOYMENT"));
    assert_ne!(data(&plain, "VERSION"), data(&chained, "VERSION"));
}

#[test]
fn the_script_runs_again_under_bash_when_started_by_sh() {
    let dir = temp_dir("sh");
    write(
        &dir,
        "s.sh",
        &["-q", "-i", "192.0.2.53", "dns", "--", "-i", "x.example"],
    );
    let out = Command::new("sh")
        .arg(dir.join("s.sh"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Exit status"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_long_ipv6_chain_pattern_walks_fewer_extension_headers_to_fit_one_rule() {
    // With the default walk, this accept name needs more than 64 instructions over IPv6.
    let name = "_acme-challenge.shop.shop.example";
    let full = build(
        &Generator::Dns(bpftools::gen::DnsSpec {
            patterns: vec![name.to_string()],
            ignore_case: true,
            ext_headers: bpftools::gen::DEFAULT_EXT_HEADERS,
        }),
        &GenOptions {
            inet6: true,
            negate: false,
            offset: 0,
        },
    )
    .unwrap();
    assert!(full.insns.len() > 64, "{}", full.insns.len());
    let text = script(&[
        "-6",
        "-i",
        "2001:db8::53",
        "--chain",
        "long",
        &format!("--accept={name}"),
        "--drop=*{6-20}.shop.shop.example",
    ]);
    let programs = programs(&text);
    assert_eq!(programs.len(), 2, "{text}");
    for program in &programs {
        let insns = parse_bytecode(program).unwrap();
        assert!(insns.len() <= 64, "{program}");
        validate(&insns, Profile::XtBpf).unwrap();
    }
    // The shorter accept program still matches the name (plain IPv6/UDP query).
    let mut query = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        query.push(label.len() as u8);
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 1, 0, 1]);
    let mut packet = Vec::new();
    etherparse::PacketBuilder::ipv6(
        [0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        [0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x53],
        64,
    )
    .udp(40000, 53)
    .write(&mut packet, &query)
    .unwrap();
    let accept = Program::new(&parse_bytecode(&programs[0]).unwrap(), Profile::XtBpf).unwrap();
    assert_ne!(accept.run(&packet), 0);
    // The same outside chain mode: one pattern whose full walk needs 65 instructions.
    let text = script(&["-6", "dns", "--", "-i", "*{6-20}.portal.shop.example"]);
    let single = self::programs(&text);
    assert_eq!(single.len(), 1, "{text}");
    let insns = parse_bytecode(&single[0]).unwrap();
    assert!(insns.len() <= 64);
    validate(&insns, Profile::XtBpf).unwrap();
}
