//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// Path of a built binary of this crate.
pub fn bin(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_BIN_EXE_bpfasm"));
    dir.parent().expect("bin dir").join(name)
}

/// Runs a binary with arguments and stdin; returns its output.
pub fn run(name: &str, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(bin(name))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {name}: {e}"));
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let output = child.wait_with_output().expect("wait");
    writer.join().expect("stdin writer");
    output
}

/// stdout as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// stderr as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The project's testdata directory.
pub fn testdata(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(path)
}

/// A capture from testdata/captures.
pub fn capture(name: &str) -> PathBuf {
    testdata("captures").join(name)
}

/// Every real capture of testdata/captures (see testdata/README.md), one of each link type
/// and file format: the tests that run something over all captures read this list.
pub const CAPTURES: [&str; 6] = [
    "eth-flood-v4.pcap",
    "eth-flood-v6.pcap",
    "eth-vlan.pcap",
    "any-sll1.pcap",
    "any-sll2.pcap",
    "eth-flood.pcapng",
];

#[test]
fn the_capture_list_names_every_capture_in_testdata() {
    let mut present: Vec<String> = std::fs::read_dir(testdata("captures"))
        .expect("testdata/captures")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    present.sort();
    let mut listed: Vec<String> = CAPTURES.iter().map(|name| name.to_string()).collect();
    listed.sort();
    assert_eq!(listed, present, "CAPTURES and testdata/captures differ");
}

/// A file from testdata/reference (what the original bpftools produced).
pub fn reference(name: &str) -> PathBuf {
    testdata("reference").join(name)
}

/// True when running as root.
pub fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// True when `tool` is on PATH.
pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Fails the test, naming what to install, when `tool` (the oracle of a test) is not on PATH:
/// a test whose oracle cannot run never passes.
pub fn require(tool: &str, debian_package: &str) {
    assert!(
        have(tool),
        "this test needs `{tool}` on PATH as its oracle (Debian: apt-get install {debian_package})"
    );
}

/// Fails the test when not root. Tests that call it are `#[ignore = "needs root ..."]`, so they
/// run only when asked for (`cargo test -- --include-ignored`, as `scripts/test-all.sh` does as
/// root and in CI); asked for without root they fail rather than pass unchecked.
pub fn require_root(why: &str) {
    assert!(
        is_root(),
        "this test needs root ({why}); run it as root or leave out --include-ignored / --ignored"
    );
}
