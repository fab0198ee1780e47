//! triage on labelled scenarios built here (simple-dns messages in etherparse packets):
//! random subdomains under other zones and label lengths, fixed-length floods beside legitimate
//! names of that length, IPv6-only floods with randomized case, one-tool header fingerprints,
//! several floods at once, a low-rate flood beside a legitimate spike, and quiet traffic.
//!
//! The rules triage prints are checked independently of its own counts: each `bpfgen` list of
//! the JSON is parsed and built by the library for Ethernet (offset 14) and run by the VM on
//! every frame, in order (first match decides), on UDP packets to port 53 of its family.
//! The deployment commands are read back as the shell passes them (bash runs them with the
//! tools defined as functions that print their arguments): each `xdp-bpf` command's rules,
//! built the same way, give the verdicts of the `iptables-bpf` commands it stands beside on
//! every frame (and on each frame with its name in upper case), but for the names past the
//! chain's cut, which it accepts; as root, the real `xdp-bpf test` runs one printed command.

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

use crate::common::{bin, require_root, run, stderr, stdout};
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
    // The xdp-bpf commands deploy the same rules.
    let compared = compare_xdp_with_iptables(json, packets);
    assert!(
        compared.deployments > 0 && compared.packets > 0 && compared.rules > 0,
        "{compared:?}"
    );
}

/// A deployment command as the shell reads it: bash runs it with `iptables-bpf` and
/// `xdp-bpf` defined as functions that print their arguments and what they read on
/// standard input (a here-document's rules). Returns (arguments, standard input).
fn as_the_shell_reads(command: &str) -> (Vec<String>, String) {
    let script = format!(
        "set -f\n\
         iptables-bpf() {{ printf '%s\\0' \"$@\"; printf '\\001'; cat; }}\n\
         xdp-bpf() {{ printf '%s\\0' \"$@\"; printf '\\001'; cat; }}\n\
         {command}\n"
    );
    let out = std::process::Command::new("bash")
        .args(["-c", &script])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("bash runs");
    assert!(out.status.success(), "{command}: {}", stderr(&out));
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let (args, input) = text.split_once('\u{1}').expect("the tool was called");
    let args = args
        .strip_suffix('\0')
        .map(|a| a.split('\0').map(str::to_string).collect())
        .unwrap_or_default();
    (args, input.to_string())
}

/// A deployment as the test reads it from its command: the protected addresses, and the
/// rules in order (whether each drops, its program for Ethernet frames).
struct Deployed {
    inet6: bool,
    addresses: Vec<std::net::IpAddr>,
    rules: Vec<(bool, Program)>,
}

/// The program of a generator for Ethernet frames of one family.
fn program_for(generator: &bpftools::gen::Generator, inet6: bool) -> Program {
    let generated = build(
        generator,
        &GenOptions {
            inet6,
            negate: false,
            offset: 14,
        },
    )
    .expect("rule builds");
    Program::new(&generated.insns, Profile::Socket).expect("valid")
}

impl Deployed {
    /// Adds `dns` patterns in order: consecutive patterns of one action share a program (the
    /// first of them to match decides as any of them would).
    fn add_patterns(&mut self, patterns: &[(bool, String)], ignore_case: bool) {
        let mut at = 0;
        while at < patterns.len() {
            let drop = patterns[at].0;
            let run: Vec<String> = patterns[at..]
                .iter()
                .take_while(|(d, _)| *d == drop)
                .take(100)
                .map(|(_, p)| p.clone())
                .collect();
            at += run.len();
            let generator = bpftools::gen::Generator::Dns(bpftools::gen::DnsSpec {
                patterns: run,
                ignore_case,
                ext_headers: bpftools::gen::DEFAULT_EXT_HEADERS,
            });
            self.rules.push((drop, program_for(&generator, self.inet6)));
        }
    }

    /// Whether the frame is dropped; `None` when the deployment does not see it (another
    /// family, an address it does not protect, not UDP to port 53).
    fn drops(&self, frame: &[u8]) -> Option<bool> {
        let v6 = frame[12..14] == [0x86, 0xdd];
        if v6 != self.inet6 {
            return None;
        }
        let (dst, udp): (std::net::IpAddr, usize) = if v6 {
            let bytes: [u8; 16] = frame[38..54].try_into().unwrap();
            (bytes.into(), 14 + 40)
        } else {
            let bytes: [u8; 4] = frame[30..34].try_into().unwrap();
            (bytes.into(), 14 + usize::from(frame[14] & 0x0f) * 4)
        };
        let protocol = if v6 { frame[20] } else { frame[23] };
        if protocol != 17 || frame[udp + 2..udp + 4] != [0, 53] || !self.addresses.contains(&dst) {
            return None;
        }
        Some(
            self.rules
                .iter()
                .find(|(_, program)| program.run(frame) != 0)
                .is_some_and(|(drop, _)| *drop),
        )
    }
}

/// An `iptables-bpf` command triage prints, as deployed: its chain's accept and drop
/// patterns (case ignored), or its generator's drop rule. Returns the deployment and, for a
/// chain, its patterns (drop?, pattern) in order.
fn iptables_deployed(command: &str) -> (Deployed, Vec<(bool, String)>) {
    let (args, _) = as_the_shell_reads(command);
    let inet6 = args[0] == "-6";
    let mut deployed = Deployed {
        inet6,
        addresses: Vec::new(),
        rules: Vec::new(),
    };
    let mut at = usize::from(inet6);
    while at < args.len() {
        match args[at].as_str() {
            "-i" => deployed
                .addresses
                .push(args[at + 1].parse().expect("address")),
            "-c" | "--deployment" => {}
            "--chain" => {
                let patterns: Vec<(bool, String)> = args[at + 2..]
                    .iter()
                    .map(|word| match word.split_once('=') {
                        Some(("--accept", p)) => (false, p.to_string()),
                        Some(("--drop", p)) => (true, p.to_string()),
                        _ => panic!("chain word {word} of {command}"),
                    })
                    .collect();
                deployed.add_patterns(&patterns, true);
                return (deployed, patterns);
            }
            generator => {
                let generator =
                    parse_generator(generator, &args[at + 1..]).expect("generator arguments");
                deployed.rules.push((true, program_for(&generator, inet6)));
                return (deployed, Vec::new());
            }
        }
        at += 2;
    }
    panic!("no rule in {command}")
}

/// An `xdp-bpf` command triage prints, as the shell passes it: (the deployment's name, the
/// interface, the rules file's lines or the options' rules, whether names compare exactly,
/// the protected addresses).
struct XdpCommand {
    deployment: String,
    dev: String,
    rules: Vec<String>,
    match_case: bool,
    addresses: Vec<std::net::IpAddr>,
}

fn xdp_command(command: &str) -> XdpCommand {
    let (args, input) = as_the_shell_reads(command);
    assert_eq!(args[0], "apply", "{command}");
    let mut parsed = XdpCommand {
        deployment: String::new(),
        dev: String::new(),
        rules: Vec::new(),
        match_case: false,
        addresses: Vec::new(),
    };
    let mut at = 1;
    while at < args.len() {
        let word = args[at].as_str();
        let value = args.get(at + 1).cloned().unwrap_or_default();
        at += 2;
        match word {
            "--dev" => parsed.dev = value,
            "--deployment" => parsed.deployment = value,
            "-a" => parsed.addresses.push(value.parse().expect("address")),
            "--drop-bpf" => parsed.rules.push(format!("drop-bpf {value}")),
            "--rules" => {
                assert_eq!(value, "-", "{command}");
                parsed.rules.extend(
                    input
                        .lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty() && !l.starts_with('#'))
                        .map(str::to_string),
                );
            }
            "--match-case" => {
                parsed.match_case = true;
                at -= 1;
            }
            _ => {
                at -= 1;
                match word.split_once('=') {
                    Some(("--accept", p)) => parsed.rules.push(format!("accept {p}")),
                    Some(("--drop", p)) => parsed.rules.push(format!("drop {p}")),
                    _ => panic!("xdp-bpf word {word} of {command}"),
                }
            }
        }
    }
    parsed
}

/// Where the question's name of a query frame built here starts (uncompressed, after the
/// 12-byte header).
fn name_offset(frame: &[u8]) -> usize {
    let udp = if frame[12..14] == [0x86, 0xdd] {
        14 + 40
    } else {
        14 + usize::from(frame[14] & 0x0f) * 4
    };
    udp + 8 + 12
}

/// The question's name of a query frame built here, in lower case, dotted.
fn query_name(frame: &[u8]) -> String {
    let mut at = name_offset(frame);
    let mut labels = Vec::new();
    while frame[at] != 0 {
        let len = usize::from(frame[at]);
        labels.push(String::from_utf8_lossy(&frame[at + 1..at + 1 + len]).to_ascii_lowercase());
        at += 1 + len;
    }
    labels.join(".")
}

/// The frame with its question's name in upper case (case rules decide otherwise on it).
fn upper_cased(frame: &[u8]) -> Vec<u8> {
    let mut out = frame.to_vec();
    let mut at = name_offset(frame);
    while out[at] != 0 {
        let len = usize::from(out[at]);
        out[at + 1..at + 1 + len].make_ascii_uppercase();
        at += 1 + len;
    }
    out
}

/// Checks that each `xdp-bpf` deployment's rules are its plan's: the JSON's rules for its
/// flood and family, in order, each `dns` pattern a rule of its own (a chain's accepts
/// first, then the names past the chain's cut, then its drops), every other generator a
/// `drop-bpf` of the same generator. Returns the rules compared.
fn assert_xdp_rules_are_the_plans(json: &Value) -> usize {
    let mut compared = 0;
    for entry in json["deploy_xdp"].as_array().expect("deploy_xdp") {
        let plan: Vec<&Value> = json["rules"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| {
                r["family"] == entry["family"]
                    && r["floods"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|f| *f == entry["flood"])
            })
            .collect();
        let chained = plan.iter().any(|r| r["action"] == "accept");
        let mut expected: Vec<String> = Vec::new();
        for rule in &plan {
            if !chained && rule["action"] == "accept" {
                continue;
            }
            let words: Vec<String> = rule["bpfgen"]
                .as_array()
                .unwrap()
                .iter()
                .map(|w| w.as_str().unwrap().to_string())
                .skip_while(|w| w == "-6")
                .collect();
            let generator = parse_generator(&words[0], &words[1..]).expect("bpfgen arguments");
            match generator {
                bpftools::gen::Generator::Dns(spec)
                    if chained || spec.ignore_case != entry["match_case"] =>
                {
                    for pattern in spec.patterns {
                        expected.push(format!("{} {pattern}", rule["action"].as_str().unwrap()));
                    }
                }
                other => {
                    let mut line = vec!["drop-bpf".to_string(), other.name().to_string()];
                    line.extend(other.args());
                    expected.push(line.join(" "));
                }
            }
        }
        let rules: Vec<String> = entry["rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_string())
            .collect();
        // The names past the cut follow the last accept of the plan.
        let beyond = entry["accepts_beyond_iptables"].as_u64().unwrap() as usize;
        let accepts = expected.iter().filter(|r| r.starts_with("accept ")).count();
        assert_eq!(rules.len(), expected.len() + beyond, "{}", entry["command"]);
        let mut parsed_back = rules.clone();
        parsed_back.drain(accepts..accepts + beyond);
        for (ours, plans) in parsed_back.iter().zip(&expected) {
            let (Some(ours), Some(plans)) = (
                ours.strip_prefix("drop-bpf "),
                plans.strip_prefix("drop-bpf "),
            ) else {
                assert_eq!(ours, plans, "{}", entry["command"]);
                continue;
            };
            // A program rule: the plan's generator, which xdp-bpf builds for both families
            // (a tcpdump expression with a branch for the other family, whose verdicts
            // compare_xdp_with_iptables checks).
            let words: Vec<String> = ours.split_whitespace().map(str::to_string).collect();
            let generator = parse_generator(&words[0], &words[1..]).expect("drop-bpf");
            bpftools::ebpf::classic::ClassicRule::from_generator(&generator, false)
                .unwrap_or_else(|e| panic!("xdp-bpf cannot build {ours}: {e}"));
            match plans.strip_prefix("tcpdump -- ") {
                Some(expr) => assert!(
                    ours.starts_with(&format!("tcpdump -- ({expr}) or (")),
                    "{ours} for {plans}"
                ),
                None => assert_eq!(ours, plans),
            }
        }
        assert!(rules[accepts..accepts + beyond]
            .iter()
            .all(|r| r.starts_with("accept ")));
        compared += rules.len();
    }
    compared
}

/// What the test found comparing every `xdp-bpf` deployment with the `iptables-bpf`
/// commands it stands beside.
#[derive(Debug, Default)]
struct XdpComparison {
    /// Deployments compared.
    deployments: usize,
    /// Packets a deployment sees, each judged by both (as captured and in upper case).
    packets: u64,
    /// Of the upper-cased ones, those the iptables deployment drops.
    upper_dropped: u64,
    /// Of which judged otherwise: names past the chain's cut that xdp-bpf accepts.
    beyond_cut_packets: u64,
    /// Accept names past the chain's cut, over all deployments.
    beyond_cut_names: usize,
    /// Rules found to be their plan's.
    rules: usize,
}

/// Checks each `xdp-bpf` deployment of the JSON against the `iptables-bpf` commands it
/// stands beside, as the shell reads both: the same protected addresses, the same rules in
/// the same order (accept lists whole: the names past the chain's cut added after the
/// accepts), its rules list the lines its command gives, and, packet by packet (each rule
/// built by the generators and run by the VM, the first match deciding), the same verdicts
/// but for the queries for names past the cut, which it accepts and the chain drops.
fn compare_xdp_with_iptables(json: &Value, packets: &[Labelled]) -> XdpComparison {
    let deploy: Vec<&str> = json["deploy"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let xdp = json["deploy_xdp"].as_array().expect("deploy_xdp");
    let mut covered: Vec<usize> = Vec::new();
    let mut found = XdpComparison {
        rules: assert_xdp_rules_are_the_plans(json),
        ..XdpComparison::default()
    };
    for entry in xdp {
        let command = entry["command"].as_str().unwrap();
        let parsed = xdp_command(command);
        let rules: Vec<String> = entry["rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_string())
            .collect();
        assert_eq!(parsed.rules, rules, "{command}");
        assert_eq!(parsed.dev, "IFACE");
        assert_eq!(parsed.deployment, entry["deployment"].as_str().unwrap());
        assert_eq!(parsed.match_case, entry["match_case"].as_bool().unwrap());
        assert_eq!(
            command.contains("<<'EOF'\n"),
            rules.len() > 10,
            "a rules file past 10 rules: {command}"
        );
        // Protected addresses of the plan's family only: the other family's queries are
        // not the deployment's (xdp-bpf runs every rule on both).
        let inet6 = entry["family"] == "ipv6";
        assert!(!parsed.addresses.is_empty(), "{command}");
        assert!(parsed.addresses.iter().all(|a| a.is_ipv6() == inet6));
        // The iptables-bpf commands it stands for: together, one deployment.
        let beside: Vec<usize> = entry["iptables"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_u64().unwrap() as usize)
            .collect();
        assert!(!beside.is_empty());
        covered.extend(&beside);
        let mut iptables = Deployed {
            inet6,
            addresses: Vec::new(),
            rules: Vec::new(),
        };
        let mut chain: Vec<(bool, String)> = Vec::new();
        for &index in &beside {
            let (one, patterns) = iptables_deployed(deploy[index]);
            assert_eq!(one.inet6, inet6, "{}", deploy[index]);
            iptables.addresses = one.addresses;
            iptables.rules.extend(one.rules);
            chain.extend(patterns);
        }
        assert_eq!(parsed.addresses, iptables.addresses, "{command}");
        // A chain's rules, in order, are the xdp-bpf rules less the names past the cut.
        let beyond: Vec<String> = rules
            .iter()
            .filter_map(|r| r.strip_prefix("accept "))
            .filter(|p| !chain.iter().any(|(drop, q)| !drop && q == p))
            .map(str::to_string)
            .collect();
        if !chain.is_empty() {
            let listed: Vec<String> = rules
                .iter()
                .filter(|r| !beyond.iter().any(|b| r.strip_prefix("accept ") == Some(b)))
                .cloned()
                .collect();
            let chain_lines: Vec<String> = chain
                .iter()
                .map(|(drop, p)| format!("{} {p}", if *drop { "drop" } else { "accept" }))
                .collect();
            assert_eq!(listed, chain_lines, "{command}");
            // The names past the cut come after every accept and before the first drop.
            let first_drop = rules.iter().position(|r| !r.starts_with("accept "));
            assert!(rules[first_drop.unwrap_or(rules.len())..]
                .iter()
                .all(|r| !r.starts_with("accept ")));
        } else {
            assert!(beyond.is_empty(), "{command}");
        }
        assert_eq!(
            beyond.len() as u64,
            entry["accepts_beyond_iptables"].as_u64().unwrap()
        );
        found.beyond_cut_names += beyond.len();
        // The xdp-bpf rules, built as the tool reads them.
        let mut xdp_deployed = Deployed {
            inet6,
            addresses: parsed.addresses.clone(),
            rules: Vec::new(),
        };
        let mut patterns: Vec<(bool, String)> = Vec::new();
        for rule in &rules {
            if let Some(p) = rule.strip_prefix("accept ") {
                patterns.push((false, p.to_string()));
            } else if let Some(p) = rule.strip_prefix("drop ") {
                patterns.push((true, p.to_string()));
            } else {
                let words: Vec<String> = rule
                    .strip_prefix("drop-bpf ")
                    .expect("accept, drop or drop-bpf")
                    .split_whitespace()
                    .map(str::to_string)
                    .collect();
                xdp_deployed.add_patterns(&std::mem::take(&mut patterns), !parsed.match_case);
                let generator = parse_generator(&words[0], &words[1..]).expect("generator");
                xdp_deployed
                    .rules
                    .push((true, program_for(&generator, inet6)));
            }
        }
        xdp_deployed.add_patterns(&patterns, !parsed.match_case);
        let beyond: std::collections::BTreeSet<String> =
            beyond.iter().map(|b| b.to_ascii_lowercase()).collect();
        // Each query as captured, and in upper case (where the case rules tell apart).
        for (packet, upper) in packets
            .iter()
            .flat_map(|p| [(p.frame.clone(), false), (upper_cased(&p.frame), true)])
        {
            let (Some(theirs), Some(ours)) = (iptables.drops(&packet), xdp_deployed.drops(&packet))
            else {
                assert_eq!(
                    iptables.drops(&packet).is_some(),
                    xdp_deployed.drops(&packet).is_some()
                );
                continue;
            };
            found.packets += 1;
            found.upper_dropped += u64::from(upper && theirs);
            if theirs != ours {
                assert!(
                    theirs && !ours && beyond.contains(&query_name(&packet)),
                    "{} judged otherwise by {command} and {:?}",
                    query_name(&packet),
                    beside.iter().map(|&i| deploy[i]).collect::<Vec<_>>()
                );
                found.beyond_cut_packets += 1;
            } else if !beyond.is_empty() && beyond.contains(&query_name(&packet)) {
                panic!(
                    "{} is past the cut: the chain drops it, xdp-bpf must not",
                    query_name(&packet)
                );
            }
        }
        found.deployments += 1;
    }
    covered.sort_unstable();
    assert_eq!(
        covered,
        (0..deploy.len()).collect::<Vec<_>>(),
        "every iptables-bpf command has its xdp-bpf deployment beside it, once"
    );
    found
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
    // After them, the one xdp-bpf command of the incident (an interface carries one XDP
    // program): every plan's rules in order, a rule given twice kept at its first place, the
    // addresses of every plan; its rules (whole, a here-document past 10 rules) the plans'.
    let deploy = json["deploy"].as_array().unwrap();
    let xdp = json["deploy_xdp"].as_array().unwrap();
    assert!(!xdp.is_empty());
    let incident = &json["deploy_xdp_incident"];
    let command = incident["command"].as_str().unwrap();
    let at = text
        .find(&format!("  {command}\n"))
        .expect("the xdp-bpf command");
    for iptables in deploy {
        assert!(text.find(iptables.as_str().unwrap()).unwrap() < at);
    }
    let parsed = xdp_command(command);
    // Flood by flood: the accepts of its plans (both families), then their other rules.
    let mut want: Vec<String> = Vec::new();
    let mut addresses: Vec<String> = Vec::new();
    let mut floods: Vec<&str> = Vec::new();
    for entry in xdp {
        let flood = entry["flood"].as_str().unwrap();
        if !floods.contains(&flood) {
            floods.push(flood);
        }
    }
    for flood in floods {
        for accepts in [true, false] {
            for entry in xdp.iter().filter(|e| e["flood"] == flood) {
                for rule in entry["rules"].as_array().unwrap() {
                    let rule = rule.as_str().unwrap().to_string();
                    if rule.starts_with("accept ") == accepts && !want.contains(&rule) {
                        want.push(rule);
                    }
                }
            }
        }
    }
    for entry in xdp {
        for address in entry["addresses"].as_array().unwrap() {
            let address = address.as_str().unwrap().to_string();
            if !addresses.contains(&address) {
                addresses.push(address);
            }
        }
    }
    assert!(xdp.iter().all(|e| !e["match_case"].as_bool().unwrap()));
    assert_eq!(parsed.rules, want);
    assert_eq!(
        incident["addresses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect::<Vec<_>>(),
        addresses
    );
    let here_documents = usize::from(command.contains("--rules - <<'EOF'"));
    assert!(here_documents > 0, "a long accept list is a rules file");
    assert!(assert_xdp_rules_are_the_plans(&json) > 300);
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

/// More names of a flood's shape exist (a zone of `MAX_EXCEPTIONS + 100` names, each asked
/// once, IPv4 only) than an iptables chain lists, under a random flood: (the packets, the
/// zone's names, the zone file written in `dir`).
fn past_the_cut_scenario(dir: &Path) -> (Vec<Labelled>, Vec<String>, PathBuf) {
    let cut = bpftools::triage::rules::MAX_EXCEPTIONS;
    let mut rng = Rng::new(2024);
    let mut legit = Legit::for_zones(&["example.net"], &TAIL, 0);
    legit.v6_percent = 0;
    let zone_names: Vec<String> = (0..cut + 100)
        .map(|i| format!("n{i:04}abcd.example.net"))
        .collect();
    let mut flood = random_under("example.net", 9, 9, LOWER_DIGITS);
    let mut packets = mix(&mut rng, &legit, 1500, &mut [("apex9", 6000, &mut flood)]);
    // Each name of the zone asked once, over the capture.
    for (index, name) in zone_names.iter().enumerate() {
        let q = Query {
            name: name.clone(),
            qtype: 1,
            flags: 0,
            edns: Some((1232, false)),
            v6: false,
            source: 7 + index as u32 % 40,
        };
        packets.insert(
            index * 3,
            Labelled {
                frame: frame(&q, 50_000 + index as u16),
                label: "legit".into(),
            },
        );
    }
    let zone = dir.join("example.net.zone");
    let mut text = String::from("$ORIGIN example.net.\n$TTL 300\n@ IN SOA ns1 host 1 2 3 4 5\n");
    for name in &zone_names {
        text.push_str(&format!(
            "{} IN A 192.0.2.1\n",
            name.trim_end_matches(".example.net")
        ));
    }
    for label in TAIL {
        text.push_str(&format!("{label} IN A 192.0.2.2\n"));
    }
    std::fs::write(&zone, text).unwrap();
    (packets, zone_names, zone)
}

#[test]
fn accept_lists_past_the_chains_cut_are_whole_in_the_xdp_rules() {
    // The chain accepts the most asked MAX_EXCEPTIONS, xdp-bpf's rules accept every one.
    let cut = bpftools::triage::rules::MAX_EXCEPTIONS;
    let dir = temp_dir("past-the-cut");
    let (packets, zone_names, zone) = past_the_cut_scenario(&dir);
    let zone_arg = zone.to_str().unwrap().to_string();
    let (code, json) = triage("past-the-cut-json", &packets, &["--zone", &zone_arg]);
    assert_eq!(code, 0);
    assert_eq!(json["floods"].as_array().unwrap().len(), 1);
    // The iptables chain: MAX_EXCEPTIONS accept patterns, and a note says the rest are
    // dropped.
    let deploy = json["deploy"].as_array().unwrap();
    assert_eq!(deploy.len(), 1, "{deploy:?}");
    let (chain_args, _) = as_the_shell_reads(deploy[0].as_str().unwrap());
    let chain_accepts: Vec<&str> = chain_args
        .iter()
        .filter_map(|w| w.strip_prefix("--accept="))
        .collect();
    assert_eq!(chain_accepts.len(), cut);
    assert!(
        json["skipped"].as_array().unwrap().iter().any(|s| s
            .as_str()
            .unwrap()
            .contains("xdp-bpf's commands accept every one")),
        "{}",
        json["skipped"]
    );
    // The xdp-bpf rules: every name of the zone accepted, then the drop rule.
    let xdp = &json["deploy_xdp"][0];
    let rules: Vec<&str> = xdp["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    let accepted: std::collections::BTreeSet<&str> = rules
        .iter()
        .filter_map(|r| r.strip_prefix("accept "))
        .collect();
    for name in &zone_names {
        assert!(accepted.contains(name.as_str()), "{name} is accepted");
    }
    let missing = zone_names
        .iter()
        .filter(|n| !chain_accepts.contains(&n.as_str()))
        .count();
    assert!(
        missing >= 100,
        "the chain lacks {missing} of the zone's names"
    );
    assert_eq!(rules.last(), Some(&"drop *{9-9}.example.net"));
    let beyond = xdp["accepts_beyond_iptables"].as_u64().unwrap();
    assert_eq!(accepted.len() as u64, cut as u64 + beyond);
    // Packet by packet: the same verdicts but for the names past the cut, each asked once
    // (and compared once more in upper case), which the chain drops and xdp-bpf accepts.
    let compared = compare_xdp_with_iptables(&json, &packets);
    eprintln!("past the cut: {compared:?}, beyond {beyond}");
    assert_eq!(compared.beyond_cut_names as u64, beyond);
    assert_eq!(compared.beyond_cut_packets, 2 * beyond);
    assert_eq!(compared.packets as usize, 2 * packets.len(), "{compared:?}");
    assert_eq!(compared.rules, rules.len());
    // The rules dropped them as the chain does (and nothing else legitimate).
    assert_stopped(&json, &packets, beyond);
    // The text prints the same command, its rules on standard input, and says how many
    // more it accepts.
    let path = dir.join("c.pcap");
    write_pcap(&path, &packets, LINKTYPE_ETHERNET);
    let out = run(
        "triage",
        &["--zone", &zone_arg, path.to_str().unwrap()],
        b"",
    );
    let _ = std::fs::remove_dir_all(&dir);
    let text = stdout(&out);
    let command = xdp["command"].as_str().unwrap();
    assert!(command.starts_with("xdp-bpf apply --dev IFACE --deployment triage-"));
    assert!(command.contains(" --rules - <<'EOF'\n") && command.ends_with("\nEOF"));
    // One plan: the incident's command (printed) has the plan's rules.
    let incident = json["deploy_xdp_incident"]["command"].as_str().unwrap();
    assert_eq!(
        incident.split_once('\n').unwrap().1,
        command.split_once('\n').unwrap().1
    );
    assert!(text.contains(&format!("  {incident}\n")), "{text}");
    assert!(
        text.contains(&format!(
            "({beyond} more names accepted than by the iptables-bpf chains"
        )),
        "{text}"
    );
}

#[test]
#[ignore = "needs root (xdp-bpf test loads the program: BPF_PROG_TEST_RUN)"]
fn the_xdp_command_runs_in_xdp_bpf_test_as_the_chain_but_past_the_cut() {
    require_root("xdp-bpf test loads the program: BPF_PROG_TEST_RUN");
    let dir = temp_dir("past-the-cut-root");
    let (packets, _, zone) = past_the_cut_scenario(&dir);
    let capture = dir.join("c.pcap");
    write_pcap(&capture, &packets, LINKTYPE_ETHERNET);
    let out = run(
        "triage",
        &[
            "--json",
            "--zone",
            zone.to_str().unwrap(),
            capture.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let xdp = &json["deploy_xdp"][0];
    let beyond = xdp["accepts_beyond_iptables"].as_u64().unwrap();
    assert!(beyond > 0);
    // The command exactly as printed (a here-document of every rule), run by the shell with
    // `apply --dev IFACE --deployment NAME` turned into xdp-bpf's `test` over the capture.
    let script = format!(
        "xdp-bpf() {{ local args=(); while [ $# -gt 0 ]; do case \"$1\" in \
         apply) shift;; --dev|--deployment) shift 2;; *) args+=(\"$1\"); shift;; esac; done; \
         \"$XDP_BPF\" test \"${{args[@]}}\" \"$CAPTURE\"; }}\n{}\n",
        xdp["command"].as_str().unwrap()
    );
    let ran = std::process::Command::new("bash")
        .args(["-c", &script])
        .env("XDP_BPF", bin("xdp-bpf"))
        .env("CAPTURE", &capture)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let report = String::from_utf8_lossy(&ran.stdout).into_owned();
    assert!(ran.status.success(), "{report}{}", stderr(&ran));
    // What the chain drops, here: the iptables-bpf command's rules run by the VM.
    let (iptables, _) = iptables_deployed(json["deploy"][0].as_str().unwrap());
    let chain_drops = packets
        .iter()
        .filter(|p| iptables.drops(&p.frame) == Some(true))
        .count() as u64;
    // The names past the cut, each asked once, pass xdp-bpf: its program and its reference
    // agree on every packet.
    let expected = format!(
        "{} packets: {} run by the program and the reference, 0 not Ethernet and without a network header; {} dropped, 0 disagreement(s)",
        packets.len(),
        packets.len(),
        chain_drops - beyond
    );
    eprintln!("{report}");
    assert!(
        report.starts_with(&expected),
        "{report}\nexpected: {expected}"
    );
}
