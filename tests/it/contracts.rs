//! What an operator meets first: arguments that are not what a tool reads, output to a
//! terminal, signals, and the README's and `--help`'s own commands, run as written.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bpftools::pcap::Writer;

use crate::common::{bin, capture, run, stderr, stdout};

fn temp_dir(what: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("bpftools-contracts-{}-{what}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The directory of the built binaries, first on PATH, for commands run by a shell as written.
fn path_with_binaries() -> String {
    let dir = bin("filter").parent().unwrap().to_path_buf();
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// Runs `script` with bash, the built tools first on PATH.
fn bash(script: &str) -> std::process::Output {
    Command::new("bash")
        .args(["-c", script])
        .env("PATH", path_with_binaries())
        .output()
        .expect("bash")
}

/// Asserts a one-line `TOOL: ...` error with status 2 that contains `want`.
fn assert_error(out: &std::process::Output, tool: &str, want: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "{tool}: {err}");
    assert!(err.starts_with(&format!("{tool}: ")), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(want), "{tool}: expected '{want}' in: {err}");
}

#[test]
fn patterns_that_are_not_names_are_refused() {
    for (pattern, why) in [
        ("*.www.example.net,*.example.org", "one name per pattern"),
        ("www.example.net example.org", "one name per pattern"),
        ("http://www.example.net/", "a URL or a path is not a name"),
        ("\"www.example.net\"", "quotes are not part of a name"),
        ("'www.example.net'", "quotes are not part of a name"),
    ] {
        let out = run("bpfgen", &["dns", "--", pattern], b"");
        assert_error(&out, "bpfgen", why);
        assert!(out.stdout.is_empty());
        let out = run(
            "iptables-bpf",
            &["-i", "192.0.2.53", "-w", "-", "dns", "--", pattern],
            b"",
        );
        assert_error(&out, "iptables-bpf", why);
        assert!(out.stdout.is_empty());
        let out = run(
            "iptables-bpf",
            &[
                "-i",
                "192.0.2.53",
                "-w",
                "-",
                "--chain",
                "c",
                "--drop",
                pattern,
            ],
            b"",
        );
        assert_error(&out, "iptables-bpf", why);
    }
    // Escapes still say the bytes a name really holds, a comma or a space included.
    for pattern in ["ex%2Eample.net", "a%2Cb.example.net", "a%20b.example.net"] {
        let out = run("bpfgen", &["dns", "--", pattern], b"");
        assert!(out.status.success(), "{pattern}: {}", stderr(&out));
    }
}

#[test]
fn bpfasm_disassembles_bytecode_pasted_with_the_quotes_of_iptables_s() {
    let bytecode = stdout(&run("bpfgen", &["dns", "--", "*.www.example.net"], b""));
    let bytecode = bytecode.trim();
    let bare = run("bpfasm", &["-d", bytecode], b"");
    assert!(bare.status.success(), "{}", stderr(&bare));
    for pasted in [format!("\"{bytecode}\""), format!("'{bytecode}'")] {
        let out = run("bpfasm", &["-d", &pasted], b"");
        assert!(out.status.success(), "{pasted}: {}", stderr(&out));
        assert_eq!(stdout(&out), stdout(&bare));
    }
    // As `iptables -S` prints it, read from standard input.
    let out = run(
        "bpfasm",
        &["-d", "-"],
        format!("\"{bytecode}\"\n").as_bytes(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), stdout(&bare));
}

#[test]
fn offset_help_example_counts_packets_per_offset() {
    let help = stdout(&run("offset", &["--help"], b""));
    let example = help
        .lines()
        .find(|line| line.contains("uniq -c"))
        .expect("an example with uniq -c");
    let command = example
        .trim()
        .split("  (")
        .next()
        .unwrap()
        .replace("flood.pcap", capture("eth-flood-v4.pcap").to_str().unwrap());
    let out = bash(&command);
    assert!(out.status.success(), "{command}: {}", stderr(&out));
    // Every flood query holds the name at one of a few offsets: counts, not one per line.
    let counts: Vec<u64> = stdout(&out)
        .lines()
        .map(|line| line.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    assert!(
        counts.iter().sum::<u64>() == 6032 && counts.iter().any(|&n| n >= 500),
        "{command}: {}",
        stdout(&out)
    );
}

#[test]
fn offset_time_does_not_grow_with_the_needle() {
    // Ten 256 KB packets of 'a' and a 64 KB needle that differs only in its last byte: a
    // search comparing the needle at every position does 17 G byte comparisons per packet.
    let dir = temp_dir("offset-needle");
    let path = dir.join("big.pcap");
    let mut writer = Writer::new(Vec::new(), 1, false).unwrap();
    let packet = vec![b'a'; 256 * 1024];
    for second in 0..10 {
        writer
            .write(Duration::from_secs(second), packet.len() as u32, &packet)
            .unwrap();
    }
    std::fs::write(&path, writer.into_inner()).unwrap();
    let mut needle = "a".repeat(65_535);
    needle.push('b');
    let started = Instant::now();
    let out = run("offset", &["-q", &needle, path.to_str().unwrap()], b"");
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 10);
    assert!(took < Duration::from_secs(2), "took {took:?}");
    // Found where it is, at the end of the last packet.
    let mut last = vec![b'a'; 200_000];
    last.push(b'b');
    let mut writer = Writer::new(Vec::new(), 1, false).unwrap();
    writer
        .write(Duration::ZERO, last.len() as u32, &last)
        .unwrap();
    std::fs::write(&path, writer.into_inner()).unwrap();
    let out = run("offset", &["-q", &needle, path.to_str().unwrap()], b"");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!("1\t{}\t-65536\n", last.len() - needle.len())
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn capture_readers_given_an_interface_say_where_captures_come_from() {
    for (tool, args) in [
        ("triage", vec!["-i", "eth0"]),
        ("triage", vec!["--interface", "eth0"]),
        ("pcap2hex", vec!["-i", "eth0"]),
        ("parsedns", vec!["-ieth0"]),
    ] {
        let out = run(tool, &args, b"");
        assert_error(&out, tool, "does not listen on an interface");
        let err = stderr(&out);
        assert!(err.contains("tcpdump -i eth0 -w flood.pcap"), "{err}");
        assert!(!err.contains("'-- -i'"), "{err}");
    }
}

/// A pseudo-terminal: (the side a program writes to, the side that reads it).
fn pty() -> (std::fs::File, std::fs::File) {
    use std::os::fd::FromRawFd;
    let (mut controller, mut terminal) = (-1, -1);
    // SAFETY: openpty writes two new descriptors into the integers given; no name, settings or
    // window size are passed.
    let status = unsafe {
        libc::openpty(
            &mut controller,
            &mut terminal,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(status, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just opened by openpty and are owned by nothing else.
    unsafe {
        (
            std::fs::File::from_raw_fd(terminal),
            std::fs::File::from_raw_fd(controller),
        )
    }
}

#[test]
fn binary_captures_are_never_written_to_a_terminal() {
    let flood = capture("eth-flood-v4.pcap");
    let flood = flood.to_str().unwrap();
    let hex_line = b"4500001c0000000040110000c00002010a0000020035003500080000\n";
    let cases: [(&str, Vec<&str>, &[u8]); 3] = [
        ("filter", vec!["-b", "1,6 0 0 65535", flood], b""),
        ("filter", vec!["-e", "udp", flood], b""),
        ("hex2pcap", vec!["-l", "raw"], hex_line),
    ];
    for (tool, args, input) in cases {
        let (terminal, controller) = pty();
        // Whatever reaches the terminal is read, so that a tool writing to it is never blocked.
        let reader = std::thread::spawn(move || {
            let mut seen = Vec::new();
            let _ = std::io::Read::read_to_end(&mut { controller }, &mut seen);
            seen.len()
        });
        let mut child = Command::new(bin(tool))
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(terminal)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The tool may stop before it reads anything: a closed pipe is no failure here.
        let _ = child.stdin.take().unwrap().write_all(input);
        let out = child.wait_with_output().unwrap();
        assert_error(&out, tool, "standard output is a terminal");
        assert!(stderr(&out).contains("> out.pcap"), "{}", stderr(&out));
        assert_eq!(reader.join().unwrap(), 0, "{tool} wrote to the terminal");
    }
    // hex2pcap -w FILE writes the file whatever standard output is.
    let dir = temp_dir("tty");
    let file = dir.join("out.pcap");
    let (terminal, _controller) = pty();
    let mut child = Command::new(bin("hex2pcap"))
        .args(["-l", "raw", "-w", file.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(terminal)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(hex_line).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(std::fs::metadata(&file).unwrap().len() > 24);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The names in `dir`.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn hex2pcap_stopped_by_a_signal_leaves_no_temporary_file() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    use std::os::unix::process::ExitStatusExt;
    let dir = temp_dir("signal");
    for signal in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        let target = dir.join("out.pcap");
        let mut child = Command::new(bin("hex2pcap"))
            .args(["-l", "raw", "-w", target.to_str().unwrap()])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        input
            .write_all(b"4500001c00000000401100000a0000010a000002\n")
            .unwrap();
        // Wait for the temporary file: the run is under way, blocked reading more.
        let started = Instant::now();
        while entries(&dir).is_empty() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "no temporary file"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        kill(Pid::from_raw(child.id() as i32), signal).unwrap();
        let status = child.wait().unwrap();
        drop(input);
        assert_eq!(status.signal(), Some(signal as i32), "{signal}: {status:?}");
        assert_eq!(entries(&dir), Vec::<String>::new(), "{signal}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn hexdump_offsets_that_go_back_are_refused_naming_the_line() {
    let first: String = (0..16).map(|b| format!(" {b:02x}")).collect();
    for (dump, line) in [
        (format!("0000000{first}\n0000010 aa bb\n0000008 cc\n"), 3),
        (format!("0000000{first}\n0000010 aa bb\n0000010 cc\n"), 3),
    ] {
        let out = run("hex2pcap", &[], dump.as_bytes());
        assert_error(&out, "hex2pcap", &format!("<stdin>: line {line}: offset"));
        assert!(stderr(&out).contains("goes back"), "{}", stderr(&out));
        assert!(out.stdout.is_empty());
    }
    // Offsets that go forward, and a next packet from offset 0, are read.
    let dump = format!("0000000{first}\n0000010 aa bb\n0000000 01 02\n");
    let out = run("hex2pcap", &[], dump.as_bytes());
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn errors_quote_a_long_input_cut() {
    // One argument of 100 KB (below the kernel's 128 KB limit for one argument).
    let long = "z".repeat(100_000);
    let long_name = format!("{}.example,net", "a".repeat(100_000));
    let long_bytecode = format!("2,{long}");
    let cases: Vec<(&str, Vec<&str>, Vec<u8>)> = vec![
        ("bpfgen", vec!["dns", "--", &long_name], vec![]),
        ("bpfgen", vec!["suffix", "--", &long], vec![]),
        ("bpfasm", vec!["-d", &long_bytecode], vec![]),
        ("bpfasm", vec![], long.clone().into_bytes()),
        ("filter", vec!["-b", &long_bytecode], vec![]),
        ("offset", vec!["-x", &long], vec![]),
        ("parsedns", vec![&long], vec![]),
        ("hex2pcap", vec![], format!("00 {long}\n").into_bytes()),
        ("parsedns", vec![], format!("00{long}\n").into_bytes()),
        ("pcap2hex", vec![&long], vec![]),
    ];
    for (tool, args, input) in cases {
        let out = run(tool, &args, &input);
        let err = stderr(&out);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{tool} {}",
            &err[..err.len().min(300)]
        );
        assert!(
            err.len() < 600,
            "{tool} {:?}: {} bytes of error: {}...",
            args.first(),
            err.len(),
            &err[..300]
        );
    }
}

#[test]
fn the_readme_check_line_works_on_a_vlan_capture() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let after = readme
        .split("Check a rule yourself")
        .nth(1)
        .expect("the README's check section");
    let line = after
        .lines()
        .find_map(|line| line.trim().strip_prefix("$ filter "))
        .expect("the check command");
    for (name, matched) in [
        ("eth-vlan.pcap", "matched 3000/3016 packets"),
        ("eth-flood-v4.pcap", "matched 3000/3016 packets"),
        ("any-sll2.pcap", "matched 300/308 packets"),
    ] {
        let command =
            format!("filter {line}").replace("flood.pcap", capture(name).to_str().unwrap());
        let out = bash(&format!("set -o pipefail; {command}"));
        assert!(out.status.success(), "{name}: {command}: {}", stderr(&out));
        assert_eq!(stderr(&out), format!("filter: {matched}\n"), "{name}");
    }
    // tcpdump's program for an Ethernet capture with VLAN tags: the warning says what helps.
    let out = run(
        "filter",
        &[
            "-e",
            "ip and udp dst port 53",
            capture("eth-vlan.pcap").to_str().unwrap(),
        ],
        b"",
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("tcpdump's program for"), "{err}");
    assert!(err.contains("give --l3"), "{err}");
    assert!(!err.contains("generate it with -o"), "{err}");
}

#[test]
fn the_script_header_pastes_back_as_the_command_that_made_it() {
    let args = [
        "-i",
        "192.0.2.53",
        "-c",
        "triage flood-1 (a [b] #c)",
        "-w",
        "-",
        "dns",
        "--",
        "*.www.example.net",
        "ex%2Eample.n?t",
    ];
    let out = run("iptables-bpf", &args, b"");
    assert!(out.status.success(), "{}", stderr(&out));
    let script = stdout(&out);
    let header = script
        .lines()
        .nth(1)
        .and_then(|line| line.strip_prefix("# Generated by bpftools iptables-bpf: "))
        .expect("the header line");
    let words = bash(&format!("printf '%s\\n' {header}"));
    assert!(words.status.success(), "{header}: {}", stderr(&words));
    let mut expected = vec![bin("iptables-bpf").to_string_lossy().into_owned()];
    expected.extend(args.iter().map(|a| a.to_string()));
    let got: Vec<String> = stdout(&words).lines().map(str::to_string).collect();
    assert_eq!(got, expected, "{header}");
}

#[test]
fn scripts_run_the_binaries_where_cargo_builds_them() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let elsewhere = temp_dir("target");
    let out = Command::new("bash")
        .args(["-c", ". scripts/release-dir.bash && release_dir"])
        .current_dir(root)
        .env("CARGO_TARGET_DIR", &elsewhere)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{}/release\n", elsewhere.display()));
    for script in ["e2e-netns.bash", "bench.sh", "eval-triage.sh"] {
        let text = std::fs::read_to_string(root.join("scripts").join(script)).unwrap();
        assert!(
            text.contains("release_dir") && !text.contains("target/release"),
            "{script} must run what cargo built"
        );
    }
    let _ = std::fs::remove_dir_all(&elsewhere);
}

#[test]
fn the_readme_install_section_works_on_a_fresh_account() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let install = readme
        .split("## Install and run")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("the install section");
    assert!(
        install.contains("    cargo install --locked --path .\n"),
        "{install}"
    );
    let rust_version = manifest
        .lines()
        .find_map(|line| line.strip_prefix("rust-version = "))
        .unwrap()
        .trim_matches('"');
    assert!(
        install.contains(&format!("Rust {rust_version} or later")),
        "the install section names the Rust version"
    );
    assert!(install.contains("bash-completion"), "{install}");
    assert!(install.contains("MANPATH"), "{install}");
    // The completion and manual-page loop, run as written in an empty home directory.
    let block: String = install
        .split("To install them for bash and man")
        .nth(1)
        .unwrap()
        .lines()
        .skip_while(|line| !line.starts_with("    "))
        .take_while(|line| line.starts_with("    "))
        .map(|line| format!("{}\n", &line[4..]))
        .collect();
    let home = temp_dir("home");
    let out = Command::new("bash")
        .args(["-e", "-c", &block])
        .env("HOME", &home)
        .env("PATH", path_with_binaries())
        .output()
        .unwrap();
    assert!(out.status.success(), "{block}: {}", stderr(&out));
    for tool in ["bpfgen", "triage", "iptables-bpf"] {
        for file in [
            format!(".local/share/bash-completion/completions/{tool}"),
            format!(".local/share/man/man1/{tool}.1"),
        ] {
            let len = std::fs::metadata(home.join(&file)).map_or(0, |m| m.len());
            assert!(len > 100, "{file}: {len} bytes");
        }
    }
    let _ = std::fs::remove_dir_all(&home);
}
