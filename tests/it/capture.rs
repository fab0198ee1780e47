//! hex2pcap's streaming, bounds and input forms; captures other tools write (obsolete pcapng
//! blocks, DLT 12, FCS, far timestamps, non-UTF-8 options, huge records) read and written so
//! that tcpdump reads the output.

use std::borrow::Cow;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::blocks::packet::PacketBlock;
use pcap_file::pcapng::{Block, PcapNgWriter};
use pcap_file::DataLink;

use crate::common::{bin, capture, run, stderr, stdout};
use crate::packets::{dns_query, ethernet, labels, udp_packet, Shape};

/// Fails with a clear message when a tool the test needs as its oracle is missing.
fn require(tool: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "this test needs {tool} as its oracle: install it (apt-get install {tool})"
    );
}

fn temp_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bpftools-{what}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// What `tcpdump -r FILE` prints (stdout, stderr), asserting it read the file without error.
fn tcpdump_reads(path: &Path, extra: &[&str]) -> (String, String) {
    require("tcpdump");
    let out = Command::new("tcpdump")
        .args(["-nn", "-r"])
        .arg(path)
        .args(extra)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success(),
        "tcpdump refused {}: {err}",
        path.display()
    );
    assert!(
        !err.contains("truncated") && !err.contains("invalid") && !err.contains("bigger"),
        "tcpdump: {err}"
    );
    (String::from_utf8_lossy(&out.stdout).to_string(), err)
}

/// How many packets tcpdump reads in `path` (asserting it reads the file without error).
fn tcpdump_count(path: &Path) -> usize {
    let (text, _) = tcpdump_reads(path, &["--count"]);
    text.trim()
        .strip_suffix(" packets")
        .or_else(|| text.trim().strip_suffix(" packet"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("tcpdump --count printed '{text}'"))
}

/// A pcapng EPB timestamp of `secs` seconds in the default resolution (microseconds):
/// pcap-file takes the raw count as a Duration in nanoseconds.
fn raw_us(secs: u64) -> Duration {
    Duration::from_nanos(secs * 1_000_000)
}

fn dns_packet(name: &str, id: u16) -> Vec<u8> {
    udp_packet(&dns_query(&labels(name), id), Shape::V4)
}

/// `filter` with a program matching every packet, --l3 DNS program, or anything given.
fn filter(args: &[&str], input: &[u8]) -> std::process::Output {
    run("filter", args, input)
}

fn flood_program() -> String {
    stdout(&run("bpfgen", &["dns", "--", "*.www.example.net"], b""))
        .trim()
        .to_string()
}

/// A classic little-endian µs pcap with the given link-type field and records.
fn pcap_file(linktype_field: u32, snaplen: u32, records: &[(u32, &[u8])]) -> Vec<u8> {
    let mut out = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    out.extend_from_slice(&snaplen.to_le_bytes());
    out.extend_from_slice(&linktype_field.to_le_bytes());
    for (secs, data) in records {
        out.extend_from_slice(&secs.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
    }
    out
}

fn idb(linktype: DataLink, options: Vec<InterfaceDescriptionOption<'static>>) -> Block<'static> {
    Block::InterfaceDescription(InterfaceDescriptionBlock {
        linktype,
        snaplen: 0,
        options,
    })
}

fn epb(data: &[u8], timestamp: Duration) -> Block<'_> {
    Block::EnhancedPacket(EnhancedPacketBlock {
        interface_id: 0,
        timestamp,
        original_len: data.len() as u32,
        data: Cow::Borrowed(data),
        options: vec![],
    })
}

fn pcapng(blocks: &[Block<'_>]) -> Vec<u8> {
    let mut writer = PcapNgWriter::new(Vec::new()).unwrap();
    for block in blocks {
        writer.write_block(block).unwrap();
    }
    writer.into_inner()
}

fn lines(output: &std::process::Output) -> Vec<String> {
    stdout(output).lines().map(str::to_string).collect()
}

#[test]
fn hex2pcap_bounds_a_line_before_reading_more() {
    let zero = std::fs::File::open("/dev/zero").unwrap();
    let out = Command::new(bin("hex2pcap")).stdin(zero).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        "hex2pcap: <stdin>: line 1: longer than 1048640 bytes (the hex of a 262144-byte packet with separators and an ASCII column fits in it)\n"
    );
    assert!(out.stdout.is_empty());
    // The longest packet, with a separator after each byte, an ASCII column and a timestamp,
    // still fits.
    let data: Vec<u8> = (0..262_144u32).map(|i| i as u8).collect();
    let spaced: Vec<String> = data.iter().map(|b| format!("{b:02x}")).collect();
    let ascii = ".".repeat(data.len());
    let line = format!("1.5 {}\t{ascii}\n", spaced.join(" "));
    let out = run("hex2pcap", &[], line.as_bytes());
    assert!(out.status.success(), "{}", stderr(&out));
    let mut reader = bpftools::pcap::Reader::new(&out.stdout[..]).unwrap();
    let packet = reader.next_packet().unwrap().unwrap();
    assert_eq!(packet.data, &data[..]);
    assert_eq!(packet.timestamp, Duration::from_millis(1500));
}

#[test]
fn hex2pcap_leaves_no_half_written_file() {
    // More than the 8 MiB held back: 40000 packets of 300 bytes, then a bad line.
    let good = hex::encode(vec![0x45u8; 300]);
    let mut input = String::new();
    for _ in 0..40_000 {
        input.push_str(&good);
        input.push('\n');
    }
    input.push_str("00zz\n");
    let dir = temp_dir("hex2pcap-out");
    // -w FILE: nothing at FILE, no temporary file left.
    let target = dir.join("out.pcap");
    let out = run(
        "hex2pcap",
        &["-w", target.to_str().unwrap()],
        input.as_bytes(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("<stdin>: line 40001: column 3: 'z' is not a hex digit"),
        "{}",
        stderr(&out)
    );
    assert!(!target.exists());
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "temporary file left"
    );
    // Standard output redirected to a file: cut back to what it held (here: nothing).
    let redirected = dir.join("redirected.pcap");
    let file = std::fs::File::create(&redirected).unwrap();
    let mut child = Command::new(bin("hex2pcap"))
        .stdin(Stdio::piped())
        .stdout(file)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(2));
    assert_eq!(std::fs::metadata(&redirected).unwrap().len(), 0);
    // Into a pipe: what was handed on is a valid pcap of whole packets before the bad line.
    let out = run("hex2pcap", &[], input.as_bytes());
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.len() >= 8 << 20, "{}", out.stdout.len());
    let back = run("pcap2hex", &["-n"], &out.stdout);
    assert!(back.status.success(), "{}", stderr(&back));
    let kept = lines(&back);
    assert!(!kept.is_empty() && kept.len() < 40_000);
    assert!(kept.iter().all(|l| *l == good));
    // The same input without the bad line, with -w: the whole file.
    let whole = &input[..input.len() - "00zz\n".len()];
    let out = run(
        "hex2pcap",
        &["-w", target.to_str().unwrap()],
        whole.as_bytes(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let back = run("pcap2hex", &["-n", target.to_str().unwrap()], b"");
    assert_eq!(lines(&back).len(), 40_000);
    assert_eq!(tcpdump_count(&target), 40_000);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn timestamps_survive_the_round_trip_to_the_nanosecond() {
    for name in ["eth-flood-v4.pcap", "any-sll2.pcap", "eth-flood.pcapng"] {
        let path = capture(name);
        let original = std::fs::read(&path).unwrap();
        let mut reader = bpftools::pcap::Reader::new(&original[..]).unwrap();
        let mut want = Vec::new();
        let mut linktype = 0;
        while let Some(p) = reader.next_packet().unwrap() {
            linktype = p.linktype;
            want.push((p.timestamp, p.data.to_vec()));
        }
        let text = run("pcap2hex", &["-t", "-n", path.to_str().unwrap()], b"");
        assert!(text.status.success(), "{}", stderr(&text));
        let first = stdout(&text).lines().next().unwrap().to_string();
        let (ts, _) = first.split_once(' ').unwrap();
        assert_eq!(
            ts,
            format!("{}.{:09}", want[0].0.as_secs(), want[0].0.subsec_nanos())
        );
        let linktype = linktype.to_string();
        let pcap = run("hex2pcap", &["-l", &linktype], &text.stdout);
        assert!(pcap.status.success(), "{name}: {}", stderr(&pcap));
        let mut reader = bpftools::pcap::Reader::new(&pcap.stdout[..]).unwrap();
        let mut got = Vec::new();
        while let Some(p) = reader.next_packet().unwrap() {
            got.push((p.timestamp, p.data.to_vec()));
        }
        assert_eq!(got.len(), want.len(), "{name}");
        assert!(got == want, "{name}: timestamps or data differ");
        // And tcpdump agrees with the original's timestamps.
        let dir = temp_dir("ts");
        let copy = dir.join("copy.pcap");
        std::fs::write(&copy, &pcap.stdout).unwrap();
        let (ours, _) = tcpdump_reads(&copy, &["-tt", "--time-stamp-precision=nano"]);
        let (theirs, _) = tcpdump_reads(&path, &["-tt", "--time-stamp-precision=nano"]);
        assert_eq!(ours, theirs, "{name}");
        let _ = std::fs::remove_dir_all(&dir);
    }
    // A mix of lines with and without the column is refused.
    let out = run("hex2pcap", &[], b"1.5 0011\n0011\n");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("line 2: no timestamp column, but earlier packet lines have one"),
        "{}",
        stderr(&out)
    );
    let out = run("hex2pcap", &[], b"5000000000.0 0011\n");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("does not fit in pcap's 32-bit seconds"));
}

#[test]
fn hex2pcap_reads_od_and_hexdump_output() {
    let packets = [
        ethernet(&dns_packet("a.www.example.net", 1)),
        // Long runs of zeros: od prints '*' for repeated lines.
        {
            let mut p = ethernet(&dns_packet("b.www.example.net", 2));
            p.extend_from_slice(&[0u8; 100]);
            p
        },
        ethernet(&dns_packet("c.www.example.net", 3))[..17].to_vec(),
    ];
    let dir = temp_dir("od");
    for (tool, args) in [
        ("od", vec!["-Ax", "-tx1"]),
        ("od", vec!["-Ax", "-tx1", "-v"]),
        ("hexdump", vec!["-C"]),
    ] {
        require(tool);
        let mut dump = Vec::new();
        for (i, packet) in packets.iter().enumerate() {
            let path = dir.join(format!("packet{i}.bin"));
            std::fs::write(&path, packet).unwrap();
            let out = Command::new(tool).args(&args).arg(&path).output().unwrap();
            assert!(out.status.success());
            dump.extend_from_slice(&out.stdout);
        }
        if args == ["-Ax", "-tx1"] {
            assert!(
                String::from_utf8_lossy(&dump).contains("\n*\n"),
                "no repeat"
            );
        }
        let out = run("hex2pcap", &[], &dump);
        assert!(out.status.success(), "{tool} {args:?}: {}", stderr(&out));
        let back = run("pcap2hex", &["-n"], &out.stdout);
        let want: Vec<String> = packets.iter().map(hex::encode).collect();
        assert_eq!(lines(&back), want, "{tool} {args:?}");
    }
    // Read as plain lines when asked: the offsets become bytes.
    let out = run("hex2pcap", &["--format", "lines"], b"000000 45 00\n");
    let back = run("pcap2hex", &["-n"], &out.stdout);
    assert_eq!(stdout(&back), "0000004500\n");
    // An offset that skips bytes is an error naming the line.
    let out = run("hex2pcap", &[], b"000000 45 00\n000010 01\n");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("line 2: offset 0x10, but the packet so far has 0x2 bytes"),
        "{}",
        stderr(&out)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn hex2pcap_refuses_link_types_tcpdump_refuses() {
    for bad in ["65536", "290", "ethr"] {
        let out = run("hex2pcap", &["--linktype", bad], b"00\n");
        assert_eq!(out.status.code(), Some(2), "{bad}");
        assert!(out.stdout.is_empty());
        assert_eq!(stderr(&out).lines().count(), 1);
    }
    let dir = temp_dir("linktype");
    for good in ["147", "ether", "dlt_raw", "sll2"] {
        let path = dir.join("out.pcap");
        let out = run(
            "hex2pcap",
            &["--linktype", good, "-w", path.to_str().unwrap()],
            b"4500001400000000401100000a0000010a000002\n",
        );
        assert!(out.status.success(), "{good}: {}", stderr(&out));
        tcpdump_reads(&path, &[]);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn obsolete_packet_blocks_and_non_utf8_options_are_read() {
    let frame = ethernet(&dns_packet("a.www.example.net", 1));
    let mut blocks = vec![idb(
        DataLink::ETHERNET,
        vec![InterfaceDescriptionOption::IfName(Cow::Borrowed("eth0"))],
    )];
    blocks.push(Block::Packet(PacketBlock {
        interface_id: 0,
        drop_count: 0,
        timestamp: 1_700_000_000_000_000,
        captured_len: frame.len() as u32,
        original_len: frame.len() as u32,
        data: Cow::Borrowed(&frame),
        options: vec![],
    }));
    blocks.push(Block::EnhancedPacket(EnhancedPacketBlock {
        interface_id: 0,
        timestamp: raw_us(1_700_000_001),
        original_len: frame.len() as u32,
        data: Cow::Borrowed(&frame),
        options: vec![EnhancedPacketOption::Comment(Cow::Borrowed("XXXX"))],
    }));
    let mut file = pcapng(&blocks);
    // Make the interface name and the packet comment invalid UTF-8, as some writers do.
    for text in [&b"eth0"[..], b"XXXX"] {
        let at = file.windows(4).position(|w| w == text).unwrap();
        file[at..at + 4].copy_from_slice(&[0xff, 0xfe, b'x', 0xc3]);
    }
    let out = run("pcap2hex", &["-t"], &file);
    assert!(out.status.success(), "{}", stderr(&out));
    let want = format!("1700000000.000000000 {}", hex::encode(&frame));
    let got = lines(&out);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0], want);
    assert!(got[1].starts_with("1700000001.000000000 "));
    let out = filter(&["-v", "--l3", "-b", &flood_program()], &file);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("matched 2/2"), "{}", stderr(&out));
    let dir = temp_dir("pb");
    let path = dir.join("out.pcap");
    std::fs::write(&path, &out.stdout).unwrap();
    assert_eq!(tcpdump_count(&path), 2);
    // tcpdump reads the input too: the oracle that these blocks hold packets.
    let input = dir.join("in.pcapng");
    std::fs::write(&input, &file).unwrap();
    assert_eq!(tcpdump_count(&input), 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_first_section_header_with_non_utf8_options_is_read() {
    use pcap_file::pcapng::blocks::section_header::{SectionHeaderBlock, SectionHeaderOption};
    let frame = ethernet(&dns_packet("a.www.example.net", 1));
    for endianness in [pcap_file::Endianness::Big, pcap_file::Endianness::Little] {
        let section = SectionHeaderBlock {
            endianness,
            options: vec![
                SectionHeaderOption::Hardware(Cow::Borrowed("HWHW")),
                SectionHeaderOption::Comment(Cow::Borrowed("CMCM")),
            ],
            ..Default::default()
        };
        let mut writer = PcapNgWriter::with_section_header(Vec::new(), section).unwrap();
        writer
            .write_block(&idb(DataLink::ETHERNET, vec![]))
            .unwrap();
        writer
            .write_block(&epb(&frame, raw_us(1_700_000_000)))
            .unwrap();
        let mut file = writer.into_inner();
        for text in [&b"HWHW"[..], b"CMCM"] {
            let at = file.windows(4).position(|w| w == text).unwrap();
            file[at..at + 4].copy_from_slice(&[0xff, 0xfe, b'x', 0xc3]);
        }
        let out = run("pcap2hex", &[], &file);
        assert!(out.status.success(), "{endianness:?}: {}", stderr(&out));
        assert_eq!(lines(&out), [hex::encode(&frame)]);
        // tcpdump reads it too: the oracle that the file is a capture.
        let dir = temp_dir("shb-utf8");
        let input = dir.join("in.pcapng");
        std::fs::write(&input, &file).unwrap();
        assert_eq!(tcpdump_count(&input), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn a_gzip_compressed_capture_is_named_as_such() {
    let gz = [0x1f, 0x8b, 0x08, 0x08, 0, 0, 0, 0, 0, 3];
    for tool in ["pcap2hex", "filter", "parsedns"] {
        let args: &[&str] = if tool == "filter" {
            &["-b", "1,6 0 0 65535", "-"]
        } else {
            &["-"]
        };
        let out = run(tool, args, &gz);
        assert_eq!(out.status.code(), Some(2), "{tool}");
        let err = stderr(&out);
        assert!(
            err.contains("gzip-compressed: gunzip it (or zcat FILE | TOOL -)"),
            "{tool}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{tool}: {err}");
    }
}

#[test]
fn dlt_12_raw_ip_is_read_like_tcpdump() {
    let v4 = dns_packet("a.www.example.net", 1);
    let v6 = udp_packet(&dns_query(&labels("b.www.example.net"), 2), Shape::V6);
    let file = pcap_file(12, 65535, &[(1, &v4), (2, &v6)]);
    let out = run("pcap2hex", &[], &file);
    assert!(out.status.success(), "{}", stderr(&out));
    let got = lines(&out);
    assert_eq!(
        got[0],
        format!("0000000000000000000000000800{}", hex::encode(&v4))
    );
    assert_eq!(
        got[1],
        format!("00000000000000000000000086dd{}", hex::encode(&v6))
    );
    let out = filter(&["-v", "--l3", "-b", &flood_program()], &file);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("matched 1/2"), "{}", stderr(&out));
    let dir = temp_dir("dlt12");
    let input = dir.join("in.pcap");
    std::fs::write(&input, &file).unwrap();
    let (_, err) = tcpdump_reads(&input, &["udp"]);
    assert!(err.contains("RAW"), "{err}");
    assert_eq!(tcpdump_count(&input), 2);
    let out = filter(&["-e", "udp"], &file);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn fcs_declared_by_the_capture_is_not_part_of_the_packet() {
    let l3 = dns_packet("a.www.example.net", 1);
    let mut frame = ethernet(&l3);
    frame.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    // A program matching when the packet's last byte is the DNS query's last byte (class IN
    // low byte, 0x01): with the FCS taken for packet bytes it would see 0xef.
    let last_byte = "5,128 0 0 0,20 0 0 1,7 0 0 0,80 0 0 0,6 0 0 1";
    let classic = pcap_file(0x2400_0001, 65535, &[(1, &frame)]);
    let ng = pcapng(&[
        idb(
            DataLink::ETHERNET,
            vec![InterfaceDescriptionOption::IfFcsLen(32)],
        ),
        epb(&frame, raw_us(1)),
    ]);
    let dir = temp_dir("fcs");
    for (what, file) in [("pcap", &classic), ("pcapng", &ng)] {
        let out = run("pcap2hex", &[], file);
        assert!(out.status.success(), "{what}: {}", stderr(&out));
        assert_eq!(
            lines(&out),
            vec![hex::encode(&frame[..frame.len() - 4])],
            "{what}"
        );
        let out = run("pcap2hex", &["-n"], file);
        assert_eq!(
            lines(&out),
            vec![hex::encode(&frame)],
            "{what}: -n prints as captured"
        );
        let out = filter(&["-v", "--l3", "-b", last_byte], file);
        assert_eq!(out.status.code(), Some(0), "{what}: {}", stderr(&out));
        let out = filter(&["-v", "--l3", "-b", &flood_program()], file);
        assert_eq!(out.status.code(), Some(0), "{what}: {}", stderr(&out));
        // The output declares the FCS too, and tcpdump reads it.
        let path = dir.join(format!("{what}.pcap"));
        std::fs::write(&path, &out.stdout).unwrap();
        assert_eq!(tcpdump_count(&path), 1, "{what}");
        let mut reader = bpftools::pcap::Reader::new(&out.stdout[..]).unwrap();
        assert_eq!(reader.next_packet().unwrap().unwrap().fcs_len, 4, "{what}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn far_timestamps_and_huge_records_are_written_as_tcpdump_reads_them() {
    let frame = ethernet(&dns_packet("a.www.example.net", 1));
    let ng = pcapng(&[
        idb(DataLink::ETHERNET, vec![]),
        epb(&frame, raw_us(1)),
        epb(&frame, raw_us(1 << 33)),
        epb(&frame, raw_us(3)),
    ]);
    let out = filter(&["-v", "-b", "1,6 0 0 65535"], &ng);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("matched 3/3"), "{err}");
    assert!(
        err.contains("1 timestamps past pcap's 32-bit seconds (2106-02-07; the first: packet 2)"),
        "{err}"
    );
    let dir = temp_dir("far");
    let path = dir.join("far.pcap");
    std::fs::write(&path, &out.stdout).unwrap();
    let (text, _) = tcpdump_reads(&path, &["-tt"]);
    let times: Vec<&str> = text.lines().map(|l| l.split(' ').next().unwrap()).collect();
    // tcpdump reads the clamped record; it prints no time past 2038 ("[Error converting time]").
    assert_eq!(
        (times.len(), times[0], times[2]),
        (3, "1.000000", "3.000000")
    );
    let mut reader = bpftools::pcap::Reader::new(&out.stdout[..]).unwrap();
    reader.next_packet().unwrap();
    let clamped = reader.next_packet().unwrap().unwrap().timestamp;
    assert_eq!(clamped, Duration::new(u32::MAX.into(), 999_999_999));
    // -q silences the warning, not the count.
    let out = filter(&["-q", "-b", "1,6 0 0 65535"], &ng);
    assert!(out.stderr.is_empty(), "{}", stderr(&out));

    // A 300,000-byte record in a file with snap length 0xffffffff: cut to what tcpdump reads.
    let mut big = frame.clone();
    big.resize(300_000, 0x55);
    let file = pcap_file(1, u32::MAX, &[(1, &frame), (2, &big)]);
    let out = filter(&["-b", "1,6 0 0 65535"], &file);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "1 packets longer than 262144 bytes (the first: packet 2) were cut to 262144"
        ),
        "{}",
        stderr(&out)
    );
    let path = dir.join("big.pcap");
    std::fs::write(&path, &out.stdout).unwrap();
    assert_eq!(tcpdump_count(&path), 2);
    let mut reader = bpftools::pcap::Reader::new(&out.stdout[..]).unwrap();
    reader.next_packet().unwrap();
    let second = reader.next_packet().unwrap().unwrap();
    assert_eq!((second.data.len(), second.orig_len), (262_144, 300_000));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `offset`'s lines: (packet, offset, from end, prefix hex, suffix hex) of the packets found.
fn offset_lines(output: &std::process::Output) -> Vec<(u64, usize, i64, String, String)> {
    stdout(output)
        .lines()
        .filter(|l| !l.contains("\t-\t"))
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
                f.get(3).unwrap_or(&"").to_string(),
                f.get(4).unwrap_or(&"").to_string(),
            )
        })
        .collect()
}

#[test]
fn offset_finds_strings_and_builds_a_suffix_rule_that_matches() {
    let path = capture("eth-flood-v4.pcap");
    let path = path.to_str().unwrap();
    // "example.net" in DNS wire form.
    let wire = "076578616d706c65036e6574";
    let out = run("offset", &["-x", wire, "-p", "-s", path], b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let frames: Vec<String> = lines(&run("pcap2hex", &["-n", path], b""));
    let all: Vec<String> = lines(&out);
    assert_eq!(all.len(), frames.len(), "one line per packet");
    let found = offset_lines(&out);
    let mut expected_found = 0;
    for (i, frame) in frames.iter().enumerate() {
        // An independent search, on hex digits at even positions.
        let want = (0..frame.len() / 2).find(|&b| frame[b * 2..].starts_with(wire));
        if let Some(at) = want {
            expected_found += 1;
            let line = found.iter().find(|l| l.0 == i as u64 + 1).unwrap();
            assert_eq!(line.1, at, "packet {}", i + 1);
            assert_eq!(line.2, -((frame.len() / 2 - at) as i64));
            assert_eq!(format!("{}{}", line.3, line.4), *frame);
            assert!(line.4.starts_with(wire));
        } else {
            assert_eq!(all[i], format!("{}\t-\t-\t-\t-", i + 1));
        }
    }
    assert!(expected_found > 6000, "{expected_found}");
    assert_eq!(found.len(), expected_found);
    assert!(
        stderr(&out).starts_with(&format!(
            "offset: found in {expected_found} of {} packets; from the start: ",
            frames.len()
        )),
        "{}",
        stderr(&out)
    );
    // The text form with escapes finds the same; hex lines read like the capture.
    let text = run("offset", &["-i", "-q", r"\x07example\x03net", path], b"");
    assert_eq!(lines(&text).len(), expected_found);
    let from_hex = run(
        "offset",
        &["-x", wire, "-q"],
        &run("pcap2hex", &["-n", path], b"").stdout,
    );
    assert_eq!(
        stdout(&from_hex),
        stdout(&run("offset", &["-x", wire, "-q", path], b""))
    );
    // --l3 counts from the IP header: 16 bytes less on Linux cooked captures.
    let sll = capture("any-sll1.pcap");
    let frame_offsets = offset_lines(&run(
        "offset",
        &["-i", "-x", wire, sll.to_str().unwrap()],
        b"",
    ));
    let l3_offsets = offset_lines(&run(
        "offset",
        &["-i", "--l3", "-x", wire, sll.to_str().unwrap()],
        b"",
    ));
    assert_eq!(frame_offsets.len(), l3_offsets.len());
    for (frame, l3) in frame_offsets.iter().zip(&l3_offsets) {
        assert_eq!((frame.0, frame.1 - 16, frame.2), (l3.0, l3.1, l3.2));
    }
    // The suffix of the first packet found, as a 'bpfgen suffix' rule run with filter --l3,
    // keeps exactly the packets whose IP packet ends with those bytes.
    let l3 = offset_lines(&run(
        "offset",
        &["-i", "-p", "-s", "--l3", "-x", wire, path],
        b"",
    ));
    let suffix = l3[0].4.clone();
    let want = l3.iter().filter(|l| l.4.ends_with(&suffix)).count();
    let program = run("bpfgen", &["suffix", "--", &suffix], b"");
    assert!(program.status.success(), "{}", stderr(&program));
    let kept = run(
        "filter",
        &["-v", "--l3", "-b", stdout(&program).trim(), path],
        b"",
    );
    assert!(
        stderr(&kept).contains(&format!("matched {want}/")),
        "{want}: {}",
        stderr(&kept)
    );
    // Absent: exit 1 and the count; a bad escape: exit 2.
    let out = run("offset", &["-x", "ffeeddccbbaa99887766", path], b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("found in 0 of"), "{}", stderr(&out));
    let out = run("offset", &[r"\q", path], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with("offset: '\\q': at character 1: unknown escape"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn filter_warns_where_a_silent_wrong_answer_is_likely() {
    let gen = |args: &[&str]| stdout(&run("bpfgen", args, b"")).trim().to_string();
    let v4 = gen(&["dns", "--", "*.www.example.net"]);
    let v6 = gen(&["-6", "dns", "--", "*.www.example.net"]);
    let o14 = gen(&["-o", "14", "dns", "--", "*.www.example.net"]);
    let path = |name: &str| capture(name).to_str().unwrap().to_string();
    let filter_err = |args: &[&str], name: &str| {
        let mut all: Vec<&str> = args.to_vec();
        let file = path(name);
        all.push(&file);
        let out = run("filter", &all, b"");
        assert_ne!(out.status.code(), Some(2), "{}", stderr(&out));
        (out.status.code(), stderr(&out))
    };
    // An iptables program (IP at 0) on link-layer captures without --l3.
    for (name, at, total) in [
        ("any-sll1.pcap", 16, 616),
        ("eth-vlan.pcap", 18, 6032),
        ("eth-flood-v4.pcap", 14, 6032),
    ] {
        let (code, err) = filter_err(&["-b", &v4], name);
        assert_eq!(code, Some(1), "{name}");
        assert_eq!(
            err,
            format!(
                "filter: warning: the program reads an IP header at offset 0 (instruction 0: ldx 4*([0]&0xf)), but in this capture ({}) the IP header is at {at}: give --l3 to hand it packets from the IP header, or generate it with -o {at}\nfilter: matched 0 of {total} packets\n",
                if name.starts_with("any") { "Linux cooked (SLL)" } else { "Ethernet" }
            ),
            "{name}"
        );
        // -q: nothing; --l3: right, and nothing to say.
        let (_, err) = filter_err(&["-q", "-b", &v4], name);
        assert_eq!(err, "", "{name}");
        let (code, err) = filter_err(&["--l3", "-b", &v4], name);
        assert_eq!((code, err.as_str()), (Some(0), ""), "{name}");
    }
    // A program for Ethernet (-o 14) on a VLAN capture, and with --l3.
    let (_, err) = filter_err(&["-b", &o14], "eth-vlan.pcap");
    assert!(err.contains("reads an IP header at offset 14 (instruction 0: ldx 4*([14]&0xf)), but in this capture (Ethernet) the IP header is at 18: generate it with -o 18"), "{err}");
    let (_, err) = filter_err(&["--l3", "-b", &o14], "eth-flood-v4.pcap");
    assert!(
        err.contains("but with --l3 the IP header is at 0: drop --l3"),
        "{err}"
    );
    let (code, err) = filter_err(&["-b", &o14], "eth-flood-v4.pcap");
    assert_eq!((code, err.as_str()), (Some(0), ""));
    // IPv6 programs on IPv4 traffic and the reverse; each on its own version is fine.
    let (_, err) = filter_err(&["--l3", "-b", &v6], "eth-flood-v4.pcap");
    assert!(
        err.contains("the program reads IPv6 headers (instruction 2), but the capture holds only 6032 IPv4 packets"),
        "{err}"
    );
    let (_, err) = filter_err(&["--l3", "-b", &v4], "eth-flood-v6.pcap");
    assert!(
        err.contains("the program reads IPv4 headers (instruction 0), but the capture holds only 1016 IPv6 packets"),
        "{err}"
    );
    let (code, err) = filter_err(&["--l3", "-b", &v6], "eth-flood-v6.pcap");
    assert_eq!((code, err.as_str()), (Some(0), ""));
    // Zero matches of the right version: the count alone; with -v the count line says it.
    let none = gen(&["dns", "--", "*.nothing.example"]);
    let (code, err) = filter_err(&["--l3", "-b", &none], "eth-flood-v4.pcap");
    assert_eq!(
        (code, err.as_str()),
        (Some(1), "filter: matched 0 of 6032 packets\n")
    );
    let (_, err) = filter_err(&["-v", "--l3", "-b", &none], "eth-flood-v4.pcap");
    assert_eq!(err, "filter: matched 0/6032 packets\n");
    // --l3 on a link type filter does not understand.
    let frame = ethernet(&dns_packet("a.www.example.net", 1));
    let file = pcap_file(147, 65535, &[(1, &frame)]);
    let out = filter(&["--l3", "-b", &v4], &file);
    assert!(
        stderr(&out)
            .starts_with("filter: warning: link type 147 is not a link type filter understands"),
        "{}",
        stderr(&out)
    );
    // No progress line when stderr is not a terminal (here a pipe), however long the run.
    for tool in ["filter", "pcap2hex"] {
        let args: Vec<String> = if tool == "filter" {
            vec![
                "-v".into(),
                "-b".into(),
                "1,6 0 0 65535".into(),
                path("eth-vlan.pcap"),
            ]
        } else {
            vec![path("eth-vlan.pcap")]
        };
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run(tool, &args, b"");
        assert!(!stderr(&out).contains('\r'), "{tool}: {}", stderr(&out));
    }
}

#[test]
fn progress_shows_on_a_terminal() {
    require("script");
    require("mkfifo");
    let dir = temp_dir("progress");
    let fifo = dir.join("in.pcap");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let frame = ethernet(&dns_packet("a.www.example.net", 1));
    let records: Vec<(u32, &[u8])> = (0..9000).map(|i| (i, &frame[..])).collect();
    let file = pcap_file(1, 65535, &records);
    // 4000 packets, a pause longer than the progress interval (1 s), then the rest: the
    // 4096th packet comes after the pause and shows the line.
    let split = 24 + 4000 * (16 + frame.len());
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut input = std::fs::File::create(&fifo).unwrap();
            input.write_all(&file[..split]).unwrap();
            std::thread::sleep(Duration::from_millis(1300));
            input.write_all(&file[split..]).unwrap();
        })
    };
    // script(1) runs filter with stderr on a terminal and copies what it shows.
    let command = format!(
        "{} -b '1,6 0 0 65535' < {} > /dev/null",
        bin("filter").display(),
        fifo.display()
    );
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    writer.join().unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.contains("\rfilter: 4096 packets, 0 MB read\x1b[K"),
        "{shown:?}"
    );
    assert!(shown.ends_with("\r\x1b[K"), "the line is erased: {shown:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
