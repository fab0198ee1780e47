//! triage on labelled scenarios built here (simple-dns messages in etherparse packets):
//! random subdomains under other zones and label lengths, fixed-length floods beside legitimate
//! names of that length, IPv6-only floods with randomized case, one-tool header fingerprints,
//! several floods at once, a low-rate flood beside a legitimate spike, and quiet traffic.
//!
//! The rules triage prints are checked independently of its own counts: each `bpfgen` list of
//! the JSON is parsed and built by the library for Ethernet (offset 14) and run by the VM on
//! every frame, in order (first match decides), on UDP packets to port 53 of its family.

use std::path::{Path, PathBuf};

use bpftools::cli::gen_args::parse_generator;
use bpftools::gen::{build, GenOptions};
use bpftools::pcap::link::{LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL2, LINKTYPE_RAW};
use bpftools::pcap::Writer;
use bpftools::vm::{Profile, Program};
use etherparse::PacketBuilder;
use serde_json::Value;
use simple_dns::rdata::OPT;
use simple_dns::{Label, Name, Packet, Question, CLASS};

use crate::common::{run, stderr, stdout};
use crate::rng::Rng;

const LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
const LOWER_DIGITS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// How one query looks.
#[derive(Clone)]
struct Query {
    name: String,
    qtype: u16,
    /// The whole flags word.
    flags: u16,
    /// EDNS payload size and DO bit; `None` for no OPT record.
    edns: Option<(u16, bool)>,
    v6: bool,
    /// Source address index (distinct sources).
    source: u32,
}

/// One labelled packet.
struct Labelled {
    frame: Vec<u8>,
    label: String,
}

/// Randomizes letter case, as DNS 0x20 resolvers do.
fn randomize_case(name: &str, rng: &mut Rng) -> String {
    name.chars()
        .map(|c| {
            if rng.chance(50) {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

fn dns_message(q: &Query, id: u16) -> Vec<u8> {
    let labels: Vec<Label> = q
        .name
        .split('.')
        .filter(|l| !l.is_empty())
        .map(|l| Label::new_unchecked(l.as_bytes().to_vec()))
        .collect();
    let mut packet = Packet::new_query(id);
    packet.questions.push(Question::new(
        Name::new_with_labels(&labels),
        simple_dns::TYPE::from(q.qtype).into(),
        CLASS::IN.into(),
        false,
    ));
    if let Some((size, _)) = q.edns {
        *packet.opt_mut() = Some(OPT {
            opt_codes: Vec::new(),
            udp_packet_size: size,
            version: 0,
        });
    }
    let mut bytes = packet.build_bytes_vec().expect("dns message");
    bytes[2..4].copy_from_slice(&q.flags.to_be_bytes());
    if let Some((_, true)) = q.edns {
        // The DO bit: the high bit of the OPT record's flags (the TTL's third byte), the
        // record being the last 11 bytes.
        let at = bytes.len() - 4;
        bytes[at] |= 0x80;
    }
    bytes
}

/// An Ethernet frame carrying the query to the server (192.0.2.53 or 2001:db8::53).
fn frame(q: &Query, id: u16) -> Vec<u8> {
    let payload = dns_message(q, id);
    let s = q.source;
    let builder = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 0x53]);
    let builder = if q.v6 {
        let mut src = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        src[4..8].copy_from_slice(&s.to_be_bytes());
        src[15] = 1;
        let mut dst = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        dst[15] = 0x53;
        builder.ipv6(src, dst, 64)
    } else {
        let src = [
            (s >> 16) as u8 | 0x40,
            (s >> 8) as u8,
            s as u8,
            (s % 200 + 1) as u8,
        ];
        builder.ipv4(src, [192, 0, 2, 53], 64)
    };
    let builder = builder.udp(1024 + id % 60000, 53);
    let mut out = Vec::with_capacity(builder.size(payload.len()));
    builder.write(&mut out, &payload).expect("packet");
    out
}

/// Legitimate traffic for a zone: popular names, a long tail of one-label names of every
/// length, deep names, several types, EDNS mostly, some CD, 15% of resolvers randomizing case.
struct Legit {
    names: Vec<(String, u64)>,
    resolvers: u32,
    v6_percent: u64,
    /// Flags legitimate clients set (0 for an authoritative server, RD for a resolver).
    base_flags: u16,
}

impl Legit {
    fn for_zones(zones: &[&str], tail: &[&str], base_flags: u16) -> Legit {
        let mut names = Vec::new();
        for zone in zones {
            names.push((format!("www.{zone}"), 300));
            names.push((zone.to_string(), 80));
            names.push((format!("mail.{zone}"), 60));
            names.push((format!("api.{zone}"), 40));
            names.push((format!("img.cdn.{zone}"), 15));
            names.push((format!("_dmarc.{zone}"), 10));
            for label in tail {
                names.push((format!("{label}.{zone}"), 8));
            }
        }
        Legit {
            names,
            resolvers: 60,
            v6_percent: 25,
            base_flags,
        }
    }

    fn query(&self, rng: &mut Rng) -> Query {
        let total: u64 = self.names.iter().map(|(_, w)| w).sum();
        let mut at = rng.below(total);
        let mut name = self.names[0].0.clone();
        for (n, w) in &self.names {
            if at < *w {
                name = n.clone();
                break;
            }
            at -= w;
        }
        let source = rng.below(u64::from(self.resolvers)) as u32;
        // Resolvers 0..9 of every 60 randomize case (DNS 0x20).
        if source % 60 < 9 {
            name = randomize_case(&name, rng);
        }
        let qtype = rng.pick(&[1u16, 1, 1, 28, 28, 65, 16, 15]);
        let edns = if rng.chance(85) {
            Some((rng.pick(&[1232u16, 1232, 1400, 4096]), rng.chance(60)))
        } else {
            None
        };
        let flags = self.base_flags | if rng.chance(20) { 0x0010 } else { 0 };
        Query {
            name,
            qtype,
            flags,
            edns,
            v6: rng.below(100) < self.v6_percent,
            source,
        }
    }
}

/// A flood: its label id, how many packets, and what makes each query.
type FloodSpec<'a> = (&'a str, usize, &'a mut dyn FnMut(&mut Rng) -> Query);

/// Legitimate and flood packets interleaved at random.
fn mix(
    rng: &mut Rng,
    legit: &Legit,
    legit_count: usize,
    floods: &mut [FloodSpec<'_>],
) -> Vec<Labelled> {
    let total: usize = legit_count + floods.iter().map(|f| f.1).sum::<usize>();
    let mut left: Vec<usize> = floods.iter().map(|f| f.1).collect();
    let mut legit_left = legit_count;
    let mut out = Vec::with_capacity(total);
    for index in 0..total {
        let remaining = (legit_left + left.iter().sum::<usize>()) as u64;
        let mut at = rng.below(remaining);
        let id = index as u16;
        if at < legit_left as u64 {
            legit_left -= 1;
            let q = legit.query(rng);
            out.push(Labelled {
                frame: frame(&q, id),
                label: "legit".into(),
            });
            continue;
        }
        at -= legit_left as u64;
        for (k, flood) in floods.iter_mut().enumerate() {
            if at < left[k] as u64 {
                left[k] -= 1;
                let q = (flood.2)(rng);
                out.push(Labelled {
                    frame: frame(&q, id),
                    label: format!("flood:{}", flood.0),
                });
                break;
            }
            at -= left[k] as u64;
        }
    }
    out
}

/// Writes the frames as a pcap of `linktype` (Ethernet frames are converted for raw IP and
/// SLL2), 1000 packets per second.
fn write_pcap(path: &Path, packets: &[Labelled], linktype: u32) {
    let file = std::fs::File::create(path).expect("create pcap");
    let mut writer = Writer::new(file, linktype, false).expect("pcap header");
    for (index, p) in packets.iter().enumerate() {
        let data = match linktype {
            LINKTYPE_RAW => p.frame[14..].to_vec(),
            LINKTYPE_LINUX_SLL2 => {
                // The cooked header, written by its named fields: the ethertype, interface 2,
                // Ethernet, "to us", the 6-byte source MAC.
                use bpftools::pcap::link::sll2::{field, HEADER_LEN};
                let mut sll2 = vec![0u8; HEADER_LEN];
                sll2[field::PROTOCOL].copy_from_slice(&p.frame[12..14]);
                sll2[field::INTERFACE_INDEX].copy_from_slice(&2u32.to_be_bytes());
                sll2[field::HARDWARE_TYPE].copy_from_slice(&1u16.to_be_bytes());
                sll2[field::ADDRESS_LEN] = 6;
                sll2[field::ADDRESS][..6].copy_from_slice(&p.frame[6..12]);
                sll2.extend_from_slice(&p.frame[14..]);
                sll2
            }
            _ => p.frame.clone(),
        };
        let ts = std::time::Duration::from_micros(1_700_000_000_000_000 + index as u64 * 1000);
        writer
            .write(ts, data.len() as u32, &data)
            .expect("write packet");
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("triage-it-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Runs triage --json on the packets; returns (exit code, JSON).
fn triage(name: &str, packets: &[Labelled], extra: &[&str]) -> (i32, Value) {
    let dir = temp_dir(name);
    let path = dir.join("capture.pcap");
    write_pcap(&path, packets, LINKTYPE_ETHERNET);
    let mut args: Vec<&str> = vec!["--json"];
    args.extend_from_slice(extra);
    let path_text = path.to_string_lossy().into_owned();
    args.push(&path_text);
    let out = run("triage", &args, b"");
    let _ = std::fs::remove_dir_all(&dir);
    let code = out.status.code().expect("exit code");
    assert!(code < 2, "triage failed: {}", stderr(&out));
    let json: Value = serde_json::from_str(&stdout(&out)).expect("triage prints JSON");
    (code, json)
}

/// What the rules do, evaluated here: per label, (packets, dropped).
fn evaluate(rules: &Value, packets: &[Labelled]) -> std::collections::BTreeMap<String, (u64, u64)> {
    let programs: Vec<(bool, bool, Program)> = rules
        .as_array()
        .expect("rules array")
        .iter()
        .map(|rule| {
            let words: Vec<String> = rule["bpfgen"]
                .as_array()
                .expect("bpfgen array")
                .iter()
                .map(|w| w.as_str().expect("word").to_string())
                .collect();
            let inet6 = words[0] == "-6";
            let rest = &words[usize::from(inet6)..];
            let generator = parse_generator(&rest[0], &rest[1..]).expect("bpfgen arguments");
            let generated = build(
                &generator,
                &GenOptions {
                    inet6,
                    negate: false,
                    offset: 14,
                },
            )
            .expect("rule builds");
            let program = Program::new(&generated.insns, Profile::Socket).expect("valid");
            (rule["action"] == "drop", inet6, program)
        })
        .collect();
    let mut out = std::collections::BTreeMap::new();
    for p in packets {
        let v6 = p.frame[12..14] == [0x86, 0xdd];
        let dropped = programs
            .iter()
            .find(|(_, inet6, program)| *inet6 == v6 && program.run(&p.frame) != 0)
            .is_some_and(|(drop, _, _)| *drop);
        let entry = out.entry(p.label.clone()).or_insert((0u64, 0u64));
        entry.0 += 1;
        entry.1 += u64::from(dropped);
    }
    out
}

/// Asserts every flood >= 99% dropped and at most `legit_max` legitimate packets dropped.
fn assert_stopped(json: &Value, packets: &[Labelled], legit_max: u64) {
    let outcome = evaluate(&json["rules"], packets);
    for (label, (total, dropped)) in &outcome {
        if label == "legit" {
            // The share triage reports is a bound: never below the truth.
            let bound = json["outcome"]["legit_dropped_share"].as_f64().unwrap();
            let truth = *dropped as f64 / (*total).max(1) as f64;
            assert!(
                bound + 1e-9 >= truth,
                "reported bound {bound} below the truth {truth}: {}",
                json["outcome"]
            );
            assert!(
                *dropped <= legit_max,
                "{dropped} of {total} legitimate packets dropped; rules: {}",
                json["rules"]
            );
        } else {
            assert!(
                *dropped as f64 >= 0.99 * *total as f64,
                "{label}: only {dropped} of {total} dropped; rules: {}",
                json["rules"]
            );
        }
    }
}

fn random_under(
    parent: &str,
    min: usize,
    max: usize,
    alphabet: &'static [u8],
) -> impl FnMut(&mut Rng) -> Query {
    let parent = parent.to_string();
    move |rng: &mut Rng| Query {
        name: {
            let len = min + rng.below((max - min + 1) as u64) as usize;
            format!("{}.{parent}", rng.text(len, alphabet))
        },
        qtype: 1,
        flags: 0x0100,
        edns: Some((4096, false)),
        v6: false,
        source: 1000 + rng.below(50_000) as u32,
    }
}

fn words(json: &Value, rule: usize) -> Vec<String> {
    json["rules"][rule]["bpfgen"]
        .as_array()
        .expect("bpfgen")
        .iter()
        .map(|w| w.as_str().unwrap_or("").to_string())
        .collect()
}

const TAIL: [&str; 12] = [
    "a",
    "go",
    "vpn",
    "blog",
    "store",
    "status",
    "support",
    "download",
    "analytics",
    "newsletter",
    "translation",
    "authentication",
];

#[test]
fn random_subdomains_under_another_zone_are_dropped_and_legit_kept() {
    let mut rng = Rng::new(11);
    let legit = Legit::for_zones(&["shop.example.org"], &TAIL, 0);
    let mut flood = random_under("static.shop.example.org", 5, 9, LOWER_DIGITS);
    let packets = mix(&mut rng, &legit, 3000, &mut [("static", 5000, &mut flood)]);
    let (code, json) = triage("other-zone", &packets, &[]);
    assert_eq!(code, 0, "a flood is found: exit 0");
    assert_eq!(
        json["floods"].as_array().unwrap().len(),
        1,
        "{}",
        json["floods"]
    );
    let flood = &json["floods"][0];
    assert_eq!(flood["kind"], "random-subdomain");
    assert_eq!(flood["suffix"], "static.shop.example.org");
    assert_eq!(flood["child_lengths"], serde_json::json!([5, 9]));
    assert_stopped(&json, &packets, 0);
    // The JSON's shape, as documented.
    let summary = &json["summary"];
    assert_eq!(summary["packets"], 8000);
    assert_eq!(summary["queries"], 8000);
    for key in [
        "qps",
        "top_names",
        "top_suffixes",
        "qtypes",
        "rcodes",
        "top_sources",
        "flags",
        "edns",
        "fingerprints",
    ] {
        assert!(!summary[key].is_null(), "summary has {key}");
    }
    let rule = &json["rules"][0];
    assert_eq!(rule["action"], "drop");
    assert_eq!(rule["matched"], 5000);
    assert_eq!(rule["judged_flood"]["flood-1"], 5000);
    assert_eq!(
        words(&json, 0),
        ["dns", "--", "*{5-9}.static.shop.example.org"]
    );
}

#[test]
fn fixed_length_flood_under_apex_keeps_legit_names_of_that_length() {
    let mut rng = Rng::new(22);
    // Legitimate one-label names of 6 letters exist (and are asked with randomized case).
    let tail = [
        "portal",
        "events",
        "status",
        "a",
        "cdn",
        "go",
        "newsletter",
        "x1",
    ];
    let legit = Legit::for_zones(&["example.co.uk"], &tail, 0);
    let mut flood = random_under("example.co.uk", 6, 6, LOWER);
    let packets = mix(&mut rng, &legit, 4000, &mut [("apex6", 6000, &mut flood)]);
    let (code, json) = triage("apex", &packets, &[]);
    assert_eq!(code, 0);
    assert_stopped(&json, &packets, 0);
    let rules = json["rules"].as_array().unwrap();
    // IPv4 and IPv6 alike: the server takes queries over both.
    assert_eq!(rules.len(), 4, "{}", json["rules"]);
    assert_eq!(rules[0]["action"], "accept");
    assert_eq!(rules[2]["family"], "ipv6");
    let accept = words(&json, 0);
    assert!(accept.contains(&"-i".to_string()), "{accept:?}");
    for name in [
        "portal.example.co.uk",
        "events.example.co.uk",
        "status.example.co.uk",
    ] {
        assert!(
            accept.contains(&name.to_string()),
            "{name} is an exception: {accept:?}"
        );
    }
    // Chain mode ignores case: so does the measured drop rule.
    assert_eq!(words(&json, 1), ["dns", "--", "-i", "*{6-6}.example.co.uk"]);
    // Chain mode deploys accept exceptions.
    let deploy = json["deploy"][0].as_str().unwrap();
    assert!(
        deploy.contains("--chain") && deploy.contains("--accept=portal.example.co.uk"),
        "{deploy}"
    );
}

#[test]
fn ipv6_only_flood_with_randomized_case_gets_ipv6_case_blind_rules() {
    let mut rng = Rng::new(33);
    let legit = Legit::for_zones(&["svc.example"], &TAIL, 0);
    let mut inner = random_under("api.svc.example", 10, 14, LOWER_DIGITS);
    let mut flood = move |rng: &mut Rng| {
        let mut q = inner(rng);
        q.v6 = true;
        q.name = randomize_case(&q.name, rng);
        q
    };
    let packets = mix(&mut rng, &legit, 3000, &mut [("api6", 4000, &mut flood)]);
    let (code, json) = triage("v6", &packets, &[]);
    assert_eq!(code, 0);
    assert_stopped(&json, &packets, 0);
    let rules = json["rules"].as_array().unwrap();
    assert!(!rules.is_empty());
    // The flood came over IPv6 only, but the server takes IPv4 queries too: both families
    // get the rule (resolvers move to the other family when one is dropped).
    let mut v6 = 0;
    for (index, _) in rules.iter().enumerate() {
        let w = words(&json, index);
        v6 += usize::from(w[0] == "-6");
        assert!(w.contains(&"-i".to_string()), "randomized case: {w:?}");
    }
    assert!(v6 > 0 && v6 < rules.len(), "{}", json["rules"]);
    assert_eq!(json["floods"][0]["randomized_case"], true);
}

fn tool_query(
    name: &'static str,
    qtype: u16,
    flags: u16,
    edns: Option<(u16, bool)>,
) -> impl FnMut(&mut Rng) -> Query {
    move |rng: &mut Rng| Query {
        name: name.to_string(),
        qtype,
        flags,
        edns,
        v6: rng.chance(5),
        source: 5000 + rng.below(100_000) as u32,
    }
}

#[test]
fn one_tool_header_fingerprint_on_a_real_name_is_dropped_alone() {
    let mut rng = Rng::new(44);
    // A resolver-facing server: legitimate clients set RD too, so RD separates nothing.
    let legit = Legit::for_zones(&["example.org"], &TAIL, 0x0100);
    // The tool sets RD and the reserved Z bit, sends no EDNS, asks TXT.
    let mut flood = tool_query("example.org", 16, 0x0140, None);
    let packets = mix(&mut rng, &legit, 4000, &mut [("zbit", 6000, &mut flood)]);
    let (code, json) = triage("zbit", &packets, &[]);
    assert_eq!(code, 0);
    assert_eq!(json["floods"][0]["kind"], "fingerprint");
    assert_eq!(json["floods"][0]["name"], "example.org");
    assert_stopped(&json, &packets, 0);
    // No name rule: legitimate example.org queries stay.
    for (index, _) in json["rules"].as_array().unwrap().iter().enumerate() {
        assert_ne!(words(&json, index)[0], "dns");
    }
}

#[test]
fn fingerprint_by_edns_size_alone_is_dropped() {
    let mut rng = Rng::new(55);
    let legit = Legit::for_zones(&["example.org"], &TAIL, 0);
    // Same flags as everyone; an EDNS size no legitimate client uses.
    let mut flood = tool_query("www.example.org", 1, 0, Some((512, false)));
    let packets = mix(&mut rng, &legit, 4000, &mut [("edns512", 5000, &mut flood)]);
    let (code, json) = triage("edns", &packets, &[]);
    assert_eq!(code, 0);
    assert_stopped(&json, &packets, 0);
}

#[test]
fn several_floods_at_once_are_all_dropped() {
    let mut rng = Rng::new(66);
    let legit = Legit::for_zones(&["example.net", "example.com"], &TAIL, 0);
    let mut a = random_under("a.example.net", 8, 20, LOWER);
    let mut b_inner = random_under("b.example.com", 4, 7, LOWER_DIGITS);
    let mut b = move |rng: &mut Rng| {
        let mut q = b_inner(rng);
        q.v6 = rng.chance(50);
        q.qtype = 28;
        q
    };
    let mut c = tool_query("example.net", 255, 0x0040, None);
    let packets = mix(
        &mut rng,
        &legit,
        4000,
        &mut [
            ("a", 3000, &mut a),
            ("b", 3000, &mut b),
            ("c", 2000, &mut c),
        ],
    );
    let (code, json) = triage("several", &packets, &[]);
    assert_eq!(code, 0);
    assert_eq!(
        json["floods"].as_array().unwrap().len(),
        3,
        "{}",
        json["floods"]
    );
    assert_stopped(&json, &packets, 0);
    // Both families get a rule for the mixed flood.
    let families: Vec<bool> = (0..json["rules"].as_array().unwrap().len())
        .filter(|&i| words(&json, i).iter().any(|w| w.contains("b.example.com")))
        .map(|i| words(&json, i)[0] == "-6")
        .collect();
    assert!(
        families.contains(&true) && families.contains(&false),
        "{}",
        json["rules"]
    );
}

#[test]
fn low_rate_flood_beside_a_legitimate_spike() {
    let mut rng = Rng::new(77);
    let mut legit = Legit::for_zones(&["example.net"], &TAIL, 0);
    // A legitimate spike: www asked ten times as often as usual.
    legit.names[0].1 *= 10;
    let mut flood = random_under("example.net", 10, 16, LOWER_DIGITS);
    // Rare names at 2.5% of the parent's traffic, with no response to say they do not
    // exist: the way legitimate rare names look, not a flood.
    let packets = mix(&mut rng, &legit, 12_000, &mut [("slow", 300, &mut flood)]);
    let (code, json) = triage("spike-low", &packets, &[]);
    assert_eq!(code, 1, "{}", json["floods"]);
    // The same flood once it outnumbers the parent's own traffic is found, beside the spike.
    let mut flood = random_under("example.net", 10, 16, LOWER_DIGITS);
    let packets = mix(&mut rng, &legit, 12_000, &mut [("slow", 8_000, &mut flood)]);
    let (code, json) = triage("spike", &packets, &[]);
    assert_eq!(code, 0);
    assert_eq!(
        json["floods"].as_array().unwrap().len(),
        1,
        "{}",
        json["floods"]
    );
    assert_eq!(json["floods"][0]["suffix"], "example.net");
    assert_stopped(&json, &packets, 0);
}

#[test]
fn quiet_traffic_has_no_flood_and_exit_1() {
    let mut rng = Rng::new(88);
    let legit = Legit::for_zones(&["example.net", "example.com", "example.org"], &TAIL, 0);
    let packets = mix(&mut rng, &legit, 9000, &mut []);
    let (code, json) = triage("quiet", &packets, &[]);
    assert_eq!(code, 1, "no flood: exit 1");
    assert_eq!(json["floods"], serde_json::json!([]));
    assert_eq!(json["rules"], serde_json::json!([]));
    // The readable report says so.
    let dir = temp_dir("quiet-text");
    let path = dir.join("q.pcap");
    write_pcap(&path, &packets, LINKTYPE_ETHERNET);
    let out = run("triage", &[path.to_str().unwrap()], b"");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("No flood found"), "{}", stdout(&out));
}

#[test]
fn zone_names_asked_rarely_are_kept_with_the_zone() {
    let mut rng = Rng::new(99);
    let legit = Legit::for_zones(&["example.net"], &TAIL, 0);
    // Legitimate names of the flood's shape, each asked once: only the zone tells them apart.
    let rare: Vec<String> = (0..20)
        .map(|i| format!("host{i:04}x.example.net"))
        .collect();
    let mut flood = random_under("example.net", 9, 9, LOWER_DIGITS);
    let mut packets = mix(&mut rng, &legit, 3000, &mut [("apex9", 4000, &mut flood)]);
    for (index, name) in rare.iter().enumerate() {
        let q = Query {
            name: name.clone(),
            qtype: 1,
            flags: 0,
            edns: Some((1232, false)),
            v6: false,
            source: 7,
        };
        packets.insert(
            index * 300,
            Labelled {
                frame: frame(&q, 60_000 + index as u16),
                label: "legit".into(),
            },
        );
    }
    let dir = temp_dir("zone");
    let zone = dir.join("example.net.zone");
    let mut text = String::from("$ORIGIN example.net.\n$TTL 300\n@ IN SOA ns1 host 1 2 3 4 5\n");
    for name in &rare {
        text.push_str(&format!(
            "{} IN A 192.0.2.1\n",
            name.trim_end_matches(".example.net")
        ));
    }
    for label in TAIL {
        text.push_str(&format!("{label} IN A 192.0.2.2\n"));
    }
    std::fs::write(&zone, text).unwrap();
    let (code, json) = triage("zone-run", &packets, &["--zone", zone.to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(code, 0);
    assert_stopped(&json, &packets, 0);
    assert_eq!(json["rules"][0]["action"], "accept");
}

#[test]
fn other_link_types_and_stdin_give_the_same_rules() {
    let mut rng = Rng::new(123);
    let legit = Legit::for_zones(&["example.net"], &TAIL, 0);
    let mut flood = random_under("www.example.net", 8, 12, LOWER_DIGITS);
    let packets = mix(&mut rng, &legit, 2000, &mut [("www", 3000, &mut flood)]);
    let (_, reference) = triage("eth", &packets, &[]);
    let dir = temp_dir("links");
    for linktype in [LINKTYPE_RAW, LINKTYPE_LINUX_SLL2] {
        let path = dir.join(format!("{linktype}.pcap"));
        write_pcap(&path, &packets, linktype);
        let out = run("triage", &["--json", path.to_str().unwrap()], b"");
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
        assert_eq!(
            json["rules"],
            reference["rules"]
                .clone()
                .as_array()
                .map(|rules| {
                    // The check commands name the file; everything else is the same.
                    let mut rules = rules.clone();
                    for (r, theirs) in rules.iter_mut().zip(json["rules"].as_array().unwrap()) {
                        r["check"] = theirs["check"].clone();
                    }
                    Value::Array(rules)
                })
                .unwrap()
        );
        // From standard input.
        let bytes = std::fs::read(&path).unwrap();
        let out = run("triage", &["--json", "-"], &bytes);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
        assert_eq!(
            json["rules"].as_array().unwrap().len(),
            reference["rules"].as_array().unwrap().len()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    let out = run("triage", &["-"], b"not a capture at all");
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.starts_with("triage: <stdin>: "), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let out = run("triage", &["/nonexistent/capture.pcap"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("cannot open '/nonexistent/capture.pcap'"));
    let dir = temp_dir("badzone");
    let zone = dir.join("z");
    std::fs::write(&zone, "$INCLUDE other.zone\n").unwrap();
    let out = run("triage", &["--zone", zone.to_str().unwrap(), "-"], b"");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("z:1: $INCLUDE"), "{}", stderr(&out));
}

#[test]
fn baseline_decides_what_is_new() {
    let mut rng = Rng::new(321);
    let legit = Legit::for_zones(&["example.net"], &TAIL, 0);
    let mut flood = random_under("www.example.net", 8, 12, LOWER_DIGITS);
    let normal = mix(&mut rng, &legit, 3000, &mut []);
    let flooded = mix(&mut rng, &legit, 3000, &mut [("www", 3000, &mut flood)]);
    let dir = temp_dir("baseline");
    let normal_path = dir.join("normal.pcap");
    let flooded_path = dir.join("flooded.pcap");
    write_pcap(&normal_path, &normal, LINKTYPE_ETHERNET);
    write_pcap(&flooded_path, &flooded, LINKTYPE_ETHERNET);
    let (normal_arg, flooded_arg) = (
        normal_path.to_str().unwrap().to_string(),
        flooded_path.to_str().unwrap().to_string(),
    );
    // Against normal times, the flood stands out.
    let (code, json) = triage("baseline-normal", &flooded, &["--baseline", &normal_arg]);
    assert_eq!(code, 0);
    assert_stopped(&json, &flooded, 0);
    // Against a baseline that already had it, it is the usual traffic: nothing new.
    let (code, json) = triage("baseline-same", &flooded, &["--baseline", &flooded_arg]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(code, 1, "{}", json["floods"]);
}

/// A lab capture from testdata (gzip'ed), as a plain pcap in `dir`.
fn lab_capture(dir: &Path, set: &str, name: &str) -> PathBuf {
    let gz = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/triage-lab")
        .join(set)
        .join(format!("{name}.pcap.gz"));
    let path = dir.join(format!("{name}.pcap"));
    std::fs::write(&path, gunzip(&gz)).unwrap();
    path
}

/// gunzip through the system's gzip (no decompression crate for the tests).
fn gunzip(gz: &Path) -> Vec<u8> {
    let result = std::process::Command::new("gzip")
        .arg("-dc")
        .arg(gz)
        .output()
        .expect("gzip runs (Debian: apt-get install gzip)");
    assert!(result.status.success(), "gzip -dc {}", gz.display());
    result.stdout
}

#[test]
fn real_quiet_traffic_with_wildcard_names_is_no_flood() {
    // Knot serving a zone with wildcards (*.customers, *.review, ...), resolvers and a
    // monitor: the rarely asked names under the wildcards are answered NOERROR.
    let dir = temp_dir("lab-quiet");
    let path = lab_capture(&dir, "example-net", "quiet");
    let out = run("triage", &["--json", path.to_str().unwrap()], b"");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json["floods"].as_array().unwrap().len(), 0);
    assert_eq!(json["rules"].as_array().unwrap().len(), 0);
}

#[test]
fn real_fixed_name_flood_is_dropped_by_its_sources() {
    // www.example.net A from 32 sources that send nothing else, beside resolvers asking the
    // same name: the rule names the sources, not the name.
    let dir = temp_dir("lab-www-fixed");
    let path = lab_capture(&dir, "example-net", "www-fixed");
    let out = run("triage", &["--json", path.to_str().unwrap()], b"");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json["floods"][0]["kind"], "sources", "{}", json["floods"]);
    assert_eq!(json["floods"][0]["sources"].as_array().unwrap().len(), 32);
    for rule in json["rules"].as_array().unwrap() {
        let words: Vec<&str> = rule["bpfgen"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w.as_str().unwrap())
            .collect();
        assert!(words.contains(&"tcpdump"), "{words:?}");
        assert!(
            rule["judged_legit"].as_object().unwrap().is_empty(),
            "{rule}"
        );
    }
    // Every rule's command generates, and the flood is proven (its sources sent nothing else).
    assert!(json["deploy_checks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c == ""));
    assert_eq!(json["outcome"]["legit_dropped_share"], 0.0);
    assert_eq!(json["outcome"]["proven_flood"], 25_600);
}

#[test]
fn real_water_torture_through_resolvers_is_dropped_and_said_unproven() {
    let dir = temp_dir("lab-torture");
    let path = lab_capture(&dir, "example-net", "torture");
    let out = run("triage", &[path.to_str().unwrap()], b"");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("random subdomains <random>.portal.example.net"),
        "{text}"
    );
    // No invented flood under the zone's wildcards.
    assert!(!text.contains("customers.example.net ("), "{text}");
    // Relayed by resolvers that also carry legitimate traffic: said, and the bound is high.
    assert!(text.contains("come from sources that also send legitimate queries (resolvers)"));
    assert!(
        text.contains("no evidence either way, answered NXDOMAIN"),
        "{text}"
    );
    // Both families, with the server's address of each.
    assert!(text.contains("iptables-bpf -i 10.88.0.2 "), "{text}");
    assert!(text.contains("iptables-bpf -6 -i fd88::2 "), "{text}");
}

#[test]
fn a_cut_last_record_is_a_warning_and_the_rest_is_reported() {
    let dir = temp_dir("lab-cut");
    let path = lab_capture(&dir, "example-net", "sub-dual");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.truncate(bytes.len() - 7);
    let out = run("triage", &["-"], &bytes);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("the last record is cut"), "{text}");
    assert!(text.contains("<random>.api.example.net"), "{text}");
}

#[test]
fn zone_wildcards_origin_and_bad_lines() {
    let dir = temp_dir("zones");
    let packets = {
        let mut rng = Rng::new(5);
        let legit = Legit::for_zones(&["example.net"], &TAIL, 0);
        mix(&mut rng, &legit, 200, &mut [])
    };
    let capture = dir.join("c.pcap");
    write_pcap(&capture, &packets, LINKTYPE_ETHERNET);
    let cap = capture.to_str().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    };
    // BIND layout: no $ORIGIN, the origin from the SOA's absolute names.
    let bind = write(
        "bind.zone",
        "$TTL 300\n@ IN SOA ns1.example.net. hostmaster.example.net. ( 1 2 3 4 5 )\n  IN NS ns1\nwww IN A 192.0.2.1\n*.users IN A 192.0.2.2\n",
    );
    let out = run("triage", &["--zone", &bind, cap], b"");
    assert!(
        stdout(&out).contains("zone: 2 names and 1 wildcards loaded (origin example.net)"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    // Without any origin: refused, naming the line, unless --zone-origin gives it.
    let bare = write("bare.zone", "$TTL 300\nwww IN A 192.0.2.1\n");
    let out = run("triage", &["--zone", &bare, cap], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("bare.zone:2: relative name 'www'"),
        "{}",
        stderr(&out)
    );
    let out = run(
        "triage",
        &["--zone", &bare, "--zone-origin", "example.net", cap],
        b"",
    );
    assert!(stdout(&out).contains("zone: 1 names and 0 wildcards loaded (origin example.net)"));
    // A garbage line is refused with its place; $ORIGIN . and the owner . are read.
    let garbage = write(
        "garbage.zone",
        "$ORIGIN .\n. IN NS a.root\nthis is not a record\n",
    );
    let out = run("triage", &["--zone", &garbage, cap], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("garbage.zone:3: not a record"),
        "{}",
        stderr(&out)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn standard_input_leaves_no_spool() {
    let dir = temp_dir("spool");
    let path = lab_capture(&dir, "example-net", "quiet");
    let bytes = std::fs::read(&path).unwrap();
    let tmp = dir.join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_triage"))
        .arg("-")
        .env("TMPDIR", &tmp)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            // While triage reads, its spool is already unlinked: the directory stays empty.
            child.stdin.take().unwrap().write_all(&bytes)?;
            assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
            child.wait()
        })
        .unwrap();
    assert_eq!(out.code(), Some(1));
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_check_line_counts_the_rule_on_a_vlan_capture() {
    let capture = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/captures/eth-vlan.pcap");
    let out = run("triage", &[capture.to_str().unwrap()], b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let check = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("check: "))
        .expect("a check line");
    let bin = Path::new(env!("CARGO_BIN_EXE_triage")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let ran = std::process::Command::new("bash")
        .args(["-c", check])
        .env("PATH", path)
        .output()
        .unwrap();
    assert!(
        ran.status.success(),
        "{check}: {}",
        String::from_utf8_lossy(&ran.stderr)
    );
    assert!(
        String::from_utf8_lossy(&ran.stderr).contains("matched 3000/3016 packets"),
        "{}",
        String::from_utf8_lossy(&ran.stderr)
    );
}

#[test]
fn text_and_json_report_the_same_figures() {
    // One report model renders both: the text's figures are the JSON's.
    let dir = temp_dir("lab-text-json");
    let path = lab_capture(&dir, "example-net", "two-waves");
    let text = stdout(&run("triage", &[path.to_str().unwrap()], b""));
    let out = run("triage", &["--json", path.to_str().unwrap()], b"");
    let _ = std::fs::remove_dir_all(&dir);
    let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let summary = &json["summary"];
    assert!(text.contains(&format!(
        "packets {}  (IPv4 {}, IPv6 {})  DNS {}  queries {}  responses {}",
        summary["packets"],
        summary["ip"]["ipv4"],
        summary["ip"]["ipv6"],
        summary["dns"],
        summary["queries"],
        summary["responses"]
    )));
    let floods = json["floods"].as_array().unwrap();
    assert!(!floods.is_empty());
    for flood in floods {
        assert!(text.contains(&format!(
            "{}: {}",
            flood["id"].as_str().unwrap(),
            flood["description"].as_str().unwrap()
        )));
        assert!(text.contains(&format!(
            "judged part of it: {} packets ({} over IPv6 by the first pass); the rules below drop {} (",
            flood["packets"], flood["ipv6"], flood["dropped"]
        )));
    }
    for (index, rule) in json["rules"].as_array().unwrap().iter().enumerate() {
        assert!(text.contains(&format!(
            "{}. {} ",
            index + 1,
            rule["action"].as_str().unwrap()
        )));
        assert!(text.contains(&format!("   matched {}: ", rule["matched"])));
        assert!(text.contains(rule["check"].as_str().unwrap()));
    }
    let outcome = &json["outcome"];
    assert!(text.contains(&format!(
        "legitimate queries dropped, at most: {} of the ",
        outcome["unproven_dropped"]
    )));
    for command in json["deploy"].as_array().unwrap() {
        assert!(text.contains(command.as_str().unwrap()));
    }
    // The most asked dropped names of each basis: at most five of each, most asked first.
    let dropped = outcome["top_dropped_names"].as_array().unwrap();
    assert!(!dropped.is_empty(), "{outcome}");
    let mut per_basis: std::collections::BTreeMap<&str, Vec<u64>> = Default::default();
    for entry in dropped {
        per_basis
            .entry(entry["basis"].as_str().unwrap())
            .or_default()
            .push(entry["queries"].as_u64().unwrap());
        assert!(text.contains(&format!(
            "  {}  ({})",
            entry["name"].as_str().unwrap(),
            entry["basis"].as_str().unwrap()
        )));
    }
    for counts in per_basis.values() {
        assert!(counts.len() <= 5);
        assert!(counts.windows(2).all(|w| w[0] >= w[1]), "{counts:?}");
    }
}
