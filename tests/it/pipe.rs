//! pcap2hex, hex2pcap, parsedns and filter on the real captures and on broken inputs.

use std::process::Command;

use crate::common::{capture, reference, require, run, stderr, stdout, CAPTURES};

fn read(path: &std::path::Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn pcap2hex_hex2pcap_round_trip_is_stable_and_normalized() {
    for name in CAPTURES {
        let first = run("pcap2hex", &[capture(name).to_str().unwrap()], b"");
        assert!(first.status.success(), "{name}: {}", stderr(&first));
        let pcap = run("hex2pcap", &[], &first.stdout);
        assert!(pcap.status.success(), "{name}: {}", stderr(&pcap));
        let second = run("pcap2hex", &["-"], &pcap.stdout);
        assert_eq!(stdout(&first), stdout(&second), "{name}: not stable");
        let lines: Vec<&str> = std::str::from_utf8(&first.stdout)
            .unwrap()
            .lines()
            .collect();
        assert!(lines.len() > 600, "{name}: {} packets", lines.len());
        for line in lines {
            let bytes = hex::decode(line).unwrap();
            // Plain Ethernet: IP at 14 with the right ethertype.
            let ethertype = u16::from_be_bytes([bytes[12], bytes[13]]);
            let version = bytes[14] >> 4;
            assert!(
                (ethertype == 0x0800 && version == 4) || (ethertype == 0x86dd && version == 6),
                "{name}: ethertype {ethertype:#06x} with IP version {version}"
            );
        }
    }
}

/// From the IP header on, with the UDP checksum zeroed (tcprewrite recomputed it when it added
/// the VLAN tag; the flood capture kept the offloaded partial sums).
fn ip_without_udp_checksum(line: &str) -> String {
    let mut bytes = hex::decode(&line[28..]).unwrap();
    if bytes[0] >> 4 == 4 {
        let ihl = usize::from(bytes[0] & 0xf) * 4;
        bytes[ihl + 6] = 0;
        bytes[ihl + 7] = 0;
    }
    hex::encode(bytes)
}

#[test]
fn vlan_twin_normalizes_to_the_same_ip_packets() {
    let ip_part = |name: &str| -> Vec<String> {
        let out = run("pcap2hex", &[capture(name).to_str().unwrap()], b"");
        stdout(&out).lines().map(ip_without_udp_checksum).collect()
    };
    assert_eq!(
        ip_part("eth-vlan.pcap"),
        ip_part("eth-flood-v4.pcap"),
        "VLAN tag removed, same packets"
    );
    assert_eq!(ip_part("eth-flood.pcapng").len(), 616);
    assert_eq!(
        ip_part("any-sll2.pcap").len(),
        ip_part("any-sll1.pcap").len()
    );
}

#[test]
fn ascii_and_scrub() {
    let out = run(
        "pcap2hex",
        &["--ascii", capture("eth-flood-v4.pcap").to_str().unwrap()],
        b"",
    );
    let first = stdout(&out).lines().next().unwrap().to_string();
    let (hex_part, text) = first.split_once('\t').unwrap();
    assert_eq!(text.len() * 2, hex_part.len());
    assert!(text.contains("www.example.net"), "{text}");
    let plain = run(
        "pcap2hex",
        &[capture("eth-flood-v4.pcap").to_str().unwrap()],
        b"",
    );
    let scrubbed = run(
        "pcap2hex",
        &["--scrub", capture("eth-flood-v4.pcap").to_str().unwrap()],
        b"",
    );
    let again = run(
        "pcap2hex",
        &["-s", capture("eth-flood-v4.pcap").to_str().unwrap()],
        b"",
    );
    assert_eq!(
        stdout(&scrubbed),
        stdout(&again),
        "scrubbing is deterministic"
    );
    for (p, s) in stdout(&plain).lines().zip(stdout(&scrubbed).lines()) {
        assert_eq!(p.len(), s.len(), "lengths kept");
        assert_ne!(p, s);
        assert!(
            !s.contains("076578616d706c65"),
            "the name 'example' is gone: {s}"
        );
    }
    // Structure kept: parsedns still reads every scrubbed packet, tcpdump finds valid checksums.
    let report = run("parsedns", &[], &scrubbed.stdout);
    assert!(report.status.success());
    assert!(
        !stdout(&report).contains("error"),
        "{}",
        &stdout(&report)[..500]
    );
}

#[test]
fn parsedns_reports_layers_edns_and_json() {
    let hex = run(
        "pcap2hex",
        &[capture("eth-flood-v4.pcap").to_str().unwrap()],
        b"",
    );
    let first_lines: String = stdout(&hex)
        .lines()
        .take(12)
        .map(|l| format!("{l}\n"))
        .collect();
    let out = run("parsedns", &[], first_lines.as_bytes());
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for want in [
        "l2: ethernet ",
        "l3: ipv4 10.53.0.1 -> 10.53.0.2",
        "l4: udp ",
        "question: www.example.net. A IN",
        "answer: www.example.net. A IN ttl 300 192.0.2.2",
        "edns option COOKIE (10): client ",
        "question: WWW.EXAMPLE.NET. AAAA IN",
        "do true",
        "edns option NSID (3)",
        "answer: example.net. MX IN ttl 300 10 mail.example.net.",
    ] {
        assert!(text.contains(want), "missing '{want}' in\n{text}");
    }
    // Client subnet (ECS) with its address somewhere in the capture.
    let all = run("parsedns", &["--json"], &hex.stdout);
    let json = stdout(&all);
    assert!(
        json.contains("\"name\":\"CLIENT-SUBNET\""),
        "no ECS option found"
    );
    for line in json.lines().take(50) {
        let value: serde_json::Value =
            serde_json::from_str(line).expect("one JSON object per line");
        assert!(value["dns"]["questions"].is_array());
    }
}

#[test]
fn parsedns_stops_at_a_pointer_loop_with_the_place() {
    // IPv4/UDP/DNS whose question name is a pointer to itself (offset 12).
    let mut dns = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    dns.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]);
    let packet = crate::packets::udp_packet(&dns, crate::packets::Shape::V4);
    let out = run("parsedns", &[&hex::encode(&packet)], b"");
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(text.contains("l4: udp 40000 -> 53"), "{text}");
    assert!(
        text.contains("dns error: at byte offset 12 of the DNS message: compression pointer"),
        "{text}"
    );
}

/// True when the first question of a normalized frame (hex) is `<label>.www.example.net`.
fn is_flood(line: &str, v6: bool) -> bool {
    if (&line[24..28] == "86dd") != v6 {
        return false;
    }
    let report = bpftools::dns::dissect::report(&hex::decode(line).unwrap());
    let name = report["dns"]["questions"][0]["name"]
        .as_str()
        .unwrap_or("")
        .to_string();
    name.ends_with(".www.example.net.") && name.len() > ".www.example.net.".len()
}

#[test]
fn filter_l3_keeps_exactly_the_matching_packets_on_every_link_type() {
    let program = stdout(&run("bpfgen", &["dns", "--", "*.www.example.net"], b""));
    let counts = std::fs::read_to_string(reference("filter-original-counts.tsv")).unwrap();
    assert!(counts.contains("eth-flood-v4.pcap\t-o 14 dns -- *.www.example.net\t6000\t6032"));
    assert!(counts.contains("eth-vlan.pcap\t-o 18 dns -- *.www.example.net\t6000\t6032"));
    assert!(counts.contains("any-sll1.pcap\t-o 16 dns -- *.www.example.net\t600\t616"));
    let program6 = stdout(&run(
        "bpfgen",
        &["-6", "dns", "--", "*.www.example.net"],
        b"",
    ));
    for (name, v6, expected) in [
        ("eth-flood-v4.pcap", false, 6000),
        ("eth-vlan.pcap", false, 6000),
        ("any-sll1.pcap", false, 600),
        // Not handled by the original: the same count as their twins.
        ("any-sll2.pcap", false, 600),
        ("eth-flood.pcapng", false, 600),
        ("eth-flood-v6.pcap", false, 0),
        ("eth-flood-v6.pcap", true, 1000),
    ] {
        let program = if v6 { &program6 } else { &program };
        let out = run(
            "filter",
            &[
                "--l3",
                "-v",
                "-b",
                program.trim(),
                capture(name).to_str().unwrap(),
            ],
            b"",
        );
        assert_eq!(
            out.status.code(),
            Some(if expected > 0 { 0 } else { 1 }),
            "{name}: {}",
            stderr(&out)
        );
        assert!(
            stderr(&out).contains(&format!("matched {expected}/")),
            "{name}: {}",
            stderr(&out)
        );
        let kept = run("pcap2hex", &["-"], &out.stdout);
        let mut kept: Vec<String> = stdout(&kept).lines().map(str::to_string).collect();
        // Exactly the packets whose first question matches, decided independently.
        let all = run("pcap2hex", &[capture(name).to_str().unwrap()], b"");
        let mut want: Vec<String> = stdout(&all)
            .lines()
            .filter(|l| is_flood(l, v6))
            .map(str::to_string)
            .collect();
        kept.sort();
        want.sort();
        assert_eq!(kept.len(), expected, "{name}");
        assert!(
            kept == want,
            "{name}: kept packets differ from the matching ones"
        );
    }
}

#[test]
fn filter_output_is_read_by_tcpdump_with_link_type_and_timestamps() {
    require("tcpdump", "tcpdump");
    let dir = std::env::temp_dir().join(format!("bpftools-filter-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, linktype, expr) in [
        ("any-sll2.pcap", "LINUX_SLL2", "udp dst port 53"),
        ("eth-vlan.pcap", "EN10MB", "vlan and udp dst port 53"),
        ("eth-flood.pcapng", "EN10MB", "udp dst port 53"),
    ] {
        let out = run(
            "filter",
            &["-e", expr, capture(name).to_str().unwrap()],
            b"",
        );
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let path = dir.join(format!("{name}.out.pcap"));
        std::fs::write(&path, &out.stdout).unwrap();
        let ours = Command::new("tcpdump")
            .args(["-nn", "-tt", "-r"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(ours.status.success());
        let ours_err = String::from_utf8_lossy(&ours.stderr);
        assert!(
            ours_err.contains(&format!("link-type {linktype}")),
            "{name}: {ours_err}"
        );
        // No warning beyond those tcpdump gives for the input itself (SLL2 files always get
        // "interface names might be incorrect").
        let input_err = String::from_utf8_lossy(
            &Command::new("tcpdump")
                .args(["-nn", "-r"])
                .arg(capture(name))
                .output()
                .unwrap()
                .stderr,
        )
        .to_string();
        for line in ours_err
            .lines()
            .filter(|l| l.to_lowercase().contains("warning"))
        {
            assert!(input_err.contains(line), "{name}: new warning '{line}'");
        }
        // Same packets and timestamps as tcpdump's own filtering of the input.
        let theirs = Command::new("tcpdump")
            .args(["-nn", "-tt", "-r"])
            .arg(capture(name))
            .arg(expr)
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&ours.stdout),
            String::from_utf8_lossy(&theirs.stdout),
            "{name}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn pcap_header() -> Vec<u8> {
    let mut h = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    h.extend_from_slice(&65535u32.to_le_bytes());
    h.extend_from_slice(&1u32.to_le_bytes());
    h
}

fn record(len: u32, data: &[u8]) -> Vec<u8> {
    let mut r = vec![0u8; 8];
    r.extend_from_slice(&len.to_le_bytes());
    r.extend_from_slice(&len.to_le_bytes());
    r.extend_from_slice(data);
    r
}

#[test]
fn broken_captures_give_one_clear_error_after_the_good_packets() {
    let good = read(&capture("eth-flood-v4.pcap"));
    let packet = &good[24 + 16..24 + 16 + 90];
    let mut truncated_record = pcap_header();
    truncated_record.extend(record(90, packet));
    truncated_record.extend(record(90, &packet[..40]));
    let mut huge = pcap_header();
    huge.extend(record(90, packet));
    huge.extend(record(300 << 20, &packet[..10]));
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", vec![], "packet 1, byte offset 0: empty input"),
        (
            "wrong magic",
            b"GIF89a not a capture at all".to_vec(),
            "not a capture file: magic 47494638",
        ),
        (
            "truncated header",
            good[..10].to_vec(),
            "truncated file header",
        ),
        (
            "truncated record",
            truncated_record,
            "packet 2, byte offset 130: truncated record",
        ),
        (
            "huge caplen",
            huge,
            "packet 2, byte offset 130: record claims 314572816 bytes",
        ),
    ];
    for (what, data, message) in cases {
        for tool in ["pcap2hex", "filter"] {
            let args: &[&str] = if tool == "filter" {
                &["-b", "1,6 0 0 65535"]
            } else {
                &[]
            };
            let out = run(tool, args, &data);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{tool} {what}: {}",
                stderr(&out)
            );
            let err = stderr(&out);
            assert_eq!(err.lines().count(), 1, "{tool} {what}: {err}");
            assert!(
                err.starts_with(&format!("{tool}: ")) && err.contains(message),
                "{tool} {what}: {err}"
            );
        }
    }
    // The packets before the damage are processed.
    let mut partial = pcap_header();
    partial.extend(record(90, packet));
    partial.extend(record(90, &packet[..40]));
    let out = run("pcap2hex", &[], &partial);
    assert_eq!(stdout(&out).lines().count(), 1);
    // filter -v counts the packets before the damage, then gives the error.
    let out = run("filter", &["-v", "-b", "1,6 0 0 65535"], &partial);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert_eq!(lines[0], "filter: matched 1/1 packets before the error");
    assert!(
        lines[1].contains("packet 2, byte offset 130: truncated record"),
        "{err}"
    );
    // With no packet read, the error is the only line.
    let out = run(
        "filter",
        &["-v", "-b", "1,6 0 0 65535"],
        b"GIF89a not a capture",
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
}

#[test]
fn bad_hex_lines_name_the_line() {
    let out = run("hex2pcap", &[], b"# comment\n0011\n001\n");
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "no half-written output");
    assert!(
        stderr(&out).contains("line 3: 3 hex digits: expected an even number"),
        "{}",
        stderr(&out)
    );
    let out = run("hex2pcap", &[], b"00zz\n");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("line 1: column 3: 'z' is not a hex digit"),
        "{}",
        stderr(&out)
    );
    let out = run("parsedns", &["00112"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("argument 1: bad packet hex: 5 digits"),
        "{}",
        stderr(&out)
    );
    // Comments, blank lines and text after a tab are ignored; timestamps step.
    let out = run(
        "hex2pcap",
        &["--ts-step", "0.5"],
        b"; note\n\n0011223344556677889900112233\tascii\n0011223344556677889900112233\n",
    );
    assert!(out.status.success());
    let back = run("pcap2hex", &["-n"], &out.stdout);
    assert_eq!(stdout(&back).lines().count(), 2);
}

#[test]
fn a_closed_pipe_ends_the_tools_quietly() {
    // Large outputs: the hex of the flood, and its DNS report.
    let hex_lines = stdout(&run(
        "pcap2hex",
        &[capture("eth-flood-v4.pcap").to_str().unwrap()],
        b"",
    ));
    let cases: [(&str, Vec<String>, Vec<u8>); 2] = [
        (
            "pcap2hex",
            vec![capture("eth-flood-v4.pcap").to_str().unwrap().to_string()],
            Vec::new(),
        ),
        ("parsedns", Vec::new(), hex_lines.into_bytes()),
    ];
    for (tool, args, input) in cases {
        let mut child = Command::new(crate::common::bin(tool))
            .args(&args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let feeder = std::thread::spawn(move || {
            use std::io::Write;
            let _ = stdin.write_all(&input);
        });
        // Read one line, then close the pipe, as `| head -1` does.
        {
            use std::io::BufRead;
            let stdout = child.stdout.take().unwrap();
            let mut line = String::new();
            std::io::BufReader::new(stdout)
                .read_line(&mut line)
                .unwrap();
            assert!(!line.is_empty());
        }
        let out = child.wait_with_output().unwrap();
        feeder.join().unwrap();
        assert_eq!(out.status.code(), Some(0), "{tool}: {}", stderr(&out));
        assert!(out.stderr.is_empty(), "{tool}: {}", stderr(&out));
    }
}

#[test]
fn filter_validates_the_program_first() {
    let out = run("filter", &["-b", "1,6 0 0 0"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("empty input"), "{}", stderr(&out));
    let out = run(
        "filter",
        &[
            "-b",
            "2,96 0 0 3,22 0 0 0",
            capture("eth-flood-v4.pcap").to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("instruction 0 (ld M[3]): reads M[3]"),
        "{}",
        stderr(&out)
    );
    assert!(out.stdout.is_empty());
    let out = run(
        "filter",
        &[
            "--invert",
            "-v",
            "-b",
            "1,6 0 0 65535",
            capture("any-sll1.pcap").to_str().unwrap(),
        ],
        b"",
    );
    // Everything matched, so --invert keeps nothing: exit 1, like grep -v with no line left.
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("kept (not matched) 0/616"),
        "{}",
        stderr(&out)
    );
    let back = run("pcap2hex", &["-"], &out.stdout);
    assert_eq!(
        stdout(&back).lines().count(),
        0,
        "--invert keeps what did not match"
    );
    let out = run(
        "filter",
        &[
            "--invert",
            "-v",
            "-b",
            "1,6 0 0 0",
            capture("any-sll1.pcap").to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("kept (not matched) 616/616"),
        "{}",
        stderr(&out)
    );
    let back = run("pcap2hex", &["-"], &out.stdout);
    assert_eq!(stdout(&back).lines().count(), 616);
}

#[test]
fn pcapng_with_interfaces_of_different_link_types() {
    use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
    use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionBlock;
    use pcap_file::pcapng::PcapNgWriter;
    use pcap_file::DataLink;
    use std::borrow::Cow;
    use std::time::Duration;

    let l3 = crate::packets::udp_packet(
        &crate::packets::dns_query(&crate::packets::labels("a.www.example.net"), 1),
        crate::packets::Shape::V4,
    );
    let eth = crate::packets::ethernet(&l3);
    let mut writer = PcapNgWriter::new(Vec::new()).unwrap();
    for linktype in [DataLink::ETHERNET, DataLink::IPV4] {
        writer
            .write_pcapng_block(InterfaceDescriptionBlock {
                linktype,
                snaplen: 0,
                options: vec![],
            })
            .unwrap();
    }
    for (interface, data) in [(0u32, &eth), (1, &l3), (0, &eth)] {
        writer
            .write_pcapng_block(EnhancedPacketBlock {
                interface_id: interface,
                timestamp: Duration::from_secs(1),
                original_len: data.len() as u32,
                data: Cow::Borrowed(data),
                options: vec![],
            })
            .unwrap();
    }
    let file = writer.into_inner();
    // pcap2hex normalizes each packet by its own interface's link type.
    let out = run("pcap2hex", &[], &file);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(
        &lines[1][24..],
        &lines[0][24..],
        "raw IPv4 becomes the same Ethernet payload"
    );
    // filter writes one link type: a clear error names the packet that does not fit.
    let out = run("filter", &["-b", "1,6 0 0 65535"], &file);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("packet 2: raw IPv4 differs from the Ethernet of earlier packets"),
        "{}",
        stderr(&out)
    );
}

/// A classic pcap with the given magic and byte order, link type, and records.
fn classic_pcap(
    big_endian: bool,
    nanoseconds: bool,
    linktype: u32,
    records: &[(u32, u32, &[u8])],
) -> Vec<u8> {
    let u32b = |v: u32| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let u16b = |v: u16| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let mut out = Vec::new();
    out.extend_from_slice(&u32b(if nanoseconds {
        0xa1b2_3c4d
    } else {
        0xa1b2_c3d4
    }));
    out.extend_from_slice(&u16b(2));
    out.extend_from_slice(&u16b(4));
    out.extend_from_slice(&u32b(0));
    out.extend_from_slice(&u32b(0));
    out.extend_from_slice(&u32b(65535));
    out.extend_from_slice(&u32b(linktype));
    for (secs, frac, data) in records {
        out.extend_from_slice(&u32b(*secs));
        out.extend_from_slice(&u32b(*frac));
        out.extend_from_slice(&u32b(data.len() as u32));
        out.extend_from_slice(&u32b(data.len() as u32));
        out.extend_from_slice(data);
    }
    out
}

#[test]
fn classic_pcap_in_both_byte_orders_and_resolutions_and_bsd_loopback() {
    let l3 = crate::packets::udp_packet(
        &crate::packets::dns_query(&crate::packets::labels("a.www.example.net"), 1),
        crate::packets::Shape::V4,
    );
    let eth = crate::packets::ethernet(&l3);
    let want = hex::encode(&eth[12..]);
    let mut null = 2u32.to_le_bytes().to_vec();
    null.extend_from_slice(&l3);
    let program = stdout(&run("bpfgen", &["dns", "--", "*.www.example.net"], b""));
    for (big, nanos, linktype, frame) in [
        (false, false, 1u32, &eth),
        (true, false, 1, &eth),
        (false, true, 1, &eth),
        (true, true, 1, &eth),
        (false, false, 0, &null),
        (false, false, 101, &l3),
    ] {
        let file = classic_pcap(
            big,
            nanos,
            linktype,
            &[(1_700_000_000, 123_456, frame), (1_700_000_001, 5, frame)],
        );
        let out = run("pcap2hex", &[], &file);
        assert!(
            out.status.success(),
            "big {big} ns {nanos} link {linktype}: {}",
            stderr(&out)
        );
        let lines: Vec<String> = stdout(&out).lines().map(|l| l[24..].to_string()).collect();
        assert_eq!(
            lines,
            vec![want.clone(), want.clone()],
            "big {big} ns {nanos} link {linktype}"
        );
        // filter keeps the link type and the timestamps at their resolution.
        let out = run("filter", &["--l3", "-b", program.trim()], &file);
        assert!(out.status.success(), "{}", stderr(&out));
        let mut reader = bpftools::pcap::Reader::new(&out.stdout[..]).unwrap();
        let first = reader.next_packet().unwrap().unwrap();
        assert_eq!(first.linktype, linktype);
        let expected_nanos = if nanos { 123_456 } else { 123_456_000 };
        assert_eq!(
            first.timestamp,
            std::time::Duration::new(1_700_000_000, expected_nanos)
        );
    }
}

#[test]
fn hex2pcap_refuses_what_pcap_cannot_hold_before_writing() {
    let big = format!("{}\n", "00".repeat(262_145));
    let cases: Vec<(Vec<&str>, Vec<u8>, &str)> = vec![
        (vec!["-t", "1e20"], b"00\n".to_vec(), "bad --ts-step"),
        (
            vec!["-t", "5e9"],
            b"00\n00\n".to_vec(),
            "timestamp of packet 2 would not fit",
        ),
        (vec![], big.into_bytes(), "line 1: a packet of 262145 bytes"),
        (vec![], b"  zz\n".to_vec(), "line 1: column 3: 'z'"),
    ];
    for (args, input, message) in cases {
        let out = run("hex2pcap", &args, &input);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{args:?}: partial output");
        assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
    }
    // '-' is standard input.
    let out = run("hex2pcap", &["-"], b"0011\n");
    assert!(out.status.success(), "{}", stderr(&out));
    let back = run("pcap2hex", &[], &out.stdout);
    assert_eq!(stdout(&back), "0011\n");
}

#[test]
fn records_longer_than_the_snap_length_are_read_as_libpcap_reads_them() {
    // Snap length 0 (some writers leave it unset) and 10 (smaller than the packets): libpcap
    // and tcpdump read every record of such files, so must we.
    let good = read(&capture("eth-flood-v4.pcap"));
    let packet = &good[24 + 16..24 + 16 + 90];
    for snaplen in [0u32, 10] {
        let mut file = pcap_header();
        file[16..20].copy_from_slice(&snaplen.to_le_bytes());
        file.extend(record(90, packet));
        file.extend(record(90, packet));
        let out = run("pcap2hex", &[], &file);
        assert!(out.status.success(), "snaplen {snaplen}: {}", stderr(&out));
        assert_eq!(stdout(&out).lines().count(), 2, "snaplen {snaplen}");
        assert_eq!(stdout(&out).lines().next().unwrap(), hex::encode(packet));
        let out = run("filter", &["-v", "-b", "1,6 0 0 65535"], &file);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert!(stderr(&out).contains("matched 2/2"), "{}", stderr(&out));
        // What filter writes is read back whole.
        let back = run("pcap2hex", &[], &out.stdout);
        assert_eq!(stdout(&back).lines().count(), 2);
    }
}

#[test]
fn parsedns_reads_raw_ip_whose_source_looks_like_an_ethertype() {
    use crate::packets::{dns_query, labels};
    let payload = dns_query(&labels("www.example.net"), 0x1234);
    // Source 8.0.8.8: bytes 12-13 of the IPv4 header are 08 00, the IPv4 ethertype.
    let builder = etherparse::PacketBuilder::ipv4([8, 0, 8, 8], [10, 0, 0, 2], 64).udp(12345, 53);
    let mut packet = Vec::new();
    builder.write(&mut packet, &payload).unwrap();
    let out = run("parsedns", &[&hex::encode(&packet)], b"");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let expected = format!(
        "argument 1 length {}\nl3: ipv4 8.0.8.8 -> 10.0.0.2",
        packet.len()
    );
    assert!(text.starts_with(&expected), "{text}");
    assert!(text.contains("question: www.example.net. A IN"), "{text}");
    // The same packet in an Ethernet frame is still read as Ethernet.
    let mut frame = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
    frame.extend_from_slice(&packet);
    let out = run("parsedns", &[&hex::encode(&frame)], b"");
    assert!(
        stdout(&out)
            .lines()
            .nth(1)
            .unwrap_or("")
            .starts_with("l2: ethernet"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn scrub_leaves_no_address_in_any_capture_normalized_or_not() {
    // The captures' hosts are 10.53.0.1 and 10.53.0.2 and the answers carry 192.0.2.2: none
    // of them may survive --scrub, with or without normalization (VLAN, SLL, SLL2, pcapng).
    for file in [
        "eth-flood-v4.pcap",
        "eth-vlan.pcap",
        "any-sll1.pcap",
        "any-sll2.pcap",
        "eth-flood.pcapng",
    ] {
        for args in [vec!["-s"], vec!["-n", "-s"]] {
            let mut all = args.clone();
            let path = capture(file);
            all.push(path.to_str().unwrap());
            let out = run("pcap2hex", &all, b"");
            assert!(out.status.success(), "{file} {args:?}: {}", stderr(&out));
            let text = stdout(&out);
            assert!(text.lines().count() > 100, "{file}");
            for secret in ["0a350001", "0a350002", "c0000202"] {
                assert!(
                    !text.contains(secret),
                    "{file} {args:?}: {secret} left in clear"
                );
            }
            // Without --scrub the same bytes are there: the check can fail.
            let plain: Vec<&str> = all.iter().copied().filter(|a| *a != "-s").collect();
            let plain = run("pcap2hex", &plain, b"");
            assert!(stdout(&plain).contains("0a350001"), "{file} {args:?}");
        }
    }
}

#[test]
fn small_input_edges() {
    // Two bytes of a pcap magic: a truncated header, not "not a capture".
    let out = run("pcap2hex", &[], &[0xd4, 0xc3]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("truncated file header"),
        "{}",
        stderr(&out)
    );
    // parsedns skips the comment lines hex2pcap skips.
    let out = run("parsedns", &[], b"; a comment\n   # another\n\n");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stdout.is_empty(), "{}", stdout(&out));
}
