//! `xdp-bpf test`: a capture run through a deployment's program with `BPF_PROG_TEST_RUN` and
//! through the reference, packet by packet.
//!
//! The reference ([`Reference`]) is what an iptables deployment of the same rules in chain
//! mode does, computed by the VM: the packets the rules apply to (UDP to port 53 of a
//! protected address, as `-p udp --dport 53 -m set --match-set SET dst` selects them; IPv4
//! not a later fragment; IPv6 after its extension headers, walked as ip6tables walks them,
//! and the matcher's one departure, a frame with more than
//! [`GATE_EXT_HEADERS`] of them), then each rule's
//! classic program in order (the map rules on messages with a whole DNS header, as the
//! matcher reads them) (a native pattern as the `dns`
//! generator's program for it, `-i` unless the deployment matches case; a generator rule as
//! its program of the packet's family), run at the network header; the first that matches
//! decides, and no match passes. A packet of another link type is made Ethernet first
//! ([`crate::pcap::link::to_ethernet`]), as the XDP program needs it.

use std::io::Read;
use std::net::IpAddr;
use std::path::Path;

use crate::ebpf::compile::{XDP_DROP, XDP_PASS};
use crate::ebpf::deploy::maps::native_entries;
use crate::ebpf::deploy::ops::{materialize, state_of};
use crate::ebpf::deploy::{DeployError, Prefix, RuleBody, Spec};
use crate::ebpf::matcher::{Action, MatcherOptions, GATE_EXT_HEADERS, MAX_HEADER_OFFSET};
use crate::ebpf::sys::{Program, ProgramKind};
use crate::gen::{build, DnsSpec, GenOptions, Generator, DEFAULT_EXT_HEADERS};
use crate::insn::RawInsn;
use crate::pcap::link::{to_ethernet, LINKTYPE_ETHERNET};
use crate::pcap::Reader;
use crate::vm::{self, Input, Profile};

/// The VLAN TPIDs the matcher reads.
const VLAN_TPIDS: [u16; 3] = [0x8100, 0x88a8, 0x9100];

/// A packet the program and the reference decided differently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disagreement {
    /// The packet's number in the capture, from 1.
    pub number: u64,
    /// What the program returned (`XDP_*`).
    pub program: u32,
    /// What the reference says (`XDP_DROP` or `XDP_PASS`).
    pub reference: u32,
    /// The rule that decided in the reference (its number in the list, from 1).
    pub rule: Option<usize>,
}

/// What a test run found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TestReport {
    /// Packets read.
    pub packets: u64,
    /// Packets run both ways.
    pub compared: u64,
    /// Packets of a link type other than Ethernet whose network header was not found (not
    /// run).
    pub skipped: u64,
    /// Packets both dropped.
    pub dropped: u64,
    /// Packets decided by each rule in the reference (by list position).
    pub by_rule: Vec<u64>,
    /// Every disagreement.
    pub disagreements: Vec<Disagreement>,
}

/// A rule's programs for each family, run by the VM.
struct RuleProgram {
    action: Action,
    /// Matched by map lookups in the deployment (else a compiled program).
    native: bool,
    v4: Option<vm::Program>,
    v6: Option<vm::Program>,
}

/// The reference verdicts of a spec.
pub struct Reference {
    rules: Vec<RuleProgram>,
    addresses: Vec<Prefix>,
}

fn vm_program(insns: &[RawInsn]) -> Option<vm::Program> {
    vm::Program::new(insns, Profile::Socket).ok()
}

impl Reference {
    /// The reference of `spec`: each rule's classic programs.
    pub fn new(spec: &Spec) -> Result<Reference, DeployError> {
        let mut rules = Vec::new();
        let options = MatcherOptions {
            ignore_case: !spec.match_case,
        };
        for (i, rule) in spec.rules.iter().enumerate() {
            let native = native_entries(0, rule, options)
                .map_err(|source| DeployError::Rule {
                    index: i + 1,
                    rule: rule.to_string(),
                    source,
                })?
                .is_some();
            let (v4, v6) = match &rule.body {
                RuleBody::Pattern(pattern) => {
                    let generator = Generator::Dns(DnsSpec {
                        patterns: vec![pattern.clone()],
                        ignore_case: !spec.match_case,
                        ext_headers: DEFAULT_EXT_HEADERS,
                    });
                    let family = |inet6| {
                        build(
                            &generator,
                            &GenOptions {
                                inet6,
                                negate: false,
                                offset: 0,
                            },
                        )
                        .map_err(|e| DeployError::Classic {
                            index: i + 1,
                            rule: rule.to_string(),
                            message: e.to_string(),
                        })
                    };
                    (
                        vm_program(&family(false)?.insns),
                        vm_program(&family(true)?.insns),
                    )
                }
                RuleBody::Program { v4, v6, .. } => (
                    v4.as_deref().and_then(vm_program),
                    v6.as_deref().and_then(vm_program),
                ),
            };
            rules.push(RuleProgram {
                action: rule.action,
                native,
                v4,
                v6,
            });
        }
        Ok(Reference {
            rules,
            addresses: spec.addresses.clone(),
        })
    }

    fn protected(&self, addr: IpAddr) -> bool {
        if self.addresses.is_empty() {
            return true;
        }
        self.addresses.iter().any(|p| contains(p, addr))
    }

    /// The verdict (`XDP_DROP` or `XDP_PASS`) for an Ethernet frame, and the rule that decided
    /// (its index in the list).
    pub fn verdict(&self, frame: &[u8]) -> (u32, Option<usize>) {
        let (net, inet6, names) = match self.gate(frame) {
            Gate::Not => return (XDP_PASS, None),
            Gate::Blind { net } => (net, true, true),
            Gate::Rule { net, inet6, dns } => (net, inet6, frame.len() >= dns + 12),
        };
        let input = Input {
            frame,
            start: net,
            net: Some(net),
            link: Some(0),
            wire_len: (frame.len() - net) as u32,
            ctx: vm::Context {
                protocol: if inet6 { 0x86dd } else { 0x0800 },
                ..vm::Context::default()
            },
        };
        for (i, rule) in self.rules.iter().enumerate() {
            if rule.native && !names {
                continue;
            }
            let program = if inet6 { &rule.v6 } else { &rule.v4 };
            if program.as_ref().is_some_and(|p| p.run_with(&input) != 0) {
                let verdict = match rule.action {
                    Action::Drop => XDP_DROP,
                    Action::Accept => XDP_PASS,
                };
                return (verdict, Some(i));
            }
        }
        (XDP_PASS, None)
    }

    /// Whether the rules see a frame, as `-p udp --dport 53 -m set --match-set SET dst`
    /// selects packets (and the matcher's one departure from it: an IPv6 frame with more
    /// than [`GATE_EXT_HEADERS`] extension headers to a protected address).
    fn gate(&self, frame: &[u8]) -> Gate {
        let be16 = |at: usize| -> Option<u16> {
            Some(u16::from_be_bytes(frame.get(at..at + 2)?.try_into().ok()?))
        };
        let Some(mut ethertype) = be16(12) else {
            return Gate::Not;
        };
        let mut net = 14;
        for _ in 0..2 {
            if !VLAN_TPIDS.contains(&ethertype) {
                break;
            }
            let Some(inner) = be16(net + 2) else {
                return Gate::Not;
            };
            ethertype = inner;
            net += 4;
        }
        let (inet6, udp, dst) = match ethertype {
            0x0800 => {
                let Some(ip) = frame.get(net..net + 20) else {
                    return Gate::Not;
                };
                let ihl = usize::from(ip[0] & 0x0f) * 4;
                if ip[0] >> 4 != 4 || ihl < 20 || frame.len() < net + ihl || ip[9] != 17 {
                    return Gate::Not;
                }
                if u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff != 0 {
                    return Gate::Not;
                }
                let dst = IpAddr::from(<[u8; 4]>::try_from(&ip[16..20]).expect("4 bytes"));
                (false, net + ihl, dst)
            }
            0x86dd => {
                let Some(ip) = frame.get(net..net + 40) else {
                    return Gate::Not;
                };
                if ip[0] >> 4 != 6 {
                    return Gate::Not;
                }
                let dst = IpAddr::from(<[u8; 16]>::try_from(&ip[24..40]).expect("16 bytes"));
                let mut next = ip[6];
                let mut at = net + 40;
                let mut walked = 0;
                loop {
                    match next {
                        17 => break,
                        0 | 43 | 44 | 51 | 60 => {
                            if walked == GATE_EXT_HEADERS {
                                return if self.protected(dst) {
                                    Gate::Blind { net }
                                } else {
                                    Gate::Not
                                };
                            }
                            let Some(&[following, length, ..]) = frame.get(at..at + 8) else {
                                return Gate::Not;
                            };
                            let size = match next {
                                44 => {
                                    match be16(at + 2) {
                                        Some(offset) if offset & !7 == 0 => {}
                                        _ => return Gate::Not,
                                    }
                                    8
                                }
                                51 => (usize::from(length) + 2) * 4,
                                _ => (usize::from(length) + 1) * 8,
                            };
                            next = following;
                            at += size;
                            walked += 1;
                            if at > MAX_HEADER_OFFSET as usize {
                                return Gate::Not;
                            }
                        }
                        _ => return Gate::Not,
                    }
                }
                (true, at, dst)
            }
            _ => return Gate::Not,
        };
        if frame.len() < udp + 8 || be16(udp + 2) != Some(53) || !self.protected(dst) {
            return Gate::Not;
        }
        Gate::Rule {
            net,
            inet6,
            dns: udp + 8,
        }
    }
}

/// How the rules see a frame.
enum Gate {
    /// Not at all: it passes.
    Not,
    /// UDP to port 53 of a protected address: the rules run at `net`; the native ones only
    /// when the DNS header at `dns` is whole.
    Rule { net: usize, inet6: bool, dns: usize },
    /// IPv6 past the matcher's extension-header walk: every rule runs.
    Blind { net: usize },
}

/// Removes up to two VLAN tags after the Ethernet addresses.
fn untag(frame: &mut Vec<u8>) {
    for _ in 0..2 {
        let tagged = frame
            .get(12..14)
            .is_some_and(|t| VLAN_TPIDS.contains(&u16::from_be_bytes([t[0], t[1]])));
        if !tagged || frame.len() < 18 {
            return;
        }
        frame.drain(12..16);
    }
}

/// Whether `prefix` holds `addr`.
pub fn contains(prefix: &Prefix, addr: IpAddr) -> bool {
    let (have, want) = match (prefix.addr, addr) {
        (IpAddr::V4(p), IpAddr::V4(a)) => (p.octets().to_vec(), a.octets().to_vec()),
        (IpAddr::V6(p), IpAddr::V6(a)) => (p.octets().to_vec(), a.octets().to_vec()),
        _ => return false,
    };
    let bits = usize::from(prefix.len);
    have.iter().zip(&want).enumerate().all(|(i, (h, w))| {
        let keep = bits.saturating_sub(8 * i).min(8);
        let mask = if keep == 0 { 0 } else { 0xffu8 << (8 - keep) };
        h & mask == w & mask
    })
}

/// Why a test run failed.
fn read_error(e: crate::pcap::ReadError) -> DeployError {
    DeployError::File {
        what: "capture",
        path: "-".into(),
        source: std::io::Error::other(e.to_string()),
    }
}

/// Runs every packet of `capture` through `program` (test runs) and through the reference
/// of `spec`. A socket filter (the iptables hook) is given each frame without its VLAN tags,
/// as the kernel hands it over; its non-zero verdict is a drop.
pub fn test_program(
    program: &Program,
    spec: &Spec,
    capture: impl Read,
) -> Result<TestReport, DeployError> {
    let reference = Reference::new(spec)?;
    let mut reader = Reader::new(capture).map_err(read_error)?;
    let mut report = TestReport {
        by_rule: vec![0; spec.rules.len()],
        ..TestReport::default()
    };
    let socket = program.kind() == ProgramKind::SocketFilter;
    let mut frame = Vec::new();
    while let Some(packet) = reader.next_packet().map_err(read_error)? {
        report.packets += 1;
        frame.clear();
        let data = &packet.data[..packet.data.len().saturating_sub(packet.fcs_len as usize)];
        // An Ethernet frame goes as captured (cut short or not IP, the program sees it too);
        // another link type is made Ethernet when its network header can be found.
        if packet.linktype == LINKTYPE_ETHERNET {
            frame.extend_from_slice(data);
        } else if !to_ethernet(packet.linktype, data, &mut frame) {
            report.skipped += 1;
            continue;
        }
        let (retval, want, rule) = if socket {
            // The iptables hook: the skb the kernel hands over has no VLAN tag left, and
            // the test run starts the program after the Ethernet header.
            untag(&mut frame);
            let run = program.test_run(&frame, 1)?;
            let (want, rule) = reference.verdict(&frame);
            let retval = if run.retval != 0 { XDP_DROP } else { XDP_PASS };
            (retval, want, rule)
        } else {
            let run = program.test_run(&frame, 1)?;
            let (want, rule) = reference.verdict(&frame);
            (run.retval, want, rule)
        };
        report.compared += 1;
        if let Some(rule) = rule {
            report.by_rule[rule] += 1;
        }
        if retval == want {
            if want == XDP_DROP {
                report.dropped += 1;
            }
        } else {
            report.disagreements.push(Disagreement {
                number: packet.number,
                program: retval,
                reference: want,
                rule: rule.map(|r| r + 1),
            });
        }
    }
    Ok(report)
}

/// Builds `spec`'s program and maps (not attached, not pinned) and runs the capture through
/// it as [`test_program`] does.
pub fn test_spec(spec: &Spec, capture: impl Read) -> Result<TestReport, DeployError> {
    crate::ebpf::sys::raise_memlock()?;
    let state = state_of(spec, "test", 0);
    let built = materialize(&state, Path::new("(the rules given)"))?;
    test_program(&built.prog, spec, capture)
}
