//! Standard output: closed (`tool >&-`) is an error, one line and status 2, for every tool;
//! a pipe closed early by the reader (`tool | head`) ends the tool quietly with status 0.

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};

use crate::common::{bin, capture, run, stderr, stdout};

const BYTECODE: &str = "4,40 0 0 12,21 0 1 2048,6 0 0 65535,6 0 0 0,";

fn hex_file() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("bpftools-stdout-{}.hex", std::process::id()))
}

/// Each tool with arguments that make it write to standard output.
fn writing_runs() -> Vec<(&'static str, Vec<String>)> {
    let v4 = capture("eth-flood-v4.pcap").to_str().unwrap().to_string();
    // One real packet as pcap2hex prints it: the input of hex2pcap and parsedns.
    let lines = run("pcap2hex", &[&v4], b"");
    let packet = stdout(&lines).lines().next().expect("a packet").to_string();
    let hex = hex_file();
    std::fs::write(&hex, format!("{packet}\n")).unwrap();
    let owned = |args: &[&str]| args.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    vec![
        ("pcap2hex", vec![v4.clone()]),
        ("hex2pcap", vec![hex.to_str().unwrap().to_string()]),
        ("parsedns", vec![packet]),
        ("bpfgen", owned(&["dns", "--", "*.www.example.net"])),
        ("filter", vec!["-b".to_string(), BYTECODE.to_string(), v4]),
        (
            "iptables-bpf",
            owned(&["-w", "-", "dns", "--", "example.net"]),
        ),
        ("bpfasm", owned(&["-d", BYTECODE])),
    ]
}

/// Runs `tool args` through sh with standard output redirected as `redirect` says.
fn through_sh(redirect: &str, tool: &str, args: &[String]) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(format!(r#"exec "$@" {redirect}"#))
        .arg("sh")
        .arg(bin(tool))
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("sh")
}

#[test]
fn closed_stdout_is_an_error_for_every_tool() {
    for (tool, args) in writing_runs() {
        // The same run with an open standard output succeeds and writes something, so what
        // fails below is the closed descriptor, not the arguments.
        let open = Command::new(bin(tool))
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(open.status.success(), "{tool} {args:?}: {}", stderr(&open));
        assert!(!open.stdout.is_empty(), "{tool} {args:?} wrote nothing");

        // Output thrown away on purpose is not a closed output.
        let null = through_sh(">/dev/null", tool, &args);
        assert_eq!(null.status.code(), Some(0), "{tool}: {}", stderr(&null));

        let closed = through_sh(">&-", tool, &args);
        assert_eq!(closed.status.code(), Some(2), "{tool}: {}", stderr(&closed));
        assert_eq!(
            stderr(&closed),
            format!("{tool}: cannot write output: standard output is closed\n")
        );
    }
    let _ = std::fs::remove_file(hex_file());
}

#[test]
fn a_reader_closing_the_pipe_early_ends_the_tool_quietly() {
    // pcap2hex of the Ethernet capture is about 1 MB of text: far more than a pipe holds, so
    // the tool is still writing when the reader goes away after one line (as `| head -1`).
    let mut child = Command::new(bin("pcap2hex"))
        .arg(capture("eth-flood-v4.pcap"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.len() > 40, "{first}");
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stderr(&output), "");
}
