//! parsedns on captures, stdin and hex; its typed report; bounded and streamed input.

use std::borrow::Cow;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use bpftools::dns::dissect::{LinkLayer, Network, Origin, RecordBody, Report, Transport};
use simple_dns::rdata::{RData, A, MX, OPT};
use simple_dns::{Name, Packet, Question, ResourceRecord, CLASS, TYPE};

use crate::common::{bin, capture, run, stderr, stdout, CAPTURES};
use crate::packets::{ethernet, udp_packet, Shape};

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// A response built with simple-dns: `www.example.net A`, answers A 192.0.2.2 and
/// MX 10 mail.example.net, and EDNS (udp size 1232) with a cookie.
fn response() -> Vec<u8> {
    let name = Name::new_unchecked("www.example.net");
    let mut packet = Packet::new_reply(0x4242);
    packet.questions.push(Question::new(
        name.clone(),
        TYPE::A.into(),
        CLASS::IN.into(),
        false,
    ));
    packet.answers.push(ResourceRecord::new(
        name.clone(),
        CLASS::IN,
        300,
        RData::A(A {
            address: 0xc000_0202,
        }),
    ));
    packet.answers.push(ResourceRecord::new(
        Name::new_unchecked("example.net"),
        CLASS::IN,
        60,
        RData::MX(MX {
            preference: 10,
            exchange: Name::new_unchecked("mail.example.net"),
        }),
    ));
    *packet.opt_mut() = Some(OPT {
        opt_codes: vec![simple_dns::rdata::OPTCode {
            code: 10,
            data: Cow::Owned(vec![1, 2, 3, 4, 5, 6, 7, 8]),
        }],
        udp_packet_size: 1232,
        version: 0,
    });
    packet.build_bytes_vec_compressed().expect("response")
}

#[test]
fn parsedns_reads_captures_from_files_and_stdin_with_numbers_and_times() {
    for name in CAPTURES {
        let path = capture(name);
        let path = path.to_str().unwrap();
        let from_file = run("parsedns", &[path], b"");
        assert!(from_file.status.success(), "{name}: {}", stderr(&from_file));
        // Binary stdin, with and without '-'.
        let bytes = std::fs::read(path).unwrap();
        let from_stdin = run("parsedns", &[], &bytes);
        let from_dash = run("parsedns", &["-"], &bytes);
        assert!(
            from_stdin.status.success(),
            "{name}: {}",
            stderr(&from_stdin)
        );
        assert_eq!(stdout(&from_file), stdout(&from_stdin), "{name}");
        assert_eq!(stdout(&from_file), stdout(&from_dash), "{name}");
        let text = stdout(&from_file);
        assert!(!text.contains("error"), "{name}: {}", &text[..800]);
        // Every report starts with its packet number, in order, and a time.
        let firsts: Vec<&str> = text
            .split("\n\n")
            .filter(|r| !r.is_empty())
            .map(|r| r.lines().next().unwrap())
            .collect();
        assert!(firsts.len() >= 616, "{name}: {} reports", firsts.len());
        for (i, first) in firsts.iter().enumerate() {
            assert!(
                first.starts_with(&format!("packet {} time 17", i + 1)),
                "{name}: {first}"
            );
        }
    }
    // The times are the capture's (as `tcpdump -tt` prints them), to the nanosecond in pcapng.
    let first = |name: &str| {
        let out = run("parsedns", &[capture(name).to_str().unwrap()], b"");
        stdout(&out).lines().next().unwrap().to_string()
    };
    assert_eq!(
        first("any-sll1.pcap"),
        "packet 1 time 1795348408.188334000 length 100"
    );
    assert_eq!(
        first("eth-flood.pcapng"),
        "packet 1 time 1795348411.571696693 length 98"
    );
}

#[test]
fn capture_and_hex_give_the_same_dns_report() {
    // pcap2hex normalizes every link type to Ethernet: the IP, UDP and DNS layers must read
    // the same from the capture (with its own link layer) and from the hex lines.
    for name in CAPTURES {
        let path = capture(name);
        let path = path.to_str().unwrap();
        let hex = run("pcap2hex", &[path], b"");
        let from_hex = json_lines(&stdout(&run("parsedns", &["--json"], &hex.stdout)));
        let from_capture = json_lines(&stdout(&run("parsedns", &["--json", path], b"")));
        assert_eq!(from_hex.len(), from_capture.len(), "{name}");
        for (i, (h, c)) in from_hex.iter().zip(&from_capture).enumerate() {
            assert_eq!(h["line"], i + 1, "{name}");
            assert_eq!(c["packet"], i + 1, "{name}");
            assert!(c["time"].as_str().unwrap().starts_with("17"), "{name}");
            for layer in ["l3", "l4", "dns"] {
                assert_eq!(h[layer], c[layer], "{name} packet {}: {layer}", i + 1);
            }
            assert!(c["dns"]["questions"].is_array(), "{name}");
        }
        // With pcap2hex's timestamp column, the hex lines carry the capture's times.
        let timed = run("pcap2hex", &["-t", path], b"");
        let from_timed = json_lines(&stdout(&run("parsedns", &["--json"], &timed.stdout)));
        for (t, c) in from_timed.iter().zip(&from_capture) {
            assert_eq!(t["time"], c["time"], "{name}");
            assert_eq!(t["dns"], c["dns"], "{name}");
        }
        // The link layer is the capture's own.
        let l2 = &from_capture[0]["l2"]["type"];
        let expected = match name {
            "any-sll1.pcap" => "sll",
            "any-sll2.pcap" => "sll2",
            _ => "ethernet",
        };
        assert_eq!(l2, expected, "{name}");
    }
    let vlan = run(
        "parsedns",
        &[capture("eth-vlan.pcap").to_str().unwrap()],
        b"",
    );
    assert!(stdout(&vlan).contains("(1 vlan tags)"), "{}", stdout(&vlan));
}

#[test]
fn the_typed_report_of_a_built_response() {
    let dns = response();
    for shape in [Shape::V4, Shape::V6] {
        let frame = ethernet(&udp_packet(&dns, shape));
        let report = Report::of_frame(1, &frame);
        assert_eq!(report.error, None);
        assert_eq!(report.length, frame.len());
        assert!(matches!(
            report.l2,
            Some(LinkLayer::Ethernet { vlans: 0, .. })
        ));
        match (&report.l3, shape.v6) {
            (Some(Network::Ipv4 { protocol: 17, .. }), false) => {}
            (
                Some(Network::Ipv6 {
                    next_header: 17, ..
                }),
                true,
            ) => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(
            report.l4,
            Some(Transport::Udp {
                src_port: 40000,
                dst_port: 53,
                length: (8 + dns.len()) as u16
            })
        );
        let d = report.dns.as_ref().unwrap();
        assert_eq!(d.error, None);
        let header = d.header.as_ref().unwrap();
        assert_eq!(
            (header.id, header.counts.an, header.counts.ar),
            (0x4242, 2, 1)
        );
        assert_eq!(header.flags, ["qr"]);
        assert_eq!(d.questions[0].name, "www.example.net.");
        assert_eq!(d.records.len(), 3);
        assert_eq!(
            d.records[1].body,
            RecordBody::Data {
                class: "IN".into(),
                ttl: 60,
                data: "10 mail.example.net.".into()
            }
        );
        let RecordBody::Edns { edns } = &d.records[2].body else {
            panic!("{:?}", d.records[2])
        };
        assert_eq!((edns.udp_size, edns.options.len()), (1232, 1));
        assert_eq!(edns.options[0].value, "client 0102030405060708");
        // The two renderings of the same report.
        let text = report.to_string();
        assert!(
            text.contains("answer: www.example.net. A IN ttl 300 192.0.2.2\n"),
            "{text}"
        );
        assert!(
            text.contains("  edns option COOKIE (10): client 0102030405060708\n"),
            "{text}"
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["dns"]["records"][0]["data"], "192.0.2.2");
        assert_eq!(json["dns"]["records"][2]["edns"]["udp_size"], 1232);
        assert_eq!(json["l4"]["type"], "udp");
        // Through the tool, from an argument.
        let out = run("parsedns", &[&hex::encode(&frame)], b"");
        assert_eq!(
            stdout(&out),
            format!(
                "{}\n",
                Report {
                    origin: Some(Origin::Argument { argument: 1 }),
                    ..report.clone()
                }
            )
        );
    }
}

#[test]
fn truncated_messages_and_compression_loops_are_reported_with_their_place() {
    let dns = response();
    // Every cut of the message: a report with a DNS error, never a failure.
    for len in 0..dns.len() {
        let frame = ethernet(&udp_packet(&dns[..len], Shape::V4));
        let report = Report::of_frame(1, &frame);
        let error = report.dns.unwrap().error;
        assert!(error.is_some(), "cut at {len}: no error");
    }
    // Answer owner names that point at themselves, or forwards to each other.
    let mut looping = dns.clone();
    let question_end = 12 + "\x03www\x07example\x03net\x00".len() + 4;
    looping[question_end] = 0xc0;
    looping[question_end + 1] = question_end as u8;
    let frame = ethernet(&udp_packet(&looping, Shape::V6));
    let out = run("parsedns", &["--json", &hex::encode(&frame)], b"");
    assert!(out.status.success(), "{}", stderr(&out));
    let report = &json_lines(&stdout(&out))[0];
    assert_eq!(
        report["dns"]["error"],
        format!(
            "at byte offset {question_end} of the DNS message: compression pointer to offset {question_end} does not point backwards: a loop or a forward reference"
        )
    );
    assert_eq!(report["dns"]["questions"][0]["name"], "www.example.net.");
}

#[test]
fn parsedns_reads_hex_files_and_names_bad_inputs() {
    let dir = std::env::temp_dir().join(format!("parsedns-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let frame = ethernet(&udp_packet(&response(), Shape::V4));
    // Comments, blank lines and a non-UTF-8 text column after a tab are skipped.
    let mut hex_file = b"# packets\n\n".to_vec();
    hex_file.extend_from_slice(hex::encode(&frame).as_bytes());
    hex_file.extend_from_slice(b"\t\xff\xfe not UTF-8\r\n");
    let path = dir.join("one.hex");
    std::fs::write(&path, &hex_file).unwrap();
    let out = run("parsedns", &[path.to_str().unwrap()], b"");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with(&format!("line 3 length {}\nl2: ethernet", frame.len())),
        "{}",
        stdout(&out)
    );
    // A file, then a packet given as hex, then stdin.
    let out = run(
        "parsedns",
        &[path.to_str().unwrap(), &hex::encode(&frame), "-"],
        &hex_file,
    );
    let text = stdout(&out);
    let firsts: Vec<&str> = text
        .split("\n\n")
        .filter(|r| !r.is_empty())
        .map(|r| r.lines().next().unwrap())
        .collect();
    let length = frame.len();
    assert_eq!(
        firsts,
        [
            format!("line 3 length {length}"),
            format!("argument 2 length {length}"),
            format!("line 3 length {length}")
        ]
    );
    for (input, args, expected) in [
        (
            b"00\xff11\n".to_vec(),
            vec![],
            "parsedns: <stdin>: line 1: column 3: byte 0xff is not a hex digit\n",
        ),
        (
            b"0011\nzz\n".to_vec(),
            vec![],
            "parsedns: <stdin>: line 2: column 1: 'z' is not a hex digit\n",
        ),
        (
            Vec::new(),
            vec!["no-such-capture.pcap"],
            "parsedns: cannot open 'no-such-capture.pcap': No such file or directory (os error 2)\n",
        ),
        // A pcap cut in its file header, and one cut in a record.
        (
            vec![0xd4, 0xc3],
            vec![],
            "parsedns: <stdin>: packet 1, byte offset 0: truncated file header\n",
        ),
    ] {
        let out = run("parsedns", &args, &input);
        assert_eq!(out.status.code(), Some(2), "{expected}");
        assert_eq!(stderr(&out), expected);
    }
    let capture_bytes = std::fs::read(capture("eth-flood-v4.pcap")).unwrap();
    let cut = dir.join("cut.pcap");
    std::fs::write(&cut, &capture_bytes[..24 + 16 + 98 + 20]).unwrap();
    let out = run("parsedns", &[cut.to_str().unwrap()], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with(&format!(
            "parsedns: {}: packet 2, byte offset 138: truncated record",
            cut.display()
        )),
        "{}",
        stderr(&out)
    );
    // The packet before the damage is reported.
    assert!(
        stdout(&out).starts_with("packet 1 time"),
        "{}",
        stdout(&out)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn endless_lines_are_refused_at_the_cap() {
    // 2 MiB of zero bytes with no newline (as `parsedns < /dev/zero` reads): refused at the
    // cap, before the line is held whole.
    let out = run("parsedns", &[], &vec![0u8; 2 << 20]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        "parsedns: <stdin>: line 1: longer than 1048640 bytes (the hex of a 262144-byte packet with separators and an ASCII column fits in it)\n"
    );
    // The same after a good line, which is reported first.
    let frame = ethernet(&udp_packet(&response(), Shape::V4));
    let mut input = format!("{}\n", hex::encode(&frame)).into_bytes();
    input.extend(std::iter::repeat_n(b'0', (1 << 20) + 66));
    let out = run("parsedns", &[], &input);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with("parsedns: <stdin>: line 2: longer than"),
        "{}",
        stderr(&out)
    );
    assert!(
        stdout(&out).starts_with("line 1 length"),
        "{}",
        stdout(&out)
    );
    // Within the cap but more bytes than a pcap holds.
    let big = "00".repeat(262_145);
    let out = run("parsedns", &[], big.as_bytes());
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        "parsedns: <stdin>: line 1: a packet of 262145 bytes, more than the 262144 a pcap file holds\n"
    );
    // The largest packet a pcap holds, written with separators, is read.
    let largest = "00 ".repeat(262_144);
    let out = run("parsedns", &[], largest.as_bytes());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("line 1 length 262144\n"),
        "{}",
        &stdout(&out)[..100]
    );
}

/// Runs parsedns with a pipe as stdin, writes `first`, and returns the first report it
/// prints while stdin is still open (None if nothing comes within 20 seconds).
fn first_report_while_input_is_open(args: &[&str], first: &[u8]) -> Option<String> {
    let mut child = Command::new(bin("parsedns"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("parsedns");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(first).unwrap();
    stdin.flush().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        let mut report = String::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap_or_default();
            if line.is_empty() {
                break;
            }
            report.push_str(&line);
            report.push('\n');
        }
        let _ = send.send(report);
    });
    let report = receive.recv_timeout(Duration::from_secs(20)).ok();
    drop(stdin);
    let _ = child.kill();
    let _ = child.wait();
    report
}

#[test]
fn each_packet_is_reported_as_it_is_read() {
    // Hex: one line written, stdin left open.
    let frame = ethernet(&udp_packet(&response(), Shape::V4));
    let report =
        first_report_while_input_is_open(&[], format!("{}\n", hex::encode(&frame)).as_bytes())
            .expect("no report while the input is open");
    assert!(report.starts_with("line 1 length"), "{report}");
    assert!(
        report.contains("question: www.example.net. A IN"),
        "{report}"
    );
    // A capture: its header and first packet written, stdin left open.
    let bytes = std::fs::read(capture("eth-flood-v4.pcap")).unwrap();
    let report = first_report_while_input_is_open(&["-"], &bytes[..24 + 16 + 98])
        .expect("no report while the input is open");
    assert!(report.starts_with("packet 1 time"), "{report}");
    assert!(
        report.contains("question: www.example.net. A IN"),
        "{report}"
    );
}

#[test]
fn cooked_captures_from_the_loopback_device_are_read() {
    // Linux cooked v1 with hardware type 772 (loopback), as `tcpdump -i any` writes DNS to a
    // local resolver; and SLL2 and BSD loopback with the same packet.
    let mut ip = Vec::new();
    etherparse::PacketBuilder::ipv4([127, 0, 0, 1], [127, 0, 0, 53], 64)
        .udp(40000, 53)
        .write(&mut ip, &response())
        .unwrap();
    let mut sll = vec![0, 4, 3, 4, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x00];
    sll.extend_from_slice(&ip);
    let mut sll2 = vec![0x08, 0x00, 0, 0, 0, 0, 0, 1, 3, 4, 4, 6];
    sll2.extend_from_slice(&[0; 8]);
    sll2.extend_from_slice(&ip);
    let mut null = 2u32.to_le_bytes().to_vec();
    null.extend_from_slice(&ip);
    for (linktype, frame, l2) in [
        (
            113,
            sll,
            "l2: linux cooked from 00:00:00:00:00:00 type 0x0800 packet type 4",
        ),
        (
            276,
            sll2,
            "l2: linux cooked v2 from 00:00:00:00:00:00 type 0x0800 interface 1 packet type 4",
        ),
        (0, null, "l2: loopback family 2"),
    ] {
        let mut writer = bpftools::pcap::Writer::new(Vec::new(), linktype, false).unwrap();
        writer.write(Duration::from_secs(1), 0, &frame).unwrap();
        let out = run("parsedns", &["-"], &writer.into_inner());
        assert!(out.status.success(), "{}", stderr(&out));
        let text = stdout(&out);
        assert!(
            text.starts_with(&format!(
                "packet 1 time 1.000000000 length {}\n{l2}\nl3: ipv4 127.0.0.1 -> 127.0.0.53",
                frame.len()
            )),
            "{linktype}: {text}"
        );
        assert!(text.contains("question: www.example.net. A IN"), "{text}");
        assert!(!text.contains("error"), "{text}");
    }
}
