//! The generators against the original bpftools' output, a table of patterns and names, and
//! IPv6 extension headers, all on real packets run through the interpreter.

use bpftools::asm::{assemble, parse_bytecode};
use bpftools::cli::gen_args::parse_generator;
use bpftools::gen::{build, GenOptions, Generated};
use bpftools::insn::RawInsn;
use bpftools::pcap::{link, Reader};
use bpftools::vm::{Input, Profile, Program};

use crate::common::{capture, reference, run, stderr, stdout, CAPTURES};
use crate::packets::{dns_query, ethernet, labels, udp_packet, Ext, Shape};
use crate::rng::Rng;

/// Builds generator `name` from its `bpfgen` arguments, as the tools do.
fn generate(name: &str, args: &[String], opts: &GenOptions) -> Result<Generated, String> {
    let generator = parse_generator(name, args).map_err(|e| format!("{e:?}"))?;
    build(&generator, opts).map_err(|e| e.to_string())
}

/// One line of bpfgen-original.tsv: options, generator, its arguments, the original bytecode.
struct Line {
    args: String,
    opts: GenOptions,
    generator: String,
    gen_args: Vec<String>,
    original: Vec<RawInsn>,
}

fn reference_lines() -> Vec<Line> {
    let text = std::fs::read_to_string(reference("bpfgen-original.tsv")).expect("reference tsv");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (args, bytecode) = l.split_once('\t').expect("two columns");
            let words: Vec<&str> = args.split_whitespace().collect();
            let mut opts = GenOptions::default();
            let mut i = 0;
            loop {
                match words[i] {
                    "-6" => opts.inet6 = true,
                    "-n" => opts.negate = true,
                    "-o" => {
                        i += 1;
                        opts.offset = words[i].parse().unwrap();
                    }
                    _ => break,
                }
                i += 1;
            }
            let generator = words[i].to_string();
            let gen_args: Vec<String> = words[i + 1..]
                .iter()
                .filter(|w| **w != "--")
                .map(|w| w.to_string())
                .collect();
            Line {
                args: args.to_string(),
                opts,
                generator,
                gen_args,
                original: parse_bytecode(bytecode).expect("original bytecode"),
            }
        })
        .collect()
}

/// Frames of a capture, each with the offset of its network header.
type Frames = Vec<(Vec<u8>, usize)>;

/// Frames of a capture with the offset of their network header.
fn capture_frames(name: &str) -> Frames {
    let mut reader = Reader::new(std::fs::File::open(capture(name)).unwrap()).unwrap();
    let mut out = Vec::new();
    while let Some(p) = reader.next_packet().unwrap() {
        let net = link::network_header(p.linktype, p.data)
            .expect("network header")
            .offset;
        out.push((p.data.to_vec(), net));
    }
    out
}

fn run_at(program: &Program, frame: &[u8], start: usize) -> u32 {
    program.run_with(&Input {
        frame,
        start,
        net: Some(start),
        link: Some(0),
        wire_len: (frame.len() - start) as u32,
        ctx: Default::default(),
    })
}

/// Concrete names near a pattern: wildcards filled at and around their bounds, case changes,
/// one label more or less, one character changed.
fn names_near(pattern: &str, rng: &mut Rng) -> Vec<String> {
    let letters = b"abcdefghijklmnopqrstuvwxyz0123456789-";
    let parts: Vec<&str> = pattern.trim_matches('.').split('.').collect();
    let mut out = Vec::new();
    for variant in 0..16 {
        let mut labels_out: Vec<String> = Vec::new();
        for part in &parts {
            let label = match *part {
                "*" => {
                    let len = match variant % 4 {
                        0 => 1,
                        1 => 63,
                        _ => 1 + rng.below(20) as usize,
                    };
                    rng.text(len, letters)
                }
                "**" => {
                    let extra = variant % 3;
                    let labels: Vec<String> = (0..extra)
                        .map(|_| {
                            let len = 1 + rng.below(8) as usize;
                            rng.text(len, letters)
                        })
                        .collect();
                    labels.join(".")
                }
                p if p.starts_with("*{") => {
                    let (min, max) = p[2..p.len() - 1].split_once('-').unwrap();
                    let (min, max): (usize, usize) = (min.parse().unwrap(), max.parse().unwrap());
                    let len = match variant % 5 {
                        0 => min,
                        1 => max,
                        2 => min.saturating_sub(1).max(1),
                        3 => (max + 1).min(63),
                        _ => min + rng.below((max - min + 1) as u64) as usize,
                    };
                    rng.text(len, letters)
                }
                p => p
                    .chars()
                    .map(|c| {
                        if c == '?' {
                            char::from(letters[rng.below(26) as usize])
                        } else {
                            c
                        }
                    })
                    .collect(),
            };
            if !label.is_empty() {
                labels_out.push(label);
            }
        }
        let mut name = labels_out.join(".");
        match variant {
            5 => name = name.to_uppercase(),
            6 => name = format!("{}.{name}", rng.text(5, letters)),
            7 => {
                name = labels_out
                    .iter()
                    .skip(1)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(".")
            }
            8 if !name.is_empty() => {
                let mut bytes = name.into_bytes();
                let at = rng.below(bytes.len() as u64) as usize;
                bytes[at] = if bytes[at] == b'x' { b'y' } else { b'x' };
                name = String::from_utf8(bytes).unwrap();
            }
            9 => {
                name = name
                    .chars()
                    .enumerate()
                    .map(|(i, c)| {
                        if i % 2 == 0 {
                            c.to_ascii_uppercase()
                        } else {
                            c
                        }
                    })
                    .collect()
            }
            _ => {}
        }
        if name.is_empty() {
            name = "example".into();
        }
        out.push(name);
    }
    out
}

#[test]
fn every_reference_line_gives_the_original_verdicts_on_captures_and_a_corpus() {
    let lines = reference_lines();
    assert!(lines.len() >= 28, "{} reference lines", lines.len());
    // A corpus of queries near every pattern of the reference, over IPv4 (with and without
    // options) and IPv6.
    let mut rng = Rng::new(0x5eed_0004);
    let mut corpus: Vec<Vec<u8>> = Vec::new();
    for line in &lines {
        for pattern in line
            .gen_args
            .iter()
            .filter(|a| !a.starts_with('-') && line.generator == "dns")
        {
            for (i, name) in names_near(pattern, &mut rng).into_iter().enumerate() {
                let dns = dns_query(&labels(&name), i as u16);
                corpus.push(udp_packet(&dns, Shape::V4));
                corpus.push(udp_packet(
                    &dns,
                    Shape {
                        ip_options: true,
                        ..Shape::V4
                    },
                ));
                corpus.push(udp_packet(&dns, Shape::V6));
            }
        }
    }
    assert!(corpus.len() >= 1000, "corpus of {}", corpus.len());
    let captures: Vec<(&str, Frames)> = CAPTURES.iter().map(|c| (*c, capture_frames(c))).collect();
    let mut compared = 0u64;
    let mut failures = Vec::new();
    for line in &lines {
        let ours = generate(&line.generator, &line.gen_args, &line.opts)
            .unwrap_or_else(|e| panic!("{}: {e}", line.args))
            .insns;
        let (our_len, their_len) = (ours.len(), line.original.len());
        eprintln!(
            "{:<40} instructions: ours {our_len:>3}, original {their_len:>3}",
            line.args
        );
        if !line.opts.inet6 {
            assert!(
                our_len <= their_len,
                "{}: {our_len} instructions, the original has {their_len}",
                line.args
            );
        }
        let ours = Program::new(&ours, Profile::Socket).unwrap();
        let theirs = Program::new(&line.original, Profile::Socket).unwrap();
        let offset = line.opts.offset as usize;
        let mut check = |what: &str, frame: &[u8], start: usize| {
            compared += 1;
            let (a, b) = (run_at(&ours, frame, start), run_at(&theirs, frame, start));
            if a != b && failures.len() < 10 {
                failures.push(format!(
                    "{}: {what}: ours {a}, original {b}: {}",
                    line.args,
                    hex::encode(frame)
                ));
            }
        };
        for (name, frames) in &captures {
            for (frame, net) in frames {
                // A program is made for one IP version (iptables or ip6tables): compare it on
                // packets of that version only.
                if (frame[*net] >> 4 == 6) != line.opts.inet6 {
                    continue;
                }
                if offset == 0 {
                    check(name, frame, *net);
                } else if offset == *net {
                    check(name, frame, 0);
                }
            }
        }
        for packet in &corpus {
            if (packet[0] >> 4 == 6) != line.opts.inet6 {
                continue;
            }
            if offset == 0 {
                check("corpus", packet, 0);
            } else if offset == 14 {
                check("corpus", &ethernet(packet), 0);
            }
        }
    }
    eprintln!(
        "reference: {compared} verdicts compared over {} corpus packets and {} captures",
        corpus.len(),
        captures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn flood_capture_keeps_exactly_the_packets_the_original_kept() {
    // filter-original-counts.tsv: `-o 14 dns -- *.www.example.net` kept 6000 of 6032.
    let counts = std::fs::read_to_string(reference("filter-original-counts.tsv")).unwrap();
    assert!(counts.contains("eth-flood-v4.pcap\t-o 14 dns -- *.www.example.net\t6000\t6032"));
    let ours = generate(
        "dns",
        &["*.www.example.net".into()],
        &GenOptions {
            offset: 14,
            ..Default::default()
        },
    )
    .unwrap();
    let program = Program::new(&ours.insns, Profile::Socket).unwrap();
    let frames = capture_frames("eth-flood-v4.pcap");
    let kept: Vec<usize> = (0..frames.len())
        .filter(|&i| run_at(&program, &frames[i].0, 0) != 0)
        .collect();
    assert_eq!((kept.len(), frames.len()), (6000, 6032));
    // Exactly the flood queries and their answers: first question ends in .www.example.net,
    // with at least one label before www.
    for (i, (frame, net)) in frames.iter().enumerate() {
        let report = bpftools::dns::dissect::report(&frame[..]);
        let name = report["dns"]["questions"][0]["name"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let expected =
            name.ends_with(".www.example.net.") && name.len() > "www.example.net.".len() + 1;
        assert_eq!(
            kept.contains(&i),
            expected,
            "packet {} ({name}) at net {net}",
            i + 1
        );
    }
}

/// (flags, pattern, query name, matches?) — every pattern feature, including the edges.
const TABLE: &[(&str, &str, &str, bool)] = &[
    // A wildcard label is 1 to 63 characters: never the empty root label ending the name
    // (whose next bytes, the query type, would otherwise be compared with the pattern's end).
    ("", "*.*", "com", false),
    ("", "*.*", "a.com", true),
    ("", "com.*", "com", false),
    ("", "com.*", "com.x", true),
    ("", "*", ".", false),
    ("", "*", "com", true),
    ("", "*{0-3}", ".", false),
    ("", "*{0-3}", "abc", true),
    ("", "*{0-3}", "abcd", false),
    ("", "example.*.**", "example", false),
    ("", "example.*.**", "example.com", true),
    ("", "example.net", "example.net", true),
    ("", "example.net", "Example.net", false),
    ("", "example.net", "www.example.net", false),
    ("", "example.net", "example.net.com", false),
    ("", "example.net", "example.ne", false),
    ("", "example.net", "example.nett", false),
    ("", "example.net", "exampl.net", false),
    ("", "example.net", "net", false),
    ("", ".example.net.", "example.net", true),
    ("", "..example.net", "example.net", true),
    ("", "example.net..", "example.net", true),
    ("", "a", "a", true),
    ("", "a", "b", false),
    ("", "a", "a.a", false),
    ("", "*.example.net", "www.example.net", true),
    ("", "*.example.net", "a.example.net", true),
    ("", "*.example.net", "example.net", false),
    ("", "*.example.net", "a.b.example.net", false),
    ("", "*.example.net", "www.example.org", false),
    ("", "*.example.net", "www.EXAMPLE.net", false),
    ("", "*.*.example.net", "a.b.example.net", true),
    ("", "*.*.example.net", "a.example.net", false),
    ("", "www.*.net", "www.example.net", true),
    ("", "www.*.net", "www.x.net", true),
    ("", "www.*.net", "www.net", false),
    ("", "www.*.net", "www.a.b.net", false),
    ("", "www.*", "www.net", true),
    ("", "www.*", "www.example.net", false),
    ("", "*", "com", true),
    ("", "*", "example.com", false),
    (
        "",
        "*.www.example.net",
        "abcdefghijklmnop.www.example.net",
        true,
    ),
    ("", "*.www.example.net", "www.example.net", false),
    ("", "*{3-5}.example.net", "abc.example.net", true),
    ("", "*{3-5}.example.net", "abcde.example.net", true),
    ("", "*{3-5}.example.net", "ab.example.net", false),
    ("", "*{3-5}.example.net", "abcdef.example.net", false),
    ("", "*{3-5}.example.net", "abcd.example.org", false),
    ("", "*{8-8}.example.net", "abcdefgh.example.net", true),
    ("", "*{8-8}.example.net", "abcdefg.example.net", false),
    ("", "*{8-8}.example.net", "abcdefghi.example.net", false),
    ("", "*{1-63}.example.net", "a.example.net", true),
    (
        "",
        "*{1-63}.example.net",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example.net",
        true,
    ),
    (
        "",
        "*{63-63}.example.net",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example.net",
        true,
    ),
    (
        "",
        "*{63-63}.example.net",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example.net",
        false,
    ),
    ("", "*{0-2}.example.net", "ab.example.net", true),
    ("", "*{0-2}.example.net", "abc.example.net", false),
    // The original's own example: a maximum above 63 means "up to the longest label".
    ("", "*{4-255}.example.net", "abcd.example.net", true),
    ("", "*{4-255}.example.net", "abc.example.net", false),
    ("", "*{4-255}.example.net", "example.net", false),
    (
        "",
        "*{4-255}.example.net",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example.net",
        true,
    ),
    ("", "*{0-255}.x", "a.x", true),
    ("", "*{0-255}.x", "x", false),
    (
        "",
        "*{63-64}.x",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.x",
        true,
    ),
    (
        "",
        "*{63-64}.x",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.x",
        false,
    ),
    ("", "x.*{2-4}.example.net", "x.abc.example.net", true),
    ("", "x.*{2-4}.example.net", "x.a.example.net", false),
    ("", "x.*{2-4}.example.net", "y.abc.example.net", false),
    ("", "ex?mple.net", "example.net", true),
    ("", "ex?mple.net", "exbmple.net", true),
    ("", "ex?mple.net", "ex-mple.net", true),
    ("", "ex?mple.net", "exmple.net", false),
    ("", "ex?mple.net", "exaample.net", false),
    ("", "ex?mple.net", "example.org", false),
    ("", "???.net", "abc.net", true),
    ("", "???.net", "ab.net", false),
    ("", "???.net", "abcd.net", false),
    ("", "a?c.*.net", "abc.x.net", true),
    ("", "a?c.*.net", "abd.x.net", false),
    ("", "example.**", "example.com", true),
    ("", "example.**", "example.co.uk", true),
    ("", "example.**", "example.a.b.c.d", true),
    ("", "example.**", "www.example.com", false),
    ("", "example.**", "examples.com", false),
    ("", "example.**", "exampl.com", false),
    ("", "www.example.**", "www.example.net", true),
    ("", "www.example.**", "www.example.co.uk", true),
    ("", "www.example.**", "ftp.example.net", false),
    ("", "example.com.**", "example.com.evil.org", true),
    ("", "example.com.**", "example.org", false),
    ("", "*.example.**", "www.example.com", true),
    ("", "*.example.**", "example.com", false),
    (
        "",
        "*.example.*.example.org",
        "a.example.b.example.org",
        true,
    ),
    (
        "",
        "*.example.*.example.org",
        "a.example.example.org",
        false,
    ),
    (
        "",
        "*.example.*.example.org",
        "a.example.b.example.net",
        false,
    ),
    ("", "foo*.example.net", "foo%2A.example.net", true),
    ("", "foo*.example.net", "foox.example.net", false),
    ("", "foo*.example.net", "foo.example.net", false),
    ("", "*foo.example.net", "%2Afoo.example.net", true),
    ("", "*foo.example.net", "afoo.example.net", false),
    ("", "ex%2Eample.net", "ex%2Eample.net", true),
    ("", "ex%2Eample.net", "ex.ample.net", false),
    ("", "%41bc.net", "Abc.net", true),
    ("", "%41bc.net", "abc.net", false),
    ("", "a%20b.net", "a%20b.net", true),
    ("", "a%00b.net", "a%00b.net", true),
    ("", "a%00b.net", "a%01b.net", false),
    ("-i", "example.net", "EXAMPLE.NET", true),
    ("-i", "example.net", "ExAmPlE.nEt", true),
    ("-i", "example.net", "example.net", true),
    ("-i", "EXAMPLE.net", "example.NET", true),
    ("-i", "example.net", "exampl3.net", false),
    ("-i", "example.net", "www.example.net", false),
    ("-i", "*.example.net", "WWW.EXAMPLE.NET", true),
    ("-i", "*.example.net", "WWW.EXAMPLE.ORG", false),
    ("-i", "ex?mple.net", "EXAMPLE.NET", true),
    ("-i", "ex?mple.net", "EX1MPLE.NET", true),
    ("-i", "example.**", "EXAMPLE.CO.UK", true),
    ("-i", "a-1.net", "A-1.NET", true),
    ("-i", "a-1.net", "A-2.NET", false),
    ("-i", "a_b.net", "A_B.NET", true),
    ("-i", "x.net", "X.net", true),
    ("-i", "x.net", "y.net", false),
    (
        "",
        "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijk.net",
        "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijk.net",
        true,
    ),
    (
        "",
        "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijk.net",
        "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijj.net",
        false,
    ),
    (
        "",
        "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p",
        "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p",
        true,
    ),
    (
        "",
        "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p",
        "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o",
        false,
    ),
    (
        "",
        "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p",
        "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q",
        false,
    ),
    ("", "ab.cd", "ab.cd", true),
    ("", "ab.cd", "ab.ce", false),
    ("", "abc.de", "abc.de", true),
    ("", "abc.de", "abc.df", false),
    ("", "abcd.e", "abcd.e", true),
    ("", "abcd.e", "abce.e", false),
    ("", "abcde.f", "abcde.f", true),
    ("", "abcde.f", "abcde.g", false),
    ("", "abcdefg", "abcdefg", true),
    ("", "abcdefg", "abcdefh", false),
    ("", "www.example.net", "www.example.net", true),
    ("", "www.example.net", "www.example.ne", false),
    ("", "www.example.net", "ww.example.net", false),
    ("", "www.example.net", "wwww.example.net", false),
    ("", "*.net", "example.net", true),
    ("", "*.net", "net", false),
    ("", "*{1-1}.x", "a.x", true),
    ("", "*{1-1}.x", "ab.x", false),
    ("-i", "*{2-2}.EX", "ab.ex", true),
    ("-i", "**", "anything.at.all", true),
    ("", "a.**", "a", true),
    ("", "?", "z", true),
    ("", "?", "zz", false),
];

/// Several patterns in one program: any of them.
const MULTI: &[(&[&str], &str, bool)] = &[
    (&["example.org", "*.www.example.net"], "example.org", true),
    (
        &["example.org", "*.www.example.net"],
        "x.www.example.net",
        true,
    ),
    (
        &["example.org", "*.www.example.net"],
        "www.example.net",
        false,
    ),
    (&["example.org", "*.www.example.net"], "example.net", false),
    (&["a.net", "b.net", "c.net"], "c.net", true),
    (&["a.net", "b.net", "c.net"], "d.net", false),
    (&["*{2-3}.x", "*{5-6}.x"], "abcde.x", true),
    (&["*{2-3}.x", "*{5-6}.x"], "abcd.x", false),
    (&["example.**", "*.example.org"], "example.co.uk", true),
    (&["example.**", "*.example.org"], "w.example.org", true),
    (&["example.**", "*.example.org"], "w.example.net", false),
];

/// Patterns that must be refused, with a piece of the message.
const ERRORS: &[(&str, &str)] = &[
    ("a..b", "empty label"),
    ("", "empty name"),
    ("...", "empty name"),
    (
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.net",
        "64 bytes long, expected at most 63",
    ),
    ("*{5-3}.net", "the minimum 5 is above the maximum 3"),
    ("*{0-0}.net", "no label fits: a label is never empty"),
    (
        "*{64-255}.net",
        "no label fits: a label is at most 63 characters",
    ),
    ("*{1-99999999999}.net", "expected '*{m-n}'"),
    ("*{-1-3}.net", "expected '*{m-n}'"),
    ("*{a-b}.net", "expected '*{m-n}'"),
    ("*{3}.net", "expected '*{m-n}'"),
    ("ab%zz.net", "bad escape '%zz'"),
    ("ab%4.net", "bad escape"),
    ("abc%", "bad escape '%'"),
    ("**.example.net", "'**' must be the last label"),
    ("a.**.b", "'**' must be the last label"),
];

fn verdict(flags: &str, patterns: &[&str], name: &str, shape: Shape) -> u32 {
    let mut args: Vec<String> = flags.split_whitespace().map(str::to_string).collect();
    args.push("--".into());
    args.extend(patterns.iter().map(|p| p.to_string()));
    let generated = generate(
        "dns",
        &args,
        &GenOptions {
            inet6: shape.v6,
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("{patterns:?}: {e}"));
    // The commented assembly is the same program.
    assert_eq!(
        assemble(&generated.assembly).unwrap(),
        generated.insns,
        "{patterns:?}"
    );
    let program = Program::new(&generated.insns, Profile::Socket)
        .unwrap_or_else(|e| panic!("{patterns:?}: {e}"));
    let packet = udp_packet(&dns_query(&labels(name), 7), shape);
    program.run(&packet)
}

#[test]
fn pattern_table_on_ipv4_and_ipv6() {
    let shapes = [
        Shape::V4,
        Shape {
            ip_options: true,
            ..Shape::V4
        },
        Shape::V6,
    ];
    let mut rows = 0;
    for &(flags, pattern, name, expected) in TABLE {
        for shape in shapes {
            let got = verdict(flags, &[pattern], name, shape);
            assert_eq!(
                got != 0,
                expected,
                "{flags} '{pattern}' vs '{name}' on {shape:?}"
            );
            assert!(got == 0 || got == 65535, "match returns 65535, got {got}");
        }
        rows += 1;
    }
    for &(patterns, name, expected) in MULTI {
        for shape in shapes {
            assert_eq!(
                verdict("", patterns, name, shape) != 0,
                expected,
                "{patterns:?} vs '{name}' on {shape:?}"
            );
        }
        rows += 1;
    }
    for &(pattern, message) in ERRORS {
        let err = generate(
            "dns",
            &["--".into(), pattern.into()],
            &GenOptions::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains(message), "'{pattern}': {err}");
        // And through bpfgen: one line, exit 2, nothing on stdout.
        let out = run("bpfgen", &["dns", "--", pattern], b"");
        assert_eq!(out.status.code(), Some(2), "{pattern}");
        assert!(out.stdout.is_empty());
        assert!(
            stderr(&out).starts_with("bpfgen: ") && stderr(&out).lines().count() == 1,
            "{}",
            stderr(&out)
        );
        rows += 1;
    }
    let out = run("bpfgen", &["dns"], b"");
    assert_eq!(out.status.code(), Some(2), "no pattern: {}", stderr(&out));
    assert_eq!(
        stderr(&out),
        "bpfgen: the following required arguments were not provided: <PATTERN>...; see 'bpfgen --help'\n"
    );
    assert!(out.stdout.is_empty());
    rows += 1;
    let long_name =
        ["abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0"; 4].join(".");
    let err = generate(
        "dns",
        &["--".into(), format!("{long_name}.toolong")],
        &GenOptions::default(),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("on the wire, expected at most 255"),
        "{err}"
    );
    rows += 1;
    assert!(rows >= 150, "{rows} rows");
    eprintln!("pattern table: {rows} rows, each on IPv4, IPv4 with options and IPv6");
}

#[test]
fn ipv6_extension_headers_are_skipped() {
    for ext in [Ext::HopByHop, Ext::DestOpts, Ext::Both, Ext::Fragment(0)] {
        let shape = Shape {
            v6: true,
            ip_options: false,
            ext,
        };
        assert_eq!(
            verdict("", &["*.www.example.net"], "abc.www.example.net", shape),
            65535,
            "{ext:?}"
        );
        assert_eq!(
            verdict("", &["*.www.example.net"], "abc.www.example.org", shape),
            0,
            "{ext:?}"
        );
    }
    // Beyond the walk's two headers: matched whatever the name (extension headers cannot
    // carry a flood past the rule), also with -n; --unwalked-pass keeps the old verdict (not
    // matched). Not UDP at all: not matched.
    let three = Shape {
        v6: true,
        ip_options: false,
        ext: Ext::Three,
    };
    for name in ["abc.www.example.net", "abc.www.example.org"] {
        assert_eq!(
            verdict("", &["*.www.example.net"], name, three),
            65535,
            "{name}"
        );
        assert_eq!(
            verdict("--unwalked-pass", &["*.www.example.net"], name, three),
            0,
            "{name}"
        );
        assert_eq!(
            verdict("--ext-headers 3", &["*.www.example.net"], name, three),
            if name.ends_with(".net") { 65535 } else { 0 },
            "{name}"
        );
    }
    let negated = generate(
        "dns",
        &["--".to_string(), "*.www.example.net".to_string()],
        &GenOptions {
            inet6: true,
            negate: true,
            ..Default::default()
        },
    )
    .unwrap();
    let packet = udp_packet(&dns_query(&labels("abc.www.example.net"), 7), three);
    assert_eq!(
        Program::new(&negated.insns, Profile::Socket)
            .unwrap()
            .run(&packet),
        65535,
        "-n: an unwalked query is still dropped"
    );
    let mut packet = udp_packet(&dns_query(&labels("abc.www.example.net"), 1), Shape::V6);
    packet[6] = 6; // next header: TCP, same bytes after it
    let g = generate(
        "dns",
        &["--".to_string(), "*.www.example.net".to_string()],
        &GenOptions {
            inet6: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        Program::new(&g.insns, Profile::Socket)
            .unwrap()
            .run(&packet),
        0
    );
    packet[6] = 17;
    assert_eq!(
        Program::new(&g.insns, Profile::Socket)
            .unwrap()
            .run(&packet),
        65535
    );
    // A later fragment carries no DNS header: never matched.
    let later = Shape {
        v6: true,
        ip_options: false,
        ext: Ext::Fragment(100),
    };
    assert_eq!(
        verdict("", &["*.www.example.net"], "abc.www.example.net", later),
        0
    );
}

#[test]
fn negate_offset_and_other_generators() {
    let name = "abc.www.example.net";
    let packet = udp_packet(&dns_query(&labels(name), 1), Shape::V4);
    let run_gen = |generator: &str, args: &[&str], opts: GenOptions, packet: &[u8]| -> u32 {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let g = generate(generator, &args, &opts).unwrap();
        Program::new(&g.insns, Profile::Socket).unwrap().run(packet)
    };
    let negate = GenOptions {
        negate: true,
        ..Default::default()
    };
    assert_eq!(run_gen("dns", &["*.www.example.net"], negate, &packet), 0);
    assert_eq!(run_gen("dns", &["example.org"], negate, &packet), 65535);
    let eth = GenOptions {
        offset: 14,
        ..Default::default()
    };
    assert_eq!(
        run_gen("dns", &["*.www.example.net"], eth, &ethernet(&packet)),
        65535
    );
    // suffix: the packet's last bytes are the question's type and class (A, IN).
    assert_eq!(
        run_gen("suffix", &["00010001"], GenOptions::default(), &packet),
        65535
    );
    assert_eq!(
        run_gen("suffix", &["00 01 00 02"], GenOptions::default(), &packet),
        0
    );
    // dns_validate: a well-formed query is not matched; a response-flagged one is.
    assert_eq!(
        run_gen("dns_validate", &[], GenOptions::default(), &packet),
        0
    );
    let mut flagged = packet.clone();
    flagged[20 + 8 + 2] |= 0x80;
    assert_eq!(
        run_gen("dns_validate", &[], GenOptions::default(), &flagged),
        65535
    );
    // RA is allowed, TC is not; --strict also refuses RD (set in this query).
    let mut ra = packet.clone();
    ra[20 + 8 + 3] |= 0x80;
    assert_eq!(run_gen("dns_validate", &[], GenOptions::default(), &ra), 0);
    let mut tc = packet.clone();
    tc[20 + 8 + 2] |= 0x02;
    assert_eq!(
        run_gen("dns_validate", &[], GenOptions::default(), &tc),
        65535
    );
    assert_eq!(
        run_gen(
            "dns_validate",
            &["--strict"],
            GenOptions::default(),
            &packet
        ),
        65535
    );
    let mut no_rd = packet.clone();
    no_rd[20 + 8 + 2] &= !0x01;
    assert_eq!(
        run_gen("dns_validate", &["--strict"], GenOptions::default(), &no_rd),
        0
    );
    // The shortest well-formed query (the root, as resolvers' priming queries ask; UDP length
    // 25) is not malformed; one byte less is.
    let root = udp_packet(&dns_query(&[], 1), Shape::V4);
    assert_eq!(root.len(), 20 + 25);
    assert_eq!(
        run_gen("dns_validate", &[], GenOptions::default(), &root),
        0
    );
    let mut short = root[..root.len() - 1].to_vec();
    short[20 + 4..20 + 6].copy_from_slice(&24u16.to_be_bytes());
    short[2..4].copy_from_slice(&(44u16).to_be_bytes());
    assert_eq!(
        run_gen("dns_validate", &[], GenOptions::default(), &short),
        65535
    );
}

#[test]
fn tcpdump_generator_uses_the_system_tcpdump() {
    crate::common::require("tcpdump", "tcpdump");
    let out = run(
        "bpfgen",
        &["tcpdump", "--", "udp", "dst", "port", "53"],
        b"",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let program = Program::new(&parse_bytecode(&stdout(&out)).unwrap(), Profile::Socket).unwrap();
    let packet = udp_packet(&dns_query(&labels("a.b"), 1), Shape::V4);
    assert_ne!(program.run(&packet), 0);
    let out = run("bpfgen", &["tcpdump", "--", "udp", "port", "nonsense"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("tcpdump rejected the expression"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bpfgen_cli_options() {
    let out = run(
        "bpfgen",
        &["-v", "--max-insns", "64", "dns", "--", "*.www.example.net"],
        b"",
    );
    assert!(out.status.success());
    assert_eq!(stderr(&out), "bpfgen: 19 instructions\n");
    let out = run(
        "bpfgen",
        &["--max-insns", "10", "dns", "--", "*.www.example.net"],
        b"",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("19 instructions, more than --max-insns 10"));
    let out = run("bpfgen", &["-s", "dns", "--", "-i", "*.example.net"], b"");
    assert!(
        stdout(&out).contains("; match '\\x07example\\x03net\\x00'"),
        "{}",
        stdout(&out)
    );
    // A generator's help, from bpfgen and from iptables-bpf: on stdout, exit 0, with the usage
    // line as typed on that tool's command line.
    for (tool, usage) in [
        ("bpfgen", "Usage: bpfgen dns [OPTIONS] <PATTERN>..."),
        (
            "iptables-bpf",
            "Usage: iptables-bpf dns [OPTIONS] <PATTERN>...",
        ),
    ] {
        let out = run(tool, &["dns", "--help"], b"");
        assert!(
            out.status.success() && stdout(&out).contains("Patterns:"),
            "{tool}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        assert!(stdout(&out).contains(usage), "{tool}: {}", stdout(&out));
        assert!(out.stderr.is_empty(), "{tool}: {}", stderr(&out));
    }
    let out = run("bpfgen", &["nosuch"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("unknown generator 'nosuch'"));
}

/// `*{m-n}` with a maximum above 63 (the original's own help example, `*{4-255}`): the
/// original compared the length byte with m only, so on names (labels of 1 to 63 bytes) it
/// matched a first label of m or more characters; so does this program, and its assembly says
/// how the bound was read.
#[test]
fn wildcard_maximum_above_63_means_the_longest_label() {
    for shape in [Shape::V4, Shape::V6] {
        for len in 1..=63usize {
            let name = format!("{}.example.net", "a".repeat(len));
            for (pattern, min) in [("*{4-255}.example.net", 4), ("*{0-1000}.example.net", 1)] {
                assert_eq!(
                    verdict("", &[pattern], &name, shape) != 0,
                    len >= min,
                    "{pattern} vs a {len}-character label on {shape:?}"
                );
            }
        }
    }
    let assembly = generate(
        "dns",
        &["--".into(), "*{4-255}.example.net".into()],
        &GenOptions::default(),
    )
    .unwrap()
    .assembly;
    assert!(
        assembly.contains(
            "; skip one label of 4 to 63 characters (a maximum above 63 means 63, the longest label)"
        ),
        "{assembly}"
    );
    let out = run("bpfgen", &["dns", "--help"], b"");
    assert!(
        stdout(&out).contains("*{4-255}.example.com"),
        "{}",
        stdout(&out)
    );
}

/// Upper-case letters in a pattern without -i: a warning on stderr (the program is still
/// printed), none with -q, with -i, or when the letter is a %XX escape.
#[test]
fn upper_case_patterns_without_ignore_case_are_warned_about() {
    let generator = parse_generator("dns", &["--".into(), "WWW.example.net".into()]).unwrap();
    assert_eq!(generator.warnings().len(), 1);
    assert!(generator.warnings()[0].contains("pattern 'WWW.example.net' has upper-case letters"));
    let out = run(
        "bpfgen",
        &["dns", "--", "WWW.example.net", "a.Example.org"],
        b"",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!out.stdout.is_empty());
    let warnings: Vec<String> = stderr(&out).lines().map(str::to_string).collect();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings[0]
            .starts_with("bpfgen: warning: pattern 'WWW.example.net' has upper-case letters")
            && warnings[0].contains("add -i"),
        "{warnings:?}"
    );
    assert!(warnings[1].contains("'a.Example.org'"), "{warnings:?}");
    for args in [
        &["-q", "dns", "--", "WWW.example.net"][..],
        &["--quiet", "dns", "--", "WWW.example.net"],
        &["dns", "--", "-i", "WWW.example.net"],
        &["dns", "--", "%41bc.example.net", "www.example.net"],
        &["dns_validate"],
    ] {
        let out = run("bpfgen", args, b"");
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert!(out.stderr.is_empty(), "{args:?}: {}", stderr(&out));
        assert!(!out.stdout.is_empty(), "{args:?}");
    }
}
