//! `xdp-bpf`: the command line, the deployment's life cycle on a veth pair in a private
//! network namespace, and `test` (the loaded program against the VM's reference) over every
//! capture of testdata.
//!
//! Without root: usage and input errors (one line, exit 2, naming the place). Root only
//! (ignored unless asked for, failing without root): everything that loads programs.

use std::process::{Command, Output};

use crate::common::{bin, capture, require_root, run, stderr, stdout, CAPTURES};

/// Rule lists `test` runs over every capture: native patterns of each form, accept before
/// drop, `**`, exact names, bounded wildcards, addresses.
const RULE_LISTS: &[&[&str]] = &[
    &["--drop", "*.example.uk"],
    &["--accept", "www.example.com", "--drop", "**"],
    &[
        "--accept",
        "www.example.net",
        "--drop",
        "*.example.net",
        "--drop",
        "*{1-8}.example.com",
        "--accept",
        "example.org",
        "--drop",
        "example.**",
    ],
    &["--drop", "any"],
    &[
        "--match-case",
        "--drop",
        "*.EXAMPLE.uk",
        "--drop",
        "*.example.com",
    ],
    &["-a", "10.0.0.0/8", "-a", "2001:db8::/32", "--drop", "**"],
];

#[test]
fn bad_input_is_one_line_naming_the_place_with_status_2() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("plan.rules");
    std::fs::write(
        &rules,
        "accept www.example.net\n# comment\nreject *.example.net\n",
    )
    .unwrap();
    let rules = rules.to_str().unwrap().to_string();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["apply", "--dev", "lo", "-a", "300.1.2.3", "--drop", "*.x"],
            "'300.1.2.3' is not an address or network",
        ),
        (
            vec!["apply", "--dev", "lo", "-a", "10.0.0.0/33", "--drop", "*.x"],
            "'10.0.0.0/33' is not an address or network",
        ),
        (
            vec!["apply", "--dev", "lo", "--rules", &rules],
            "plan.rules:3: unknown action 'reject'",
        ),
        (
            vec!["apply", "--dev", "lo", "--drop-bpf", "nosuchgen x"],
            "--drop-bpf 'nosuchgen x'",
        ),
        (vec!["apply", "--dev", "lo"], "no rules"),
        (
            vec!["test", "--drop", "*.x", "/nonexistent.pcap"],
            "cannot open '/nonexistent.pcap'",
        ),
        (
            vec!["frobnicate"],
            "unknown command 'frobnicate': expected apply, add",
        ),
        (vec![], "no command given: expected one of apply"),
    ];
    for (args, expected) in cases {
        let out = run("xdp-bpf", &args, b"");
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: one line: {err}");
        assert!(err.starts_with("xdp-bpf: "), "{args:?}: {err}");
        assert!(
            err.contains(expected),
            "{args:?}: want {expected:?} in {err}"
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
#[ignore = "needs root (bpf(2), BPF_PROG_TEST_RUN)"]
fn test_finds_no_disagreement_on_any_capture() {
    require_root("bpf(2), BPF_PROG_TEST_RUN");
    let mut compared = 0u64;
    let mut dropped = 0u64;
    for rules in RULE_LISTS {
        for name in CAPTURES {
            let path = capture(name);
            let mut args = vec!["test"];
            args.extend_from_slice(rules);
            args.push(path.to_str().unwrap());
            let out = run("xdp-bpf", &args, b"");
            let text = stdout(&out);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{args:?}: {text}{}",
                stderr(&out)
            );
            assert!(text.contains(" 0 disagreement(s)"), "{args:?}: {text}");
            let first = text.lines().next().unwrap();
            let number = |before: &str| -> u64 {
                let at = first.find(before).unwrap_or_else(|| panic!("{first}"));
                first[..at]
                    .rsplit(|c: char| !c.is_ascii_digit())
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap()
            };
            compared += number(" run by the program");
            dropped += number(" dropped");
        }
    }
    // Every capture's packets, once per rule list; many of them dropped, many not.
    assert!(compared > 50_000, "{compared}");
    assert!(
        dropped > 10_000 && dropped < compared,
        "{dropped} of {compared}"
    );
}

/// A network namespace with a veth pair (a, b), removed when dropped.
struct Namespace {
    name: String,
    state: tempfile::TempDir,
}

impl Namespace {
    fn new(tag: &str) -> Namespace {
        let name = format!("bpft-xdp-{tag}-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        for args in [
            vec!["netns", "add", &name],
            vec![
                "-n", &name, "link", "add", "xa", "type", "veth", "peer", "name", "xb",
            ],
            vec!["-n", &name, "link", "set", "xa", "up"],
            vec!["-n", &name, "link", "set", "xb", "up"],
        ] {
            let out = Command::new("ip").args(&args).output().expect("ip");
            assert!(out.status.success(), "ip {args:?}: {}", stderr(&out));
        }
        Namespace {
            name,
            state: tempfile::tempdir().unwrap(),
        }
    }

    /// Runs xdp-bpf in the namespace (nsenter keeps the host's bpffs).
    fn xdp(&self, args: &[&str]) -> Output {
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--net=/run/netns/{}", self.name))
            .arg(bin("xdp-bpf"))
            .args(args)
            .env("BPFTOOLS_XDP_STATE", self.state.path());
        command.output().expect("nsenter")
    }

    fn generations(&self) -> usize {
        let root = std::path::Path::new("/sys/fs/bpf/bpftools/xdp");
        let mut n = 0;
        for ns in std::fs::read_dir(root).into_iter().flatten().flatten() {
            let dir = ns.path().join("xa");
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                if entry.file_name().to_string_lossy().starts_with('g') {
                    n += 1;
                }
            }
        }
        n
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = self.xdp(&["delete", "--dev", "xa"]);
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: status {:?}\n{}{}",
        out.status.code(),
        stdout(out),
        stderr(out)
    );
    format!("{}{}", stdout(out), stderr(out))
}

#[test]
#[ignore = "needs root (network namespaces, bpf(2), XDP)"]
fn a_deployment_converges_changes_live_reports_and_goes() {
    require_root("network namespaces, bpf(2), XDP");
    let ns = Namespace::new("life");
    let dev = ["--dev", "xa"];
    let rules_a = [
        "--accept",
        "www.example.uk",
        "--drop",
        "*.example.uk",
        "-a",
        "10.53.0.1",
    ];
    let apply = |rules: &[&str]| {
        let mut args = vec!["apply"];
        args.extend_from_slice(&dev);
        args.extend_from_slice(rules);
        ns.xdp(&args)
    };
    let status = |rules: &[&str]| {
        let mut args = vec!["status"];
        args.extend_from_slice(&dev);
        args.extend_from_slice(rules);
        ns.xdp(&args)
    };
    // Nothing yet: status says so with 3.
    assert_eq!(status(&[]).status.code(), Some(3));
    let text = ok(&apply(&rules_a), "first apply");
    assert!(
        text.contains("generation 1 attached (native mode)"),
        "{text}"
    );
    let text = ok(&apply(&rules_a), "second apply");
    assert!(text.contains("generation 1 unchanged"), "{text}");
    assert_eq!(ns.generations(), 1);
    let text = ok(&status(&rules_a), "status as described");
    assert!(text.contains("maps      drop *.example.uk"), "{text}");
    // Other rules: a new generation, the old one gone.
    let rules_b = ["--drop", "*.example.net", "-a", "10.53.0.1"];
    let text = ok(&apply(&rules_b), "apply other rules");
    assert!(text.contains("generation 2 attached"), "{text}");
    assert_eq!(ns.generations(), 1);
    assert_eq!(status(&rules_a).status.code(), Some(3), "A is no longer it");
    ok(&status(&rules_b), "status B");
    // Live changes keep the generation.
    let mut add = vec!["add"];
    add.extend_from_slice(&dev);
    add.extend_from_slice(&["--accept", "ok.example.net", "-a", "2001:db8::/64"]);
    let text = ok(&ns.xdp(&add), "add");
    assert!(text.contains("generation 2 changed in place"), "{text}");
    ok(
        &status(&[
            "--drop",
            "*.example.net",
            "--accept",
            "ok.example.net",
            "-a",
            "10.53.0.1",
            "-a",
            "2001:db8::/64",
        ]),
        "status after add",
    );
    let mut remove = vec!["remove"];
    remove.extend_from_slice(&dev);
    remove.extend_from_slice(&["--accept", "ok.example.net"]);
    ok(&ns.xdp(&remove), "remove");
    let out = ns.xdp(&remove);
    assert_eq!(
        out.status.code(),
        Some(2),
        "removing it again: {}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("is not in the deployment"));
    // Another deployment name on the same interface is refused.
    let out = ns.xdp(&[
        "apply",
        "--dev",
        "xa",
        "--deployment",
        "other",
        "--drop",
        "*.x",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("carries deployment 'default'"),
        "{}",
        stderr(&out)
    );
    // Detached behind its back: status says so, apply repairs.
    let out = Command::new("ip")
        .args(["-n", &ns.name, "link", "set", "dev", "xa", "xdp", "off"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(status(&[]).status.code(), Some(3));
    let text = ok(&apply(&rules_b), "apply after detach");
    assert!(text.contains("attached"), "{text}");
    assert_eq!(ns.generations(), 1);
    // The deployed program against the reference over a capture.
    let path = capture("eth-flood-v4.pcap");
    let text = ok(
        &ns.xdp(&["test", "--dev", "xa", path.to_str().unwrap()]),
        "test the deployment",
    );
    assert!(text.contains(" 0 disagreement(s)"), "{text}");
    // Delete: nothing attached, nothing pinned.
    ok(&ns.xdp(&["delete", "--dev", "xa"]), "delete");
    assert_eq!(ns.generations(), 0);
    assert_eq!(status(&[]).status.code(), Some(3));
}

/// Mixed rule lists for the adversarial frames: map rules of each form, compiled rules
/// (patterns with `?` and `%XX`, generator rules) between them, addresses.
const MIXED_LISTS: &[&[&str]] = &[
    &[
        "--accept",
        "www.example.net",
        "--drop",
        "ww?.example.net",
        "--drop",
        "*.example.net",
        "--drop-bpf",
        "dns_validate",
        "--drop",
        "example.**",
    ],
    &[
        "--drop-bpf",
        "dns_validate --strict",
        "--accept",
        "*.ex%61mple.com",
        "--drop",
        "**",
    ],
    &[
        "--match-case",
        "--accept",
        "WWW.example.net",
        "--drop",
        "*{1-12}.example.net",
        "--drop-bpf",
        "suffix 00010001",
        "-a",
        "10.0.0.0/8",
        "-a",
        "2001:db8::/32",
    ],
];

#[test]
#[ignore = "needs root (bpf(2), BPF_PROG_TEST_RUN)"]
fn test_agrees_on_adversarial_frames_with_compiled_rules() {
    require_root("bpf(2), BPF_PROG_TEST_RUN");
    let frames = crate::ebpf_match::all_frames();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("frames.pcap");
    let mut writer = bpftools::pcap::Writer::new(
        std::fs::File::create(&path).unwrap(),
        bpftools::pcap::link::LINKTYPE_ETHERNET,
        false,
    )
    .unwrap();
    for (_, frame) in &frames {
        writer
            .write(std::time::Duration::ZERO, frame.len() as u32, frame)
            .unwrap();
    }
    drop(writer);
    let mut dropped_total = 0;
    for rules in MIXED_LISTS {
        let mut args = vec!["test"];
        args.extend_from_slice(rules);
        args.push(path.to_str().unwrap());
        let out = run("xdp-bpf", &args, b"");
        let text = stdout(&out);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {text}{}",
            stderr(&out)
        );
        let first = text.lines().next().unwrap();
        assert!(
            first.starts_with(&format!("{0} packets: {0} run", frames.len())),
            "{first}"
        );
        assert!(first.ends_with(" 0 disagreement(s)"), "{first}");
        // Compiled rules decided some packets in every list.
        assert!(
            text.lines().filter(|l| l.contains("decided")).count() >= 2,
            "{text}"
        );
        let dropped: u64 = first
            .split(", ")
            .find_map(|part| part.strip_suffix(" dropped"))
            .and_then(|n| n.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{first}"));
        dropped_total += dropped;
    }
    assert!(frames.len() > 10_000, "{}", frames.len());
    assert!(dropped_total > 1_000, "{dropped_total}");
}

#[test]
#[ignore = "needs root (network namespaces, bpf(2), iptables -m bpf)"]
fn the_iptables_hook_converges_moves_and_goes() {
    require_root("network namespaces, bpf(2), iptables -m bpf");
    let ns = Namespace::new("ipt");
    let rules = ["--accept", "www.example.uk", "--drop", "*.example.uk"];
    let iptables_rules = |bin: &str| -> Vec<String> {
        let out = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", ns.name))
            .args([bin, "-S", "INPUT"])
            .output()
            .expect("iptables");
        assert!(out.status.success(), "{bin}: {}", stderr(&out));
        stdout(&out)
            .lines()
            .filter(|l| l.contains("bpftools-xdp/"))
            .map(String::from)
            .collect()
    };
    let mut apply = vec!["apply", "--dev", "xa", "--iptables"];
    apply.extend_from_slice(&rules);
    let text = ok(&ns.xdp(&apply), "apply --iptables");
    assert!(
        text.contains("generation 1 attached (iptables mode)"),
        "{text}"
    );
    for bin in ["iptables", "ip6tables"] {
        let found = iptables_rules(bin);
        assert_eq!(found.len(), 1, "{bin}: {found:?}");
        assert!(found[0].contains("-i xa -p udp -m udp --dport 53 -m bpf --object-pinned"));
        assert!(found[0].ends_with("/g1\" -j DROP"), "{}", found[0]);
    }
    let text = ok(&ns.xdp(&apply), "again");
    assert!(text.contains("generation 1 unchanged"), "{text}");
    let mut status = vec!["status", "--dev", "xa"];
    status.extend_from_slice(&rules);
    let text = ok(&ns.xdp(&status), "status");
    assert!(text.contains("iptables mode"), "{text}");
    // The deployed socket filter against the reference.
    let path = capture("eth-flood-v4.pcap");
    let text = ok(
        &ns.xdp(&["test", "--dev", "xa", path.to_str().unwrap()]),
        "test",
    );
    assert!(text.contains(" 0 disagreement(s)"), "{text}");
    // A rule taken out behind its back: status says so.
    let line = iptables_rules("ip6tables").remove(0);
    let delete: Vec<String> = std::iter::once("-D".to_string())
        .chain(
            line.trim_start_matches("-A ")
                .split_whitespace()
                .map(|w| w.trim_matches('"').to_string()),
        )
        .collect();
    let out = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", ns.name))
        .arg("ip6tables")
        .args(&delete)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = ns.xdp(&status);
    assert_eq!(out.status.code(), Some(3), "{}", stdout(&out));
    assert!(stdout(&out).contains("the IPv6 rule of generation 1 is missing"));
    // Other rules: a new generation, its rules in place of the old ones.
    let text = ok(
        &ns.xdp(&[
            "apply",
            "--dev",
            "xa",
            "--iptables",
            "--drop",
            "*.example.org",
        ]),
        "apply other rules",
    );
    assert!(text.contains("generation 2 attached"), "{text}");
    for bin in ["iptables", "ip6tables"] {
        let found = iptables_rules(bin);
        assert_eq!(found.len(), 1, "{bin}: {found:?}");
        assert!(found[0].ends_with("/g2\" -j DROP"), "{}", found[0]);
    }
    // Compiled rules need XDP.
    let out = ns.xdp(&[
        "apply",
        "--dev",
        "xa",
        "--iptables",
        "--drop",
        "ex?mple.org",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("need XDP"), "{}", stderr(&out));
    // Moved to XDP: the iptables rules go.
    let text = ok(
        &ns.xdp(&["apply", "--dev", "xa", "--drop", "*.example.org"]),
        "to XDP",
    );
    assert!(
        text.contains("generation 3 attached (native mode)"),
        "{text}"
    );
    assert!(iptables_rules("iptables").is_empty());
    assert!(iptables_rules("ip6tables").is_empty());
    ok(&ns.xdp(&["delete", "--dev", "xa"]), "delete");
    assert_eq!(ns.generations(), 0);
}
