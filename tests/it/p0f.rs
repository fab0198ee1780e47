//! The `p0f` generator on TCP packets built with etherparse: every signature field and quirk,
//! matching and not, on IPv4 and IPv6, through the interpreter (raw IP and Ethernet) and
//! through libpcap's interpreter (testdata/vm/libpcap_verdicts.c, on Ethernet frames written
//! to a capture), which must agree with ours on every program and every packet.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use bpftools::asm::{assemble, format_program, Format};
use bpftools::cli::gen_args::parse_generator;
use bpftools::gen::{build, GenOptions, Generator};
use bpftools::insn::RawInsn;
use bpftools::pcap::Writer;
use bpftools::vm::{validate, Profile, Program};
use etherparse::{
    IpEcn, IpFragOffset, IpHeaders, IpNumber, Ipv4Header, Ipv6FlowLabel, Ipv6Header, PacketBuilder,
    TcpHeader,
};

use crate::common::{have, run, stderr, stdout, testdata};
use crate::packets::ethernet;

/// A TCP packet to build: by default a Linux SYN over IPv4 (TTL 64, DF, a non-zero IP ID,
/// options mss 1460, sok, ts, nop, ws 7; window 29200 = 20 * 1460).
#[derive(Debug, Clone)]
pub(crate) struct Syn {
    pub(crate) v6: bool,
    ttl: u8,
    /// IPv4 option bytes (NOPs, then an end of list), a multiple of 4.
    ip_options: usize,
    df: bool,
    id: u16,
    /// The IPv4 must-be-zero (reserved) flag.
    mbz: bool,
    /// The two ECN bits (IPv4 TOS or IPv6 traffic class).
    ecn: u8,
    flow: u32,
    fragment_offset: u16,
    seq: u32,
    ack_number: u32,
    ack: bool,
    urg: bool,
    psh: bool,
    urgent_pointer: u16,
    window: u16,
    /// Raw TCP option bytes (zero padded to a multiple of 4).
    options: Vec<u8>,
    payload: Vec<u8>,
    /// UDP instead of TCP (same ports, the TCP header's bytes as payload).
    udp: bool,
}

fn mss(value: u16) -> Vec<u8> {
    let [hi, lo] = value.to_be_bytes();
    vec![2, 4, hi, lo]
}
fn ws(shift: u8) -> Vec<u8> {
    vec![3, 3, shift]
}
fn sok() -> Vec<u8> {
    vec![4, 2]
}
fn ts(own: u32, peer: u32) -> Vec<u8> {
    let mut out = vec![8, 10];
    out.extend(own.to_be_bytes());
    out.extend(peer.to_be_bytes());
    out
}
const NOP: u8 = 1;
const EOL: u8 = 0;

fn options(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

impl Syn {
    fn linux() -> Syn {
        Syn {
            v6: false,
            ttl: 64,
            ip_options: 0,
            df: true,
            id: 0x1234,
            mbz: false,
            ecn: 0,
            flow: 0,
            fragment_offset: 0,
            seq: 0x1111_2222,
            ack_number: 0,
            ack: false,
            urg: false,
            psh: false,
            urgent_pointer: 0,
            window: 29200,
            options: options(&[mss(1460), sok(), ts(0x0102_0304, 0), vec![NOP], ws(7)]),
            payload: Vec::new(),
            udp: false,
        }
    }

    fn linux6() -> Syn {
        Syn {
            v6: true,
            df: false,
            id: 0,
            window: 28800,
            options: options(&[mss(1440), sok(), ts(0x0102_0304, 0), vec![NOP], ws(7)]),
            ..Syn::linux()
        }
    }

    /// The IP packet.
    pub(crate) fn packet(&self) -> Vec<u8> {
        let mut tcp = TcpHeader::new(40000, 80, self.seq, self.window);
        tcp.syn = true;
        tcp.ack = self.ack;
        tcp.urg = self.urg;
        tcp.psh = self.psh;
        tcp.acknowledgment_number = self.ack_number;
        tcp.urgent_pointer = self.urgent_pointer;
        tcp.set_options_raw(&self.options).expect("tcp options");
        let protocol = IpNumber::TCP;
        let ip = if self.v6 {
            IpHeaders::Ipv6(
                Ipv6Header {
                    traffic_class: self.ecn,
                    flow_label: Ipv6FlowLabel::try_new(self.flow).expect("flow label"),
                    next_header: protocol,
                    hop_limit: self.ttl,
                    source: [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                    destination: [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
                    ..Default::default()
                },
                Default::default(),
            )
        } else {
            let mut header =
                Ipv4Header::new(0, self.ttl, protocol, [10, 0, 0, 1], [10, 0, 0, 2]).unwrap();
            header.dont_fragment = self.df;
            header.identification = self.id;
            header.ecn = IpEcn::try_new(self.ecn).expect("ecn");
            header.fragment_offset = IpFragOffset::try_new(self.fragment_offset).unwrap();
            if self.ip_options > 0 {
                let mut bytes = vec![NOP; self.ip_options];
                bytes[self.ip_options - 1] = EOL;
                header.options = bytes[..].try_into().expect("ip options");
            }
            IpHeaders::Ipv4(header, Default::default())
        };
        let mut out = Vec::new();
        PacketBuilder::ip(ip)
            .tcp_header(tcp)
            .write(&mut out, &self.payload)
            .expect("packet");
        if self.udp {
            // The same bytes after the IP header, but the protocol field says UDP.
            out[if self.v6 { 6 } else { 9 }] = 17;
        }
        if self.mbz {
            out[6] |= 0x80;
        }
        out
    }
}

/// (signature, packet, matches?): every field and quirk, each side of its edge.
pub(crate) fn cases() -> Vec<(&'static str, Syn, bool)> {
    let v4 = Syn::linux;
    let v6 = Syn::linux6;
    let with = |base: fn() -> Syn, change: &dyn Fn(&mut Syn)| {
        let mut syn = base();
        change(&mut syn);
        syn
    };
    const LINUX: &str = "4:64:0:*:mss*20,7:mss,sok,ts,nop,ws:df,id+:0";
    const LINUX6: &str = "6:64:0:*:mss*20,7:mss,sok,ts,nop,ws::0";
    const ANY: &str = "4:255-:*:*:*,*:mss,sok,ts,nop,ws::*";
    const ANY6: &str = "6:255-:*:*:*,*:mss,sok,ts,nop,ws::*";
    vec![
        // A whole real signature (p0f.fp's Linux 3.11 and newer), and the same for either version.
        (LINUX, v4(), true),
        (LINUX6, v6(), true),
        ("*:64:0:*:mss*20,7:mss,sok,ts,nop,ws:df,id+:0", v4(), true),
        ("*:64:0:*:mss*20,7:mss,sok,ts,nop,ws:df,id+:0", v6(), true),
        ("*:64:0:*:mss*20,7:mss,sok,ts,nop,ws::0", v6(), true),
        // The version, TCP, the first fragment.
        (ANY, v4(), true),
        (ANY6, v6(), true),
        (LINUX, v6(), false),
        (LINUX6, v4(), false),
        (ANY, with(v4, &|s| s.udp = true), false),
        (ANY6, with(v6, &|s| s.udp = true), false),
        (
            "*:255-:*:*:*,*:mss,sok,ts,nop,ws::*",
            with(v6, &|s| s.udp = true),
            false,
        ),
        (ANY, with(v4, &|s| s.fragment_offset = 1), false),
        // ittl: N-35 < TTL <= N; N- any; N+D; N <= 32: TTL <= N.
        (
            "4:64:0:*:*,*:mss,sok,ts,nop,ws::*",
            with(v4, &|s| s.ttl = 64),
            true,
        ),
        (
            "4:64:0:*:*,*:mss,sok,ts,nop,ws::*",
            with(v4, &|s| s.ttl = 30),
            true,
        ),
        (
            "4:64:0:*:*,*:mss,sok,ts,nop,ws::*",
            with(v4, &|s| s.ttl = 29),
            false,
        ),
        (
            "4:64:0:*:*,*:mss,sok,ts,nop,ws::*",
            with(v4, &|s| s.ttl = 65),
            false,
        ),
        (
            "4:54+10:0:*:*,*:mss,sok,ts,nop,ws::*",
            with(v4, &|s| s.ttl = 54),
            true,
        ),
        (
            "4:54+10:0:*:*,*:mss,sok,ts,nop,ws::*",
            with(v4, &|s| s.ttl = 65),
            false,
        ),
        (
            "4:128:0:*:*,*:mss,sok,ts,nop,ws::*",
            with(v4, &|s| s.ttl = 64),
            false,
        ),
        (
            "4:128:0:*:*,*:mss,sok,ts,nop,ws::*",
            with(v4, &|s| s.ttl = 120),
            true,
        ),
        (
            "4:32:0:*:*,*:mss,sok,ts,nop,ws::*",
            with(v4, &|s| s.ttl = 1),
            true,
        ),
        (
            "4:32:0:*:*,*:mss,sok,ts,nop,ws::*",
            with(v4, &|s| s.ttl = 33),
            false,
        ),
        (
            "4:64-:0:*:*,*:mss,sok,ts,nop,ws::*",
            with(v4, &|s| s.ttl = 200),
            true,
        ),
        (
            "6:64:0:*:*,*:mss,sok,ts,nop,ws::*",
            with(v6, &|s| s.ttl = 50),
            true,
        ),
        (
            "6:64:0:*:*,*:mss,sok,ts,nop,ws::*",
            with(v6, &|s| s.ttl = 128),
            false,
        ),
        (
            "*:128:0:*:*,*:mss,sok,ts,nop,ws::*",
            with(v6, &|s| s.ttl = 64),
            false,
        ),
        // olen, in bytes; any on IPv6.
        (
            "4:64:0:*:*,*:mss,sok,ts,nop,ws::*",
            with(v4, &|s| s.ip_options = 4),
            false,
        ),
        (
            "4:64:4:*:*,*:mss,sok,ts,nop,ws::*",
            with(v4, &|s| s.ip_options = 4),
            true,
        ),
        (
            "4:64:8:*:*,*:mss,sok,ts,nop,ws::*",
            with(v4, &|s| s.ip_options = 4),
            false,
        ),
        (
            "4:64:*:*:*,*:mss,sok,ts,nop,ws::*",
            with(v4, &|s| s.ip_options = 8),
            true,
        ),
        // TCP fields after IPv4 options are found (with olen *).
        (
            "4:64:*:1460:mss*20,7:mss,sok,ts,nop,ws::0",
            with(v4, &|s| s.ip_options = 12),
            true,
        ),
        ("6:64:4:*:*,*:mss,sok,ts,nop,ws::*", v6(), true),
        // mss.
        ("4:64:0:1460:*,*:mss,sok,ts,nop,ws::*", v4(), true),
        (
            "4:64:0:1460:*,*:mss,sok,ts,nop,ws::*",
            with(v4, &|s| s.options[3] = 0xb5),
            false,
        ),
        ("6:64:0:1440:*,*:mss,sok,ts,nop,ws::*", v6(), true),
        ("6:64:0:1460:*,*:mss,sok,ts,nop,ws::*", v6(), false),
        // wsize: N, mss*N, mtu*N (1500 * N), %N.
        ("4:64:0:*:29200,*:mss,sok,ts,nop,ws::*", v4(), true),
        ("4:64:0:*:29201,*:mss,sok,ts,nop,ws::*", v4(), false),
        (
            "4:64:0:*:mss*20,*:mss,sok,ts,nop,ws::*",
            with(v4, &|s| s.window = 29199),
            false,
        ),
        ("4:64:0:*:mss*10,*:mss,sok,ts,nop,ws::*", v4(), false),
        (
            "4:64:0:*:mtu*2,*:mss,sok,ts,nop,ws::*",
            with(v4, &|s| s.window = 3000),
            true,
        ),
        (
            "4:64:0:*:mtu*2,*:mss,sok,ts,nop,ws::*",
            with(v4, &|s| s.window = 2920),
            false,
        ),
        (
            "4:64:0:*:%8192,*:mss,sok,ts,nop,ws::*",
            with(v4, &|s| s.window = 16384),
            true,
        ),
        (
            "4:64:0:*:%8192,*:mss,sok,ts,nop,ws::*",
            with(v4, &|s| s.window = 16383),
            false,
        ),
        ("6:64:0:*:%100,*:mss,sok,ts,nop,ws::*", v6(), true),
        (
            "6:64:0:*:mss*20,*:mss,sok,ts,nop,ws::*",
            with(v6, &|s| s.window = 29200),
            false,
        ),
        // scale.
        ("4:64:0:*:*,7:mss,sok,ts,nop,ws::*", v4(), true),
        ("4:64:0:*:*,8:mss,sok,ts,nop,ws::*", v4(), false),
        ("4:64:0:*:*,0:mss,sok,ts,nop,ws::*", v4(), true),
        ("6:64:0:*:*,6:mss,sok,ts,nop,ws::*", v6(), false),
        // olayout: kinds, order, data offset, eol and its padding.
        ("4:64:0:*:*,*:mss,nop,ws,nop,nop,sok::*", v4(), false),
        ("4:64:0:*:*,*:mss,sok,ts,ws,nop::*", v4(), false),
        // The last option's own bytes past its kind are not read (nor were they by the
        // original): 17 bytes of options need the same data offset as 20.
        ("4:64:0:*:*,*:mss,sok,ts,nop::*", v4(), true),
        ("4:64:0:*:*,*:mss,sok,ts::*", v4(), false),
        ("4:64:0:*:*,*:::*", v4(), false),
        ("4:64:0:*:*,*:::*", with(v4, &|s| s.options.clear()), true),
        (
            "4:64:0:*:*,*:nop:bad:*",
            with(v4, &|s| s.options = vec![NOP]),
            true,
        ),
        (
            "4:64:0:*:*,*:::*",
            with(v4, &|s| s.options = vec![NOP]),
            false,
        ),
        (
            "4:64:0:*:*,*:mss,nop,ws,nop,nop,sok::*",
            with(v4, &|s| {
                s.options = options(&[mss(1460), vec![NOP], ws(8), vec![NOP, NOP], sok()])
            }),
            true,
        ),
        (
            "4:64:0:*:*,*:nop,nop,nop::*",
            with(v4, &|s| s.options = vec![NOP; 3]),
            true,
        ),
        (
            "4:64:0:*:*,*:nop,nop,nop,nop::*",
            with(v4, &|s| s.options = vec![NOP; 4]),
            true,
        ),
        (
            "4:64:0:*:*,*:nop,nop,nop,nop,nop::*",
            with(v4, &|s| s.options = vec![NOP; 5]),
            true,
        ),
        (
            "4:64:0:*:*,*:nop,nop,nop,nop::*",
            with(v4, &|s| s.options = vec![NOP; 5]),
            false,
        ),
        (
            "4:64:0:*:*,*:mss,eol+0::*",
            with(v4, &|s| s.options = options(&[mss(1460), vec![EOL]])),
            true,
        ),
        (
            "4:64:0:*:*,*:mss,eol+3::*",
            with(v4, &|s| s.options = options(&[mss(1460), vec![EOL]])),
            true,
        ),
        (
            "4:64:0:*:*,*:nop,eol+2::*",
            with(v4, &|s| s.options = vec![NOP, EOL]),
            true,
        ),
        (
            "4:64:0:*:*,*:nop,eol+6::*",
            with(v4, &|s| s.options = vec![NOP, EOL]),
            false,
        ),
        (
            "4:64:0:*:*,*:nop,eol+6::*",
            with(v4, &|s| s.options = vec![NOP, EOL, 0, 0, 0, 0, 0, 0]),
            true,
        ),
        (
            "4:64:0:*:*,*:nop,eol+6::*",
            with(v4, &|s| s.options = vec![NOP, EOL, 0, 0, 0, 0, 0, 9]),
            false,
        ),
        (
            "6:64:0:*:*,*:nop,nop,eol+1::*",
            with(v6, &|s| s.options = vec![NOP, NOP, EOL]),
            true,
        ),
        // opt+: one of the padding bytes is not zero.
        (
            "4:64:0:*:*,*:nop,eol+2:opt+:*",
            with(v4, &|s| s.options = vec![NOP, EOL, NOP, NOP]),
            true,
        ),
        (
            "4:64:0:*:*,*:nop,eol+2:opt+:*",
            with(v4, &|s| s.options = vec![NOP, EOL]),
            false,
        ),
        (
            "4:64:0:*:*,*:nop,eol+6:opt+:*",
            with(v4, &|s| s.options = vec![NOP, EOL, 0, 0, 0, 0, 0, 9]),
            true,
        ),
        (
            "4:64:0:*:*,*:nop,eol+6:opt+:*",
            with(v4, &|s| s.options = vec![NOP, EOL, 0, 0, 7, 0, 0, 0]),
            true,
        ),
        (
            "4:64:0:*:*,*:nop,eol+6:opt+:*",
            with(v4, &|s| s.options = vec![NOP, EOL, 0, 0, 0, 0, 0, 0]),
            false,
        ),
        (
            "6:64:0:*:*,*:nop,eol+2:opt+:*",
            with(v6, &|s| s.options = vec![NOP, EOL, 0, 1]),
            true,
        ),
        // df, id+, id-, 0+ (IPv4).
        ("4:64:0:*:*,*:mss,sok,ts,nop,ws:df:*", v4(), true),
        (
            "4:64:0:*:*,*:mss,sok,ts,nop,ws:df:*",
            with(v4, &|s| s.df = false),
            false,
        ),
        ("4:64:0:*:*,*:mss,sok,ts,nop,ws:id+:*", v4(), true),
        (
            "4:64:0:*:*,*:mss,sok,ts,nop,ws:id+:*",
            with(v4, &|s| s.id = 0),
            false,
        ),
        (
            "4:64:0:*:*,*:mss,sok,ts,nop,ws:id+:*",
            with(v4, &|s| s.df = false),
            false,
        ),
        (
            "4:64:0:*:*,*:mss,sok,ts,nop,ws:df,id+:*",
            with(v4, &|s| s.id = 0),
            false,
        ),
        (
            "4:64:0:*:*,*:mss,sok,ts,nop,ws:id-:*",
            with(v4, &|s| {
                s.df = false;
                s.id = 0
            }),
            true,
        ),
        (
            "4:64:0:*:*,*:mss,sok,ts,nop,ws:id-:*",
            with(v4, &|s| s.df = false),
            false,
        ),
        (
            "4:64:0:*:*,*:mss,sok,ts,nop,ws:id-:*",
            with(v4, &|s| s.id = 0),
            false,
        ),
        (
            "4:64:0:*:*,*:mss,sok,ts,nop,ws::*",
            with(v4, &|s| s.mbz = true),
            false,
        ),
        (
            "4:64:0:*:*,*:mss,sok,ts,nop,ws:0+:*",
            with(v4, &|s| s.mbz = true),
            true,
        ),
        ("4:64:0:*:*,*:mss,sok,ts,nop,ws:0+:*", v4(), false),
        // With version *, IPv4 quirks do not apply to IPv6 packets.
        ("*:64:0:*:*,*:mss,sok,ts,nop,ws:df,id+:*", v6(), true),
        ("*:64:0:*:*,*:mss,sok,ts,nop,ws:id-,0+:*", v6(), true),
        ("*:64:0:*:*,*:mss,sok,ts,nop,ws:id-:*", v4(), false),
        // ecn: either ECN bit, both families.
        ("4:64:0:*:*,*:mss,sok,ts,nop,ws:ecn:*", v4(), false),
        (
            "4:64:0:*:*,*:mss,sok,ts,nop,ws:ecn:*",
            with(v4, &|s| s.ecn = 1),
            true,
        ),
        (
            "4:64:0:*:*,*:mss,sok,ts,nop,ws:ecn:*",
            with(v4, &|s| s.ecn = 2),
            true,
        ),
        (
            "4:64:0:*:*,*:mss,sok,ts,nop,ws:ecn:*",
            with(v4, &|s| s.ecn = 3),
            true,
        ),
        (
            "6:64:0:*:*,*:mss,sok,ts,nop,ws:ecn:*",
            with(v6, &|s| s.ecn = 2),
            true,
        ),
        (
            "6:64:0:*:*,*:mss,sok,ts,nop,ws:ecn:*",
            with(v6, &|s| s.ecn = 0xfc),
            false,
        ),
        // flow (IPv6): the whole 20-bit label.
        ("6:64:0:*:*,*:mss,sok,ts,nop,ws:flow:*", v6(), false),
        (
            "6:64:0:*:*,*:mss,sok,ts,nop,ws:flow:*",
            with(v6, &|s| s.flow = 1),
            true,
        ),
        (
            "6:64:0:*:*,*:mss,sok,ts,nop,ws:flow:*",
            with(v6, &|s| s.flow = 0x80000),
            true,
        ),
        (
            "6:64:0:*:*,*:mss,sok,ts,nop,ws:flow:*",
            with(v6, &|s| {
                s.flow = 0;
                s.ecn = 0xff
            }),
            false,
        ),
        ("*:64:0:*:*,*:mss,sok,ts,nop,ws:flow:*", v4(), true),
        // seq-, ack+, ack-, uptr+, urgf+, pushf+.
        ("4:64:0:*:*,*:mss,sok,ts,nop,ws:seq-:*", v4(), false),
        (
            "4:64:0:*:*,*:mss,sok,ts,nop,ws:seq-:*",
            with(v4, &|s| s.seq = 0),
            true,
        ),
        (
            "6:64:0:*:*,*:mss,sok,ts,nop,ws:seq-:*",
            with(v6, &|s| s.seq = 0),
            true,
        ),
        (
            "4:64:0:*:*,*:mss,sok,ts,nop,ws:ack+:*",
            with(v4, &|s| s.ack_number = 0xcafe),
            true,
        ),
        ("4:64:0:*:*,*:mss,sok,ts,nop,ws:ack+:*", v4(), false),
        (
            "4:64:0:*:*,*:mss,sok,ts,nop,ws:ack+:*",
            with(v4, &|s| {
                s.ack_number = 1;
                s.ack = true
            }),
            false,
        ),
        (
            "4:64:0:*:*,*:mss,sok,ts,nop,ws:ack-:*",
            with(v4, &|s| s.ack = true),
            true,
        ),
        ("4:64:0:*:*,*:mss,sok,ts,nop,ws:ack-:*", v4(), false),
        (
            "4:64:0:*:*,*:mss,sok,ts,nop,ws:ack-:*",
            with(v4, &|s| {
                s.ack = true;
                s.ack_number = 5
            }),
            false,
        ),
        (
            "6:64:0:*:*,*:mss,sok,ts,nop,ws:ack-:*",
            with(v6, &|s| s.ack = true),
            true,
        ),
        (
            "4:64:0:*:*,*:mss,sok,ts,nop,ws:uptr+:*",
            with(v4, &|s| s.urgent_pointer = 0xcafe),
            true,
        ),
        ("4:64:0:*:*,*:mss,sok,ts,nop,ws:uptr+:*", v4(), false),
        (
            "4:64:0:*:*,*:mss,sok,ts,nop,ws:uptr+:*",
            with(v4, &|s| {
                s.urgent_pointer = 1;
                s.urg = true
            }),
            false,
        ),
        (
            "4:64:0:*:*,*:mss,sok,ts,nop,ws:urgf+:*",
            with(v4, &|s| s.urg = true),
            true,
        ),
        ("4:64:0:*:*,*:mss,sok,ts,nop,ws:urgf+:*", v4(), false),
        (
            "6:64:0:*:*,*:mss,sok,ts,nop,ws:uptr+:*",
            with(v6, &|s| s.urgent_pointer = 9),
            true,
        ),
        (
            "4:64:0:*:*,*:mss,sok,ts,nop,ws:pushf+:*",
            with(v4, &|s| s.psh = true),
            true,
        ),
        ("4:64:0:*:*,*:mss,sok,ts,nop,ws:pushf+:*", v4(), false),
        (
            "6:64:0:*:*,*:mss,sok,ts,nop,ws:pushf+:*",
            with(v6, &|s| s.psh = true),
            true,
        ),
        // ts1-, ts2+ (the timestamp option's place comes from the layout).
        ("4:64:0:*:*,*:mss,sok,ts,nop,ws:ts1-:*", v4(), false),
        (
            "4:64:0:*:*,*:mss,sok,ts,nop,ws:ts1-:*",
            with(v4, &|s| {
                s.options = options(&[mss(1460), sok(), ts(0, 0), vec![NOP], ws(7)])
            }),
            true,
        ),
        ("4:64:0:*:*,*:mss,sok,ts,nop,ws:ts2+:*", v4(), false),
        (
            "4:64:0:*:*,*:mss,sok,ts,nop,ws:ts2+:*",
            with(v4, &|s| {
                s.options = options(&[mss(1460), sok(), ts(5, 1), vec![NOP], ws(7)])
            }),
            true,
        ),
        (
            "6:64:0:*:*,*:ts:ts2+:*",
            with(v6, &|s| s.options = ts(0, 7)),
            true,
        ),
        (
            "6:64:0:*:*,*:ts:ts1-:*",
            with(v6, &|s| s.options = ts(0, 7)),
            true,
        ),
        // exws: scale above 14.
        ("4:64:0:*:*,*:mss,sok,ts,nop,ws:exws:*", v4(), false),
        (
            "4:64:0:*:*,*:ws:exws:*",
            with(v4, &|s| s.options = ws(15)),
            true,
        ),
        (
            "4:64:0:*:*,*:ws:exws:*",
            with(v4, &|s| s.options = ws(14)),
            false,
        ),
        (
            "6:64:0:*:*,*:ws:exws:*",
            with(v6, &|s| s.options = ws(20)),
            true,
        ),
        // linux (the original's): IP ID = (seq ^ own timestamp) & 0xffff.
        (
            "4:64:0:*:*,*:ts:linux:*",
            with(v4, &|s| {
                s.seq = 0xabcd_aaaa;
                s.options = ts(0xdcba_bbbb, 0);
                s.id = 0x1111
            }),
            true,
        ),
        (
            "4:64:0:*:*,*:ts:linux:*",
            with(v4, &|s| {
                s.seq = 0xabcd_aaaa;
                s.options = ts(0xdcba_bbbb, 0);
                s.id = 0xcafe
            }),
            false,
        ),
        // bad: the data offset is not checked.
        ("4:64:0:*:*,*:mss:bad:*", v4(), true),
        ("4:64:0:*:*,*:mss::*", v4(), false),
        // pclass.
        ("4:64:0:*:*,*:mss,sok,ts,nop,ws::0", v4(), true),
        ("4:64:0:*:*,*:mss,sok,ts,nop,ws::+", v4(), false),
        (
            "4:64:0:*:*,*:mss,sok,ts,nop,ws::+",
            with(v4, &|s| s.payload = b"data".to_vec()),
            true,
        ),
        (
            "4:64:0:*:*,*:mss,sok,ts,nop,ws::0",
            with(v4, &|s| s.payload = b"data".to_vec()),
            false,
        ),
        (
            "4:64:*:*:*,*:mss,sok,ts,nop,ws::0",
            with(v4, &|s| s.ip_options = 8),
            true,
        ),
        (
            "4:64:*:*:*,*:mss,sok,ts,nop,ws::+",
            with(v4, &|s| {
                s.ip_options = 8;
                s.payload = vec![0]
            }),
            true,
        ),
        ("6:64:0:*:*,*:mss,sok,ts,nop,ws::0", v6(), true),
        (
            "6:64:0:*:*,*:mss,sok,ts,nop,ws::+",
            with(v6, &|s| s.payload = b"x".to_vec()),
            true,
        ),
        (
            "6:64:0:*:*,*:mss,sok,ts,nop,ws::0",
            with(v6, &|s| s.payload = b"x".to_vec()),
            false,
        ),
        (
            "*:64:0:*:*,*:mss,sok,ts,nop,ws::+",
            with(v6, &|s| s.payload = b"x".to_vec()),
            true,
        ),
        (
            "4:64:0:*:*,*:mss,sok,ts,nop,ws::*",
            with(v4, &|s| s.payload = b"x".to_vec()),
            true,
        ),
    ]
}

fn generator(signature: &str) -> Generator {
    parse_generator("p0f", &["--".into(), signature.into()])
        .unwrap_or_else(|e| panic!("{signature}: {e:?}"))
}

/// `-6` for version 6 signatures, and for `*` ones on IPv6 packets (either works for `*`).
fn inet6(signature: &str, syn: &Syn) -> bool {
    signature.starts_with('6') || (signature.starts_with('*') && syn.v6)
}

fn program(signature: &str, opts: &GenOptions) -> Vec<RawInsn> {
    let generated =
        build(&generator(signature), opts).unwrap_or_else(|e| panic!("{signature}: {e}"));
    validate(&generated.insns, Profile::Socket).unwrap_or_else(|e| panic!("{signature}: {e}"));
    assert_eq!(
        assemble(&generated.assembly).unwrap(),
        generated.insns,
        "{signature}: the assembly is the same program"
    );
    generated.insns
}

#[test]
fn every_field_and_quirk_through_the_interpreter() {
    let cases = cases();
    let (mut matched, mut v6) = (0, 0);
    for (signature, syn, expected) in &cases {
        let packet = syn.packet();
        let frame = ethernet(&packet);
        for negate in [false, true] {
            let opts = GenOptions {
                inet6: inet6(signature, syn),
                negate,
                offset: 0,
            };
            let raw = Program::new(&program(signature, &opts), Profile::Socket).unwrap();
            let eth = Program::new(
                &program(signature, &GenOptions { offset: 14, ..opts }),
                Profile::Socket,
            )
            .unwrap();
            let want = if expected ^ negate { 65535 } else { 0 };
            assert_eq!(
                raw.run(&packet),
                want,
                "{signature} (negate {negate}) on {syn:?}"
            );
            assert_eq!(
                eth.run(&frame),
                want,
                "{signature} -o 14 (negate {negate}) on {syn:?}"
            );
        }
        matched += usize::from(*expected);
        v6 += usize::from(syn.v6);
    }
    eprintln!(
        "p0f: {} cases ({matched} matching, {v6} on IPv6), each raw and on Ethernet, negated too",
        cases.len()
    );
    assert!(cases.len() >= 140 && matched >= 60 && v6 >= 30);
}

fn build_libpcap_helper() -> PathBuf {
    assert!(
        have("gcc"),
        "this test needs gcc and libpcap-dev (Debian: apt-get install gcc libpcap-dev) for its libpcap oracle"
    );
    let out = std::env::temp_dir().join(format!("bpftools-p0f-libpcap-{}", std::process::id()));
    let build = Command::new("gcc")
        .arg("-O1")
        .arg("-o")
        .arg(&out)
        .arg(testdata("vm/libpcap_verdicts.c"))
        .arg("-lpcap")
        .output()
        .expect("run gcc");
    assert!(
        build.status.success(),
        "cannot build the libpcap helper (Debian: apt-get install libpcap-dev):\n{}",
        String::from_utf8_lossy(&build.stderr)
    );
    out
}

/// Every case's program (`-o 14`) on every case's Ethernet frame, with libpcap's `bpf_filter`:
/// the expected verdict on the case's own frame, and on every frame the same verdict as ours.
#[test]
fn libpcap_gives_the_same_verdicts() {
    let helper = build_libpcap_helper();
    let cases = cases();
    let frames: Vec<Vec<u8>> = cases
        .iter()
        .map(|(_, syn, _)| ethernet(&syn.packet()))
        .collect();
    let capture = std::env::temp_dir().join(format!("bpftools-p0f-{}.pcap", std::process::id()));
    let mut writer = Writer::new(std::fs::File::create(&capture).unwrap(), 1, false).unwrap();
    for frame in &frames {
        writer
            .write(Duration::ZERO, frame.len() as u32, frame)
            .unwrap();
    }
    writer.into_inner().flush().unwrap();
    let programs: Vec<Vec<RawInsn>> = cases
        .iter()
        .map(|(signature, syn, _)| {
            program(
                signature,
                &GenOptions {
                    inet6: inet6(signature, syn),
                    negate: false,
                    offset: 14,
                },
            )
        })
        .collect();
    let input: String = programs
        .iter()
        .map(|p| format_program(p, Format::Bytecode).replace(",\n", "\n"))
        .collect();
    let mut child = Command::new(&helper)
        .arg(&capture)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("libpcap helper");
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().expect("helper output");
    writer.join().unwrap().expect("write programs");
    let _ = std::fs::remove_file(&helper);
    let _ = std::fs::remove_file(&capture);
    assert!(output.status.success(), "libpcap helper failed");
    let lines: Vec<&str> = std::str::from_utf8(&output.stdout)
        .unwrap()
        .lines()
        .collect();
    assert_eq!(lines.len(), programs.len());
    let mut compared = 0;
    for (i, ((prog, line), (signature, syn, expected))) in
        programs.iter().zip(&lines).zip(&cases).enumerate()
    {
        let ours = Program::new(prog, Profile::Socket).unwrap();
        let theirs: Vec<u32> = line.split(' ').map(|v| v.parse().unwrap()).collect();
        assert_eq!(theirs.len(), frames.len());
        assert_eq!(theirs[i] != 0, *expected, "libpcap: {signature} on {syn:?}");
        for (frame, their) in frames.iter().zip(theirs) {
            assert_eq!(ours.run(frame), their, "{signature} on frame {frame:02x?}");
            compared += 1;
        }
    }
    eprintln!(
        "p0f on libpcap: {compared} verdicts ({} programs x {} frames) equal to ours",
        programs.len(),
        frames.len()
    );
}

#[test]
fn bpfgen_p0f_command_line() {
    let signature = "4:64:0:*:mss*20,7:mss,sok,ts,nop,ws:df,id+:0";
    // The program bpfgen prints is the library's, and it matches the packet.
    let out = run("bpfgen", &["-o", "14", "p0f", "--", signature], b"");
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = bpftools::asm::parse_bytecode(&stdout(&out)).unwrap();
    assert_eq!(
        printed,
        program(
            signature,
            &GenOptions {
                offset: 14,
                ..GenOptions::default()
            }
        )
    );
    let frame = ethernet(&Syn::linux().packet());
    assert_eq!(
        Program::new(&printed, Profile::Socket).unwrap().run(&frame),
        65535
    );
    // Assembly says what each block checks.
    let out = run("bpfgen", &["-s", "p0f", "--", signature], b"");
    let text = stdout(&out);
    for comment in [
        "; ittl 64: 29 < TTL <= 64",
        "; wsize mss*20",
        "; option ws at TCP byte 37",
        "; quirk id+: IP ID not zero",
        "; pclass 0: no TCP payload",
    ] {
        assert!(text.contains(comment), "{comment}:\n{text}");
    }
    // Version and -6 must agree; bad signatures name the field; all one line, exit 2.
    for (args, message) in [
        (
            &["-6", "p0f", "--", signature][..],
            "p0f: the signature's version is 4 and -6 asks for IPv6",
        ),
        (
            &["p0f", "--", "6:64:0:*:*,*:::0"],
            "p0f: the signature's version is 6: add -6",
        ),
        (&["p0f", "--", "4:64:0:*:*,*:::x"], "pclass 'x'"),
        (
            &["p0f", "--", "5:64:0:*:*,*:::0"],
            "version '5': expected 4, 6 or *",
        ),
        (&["p0f", "--", "4:64:0:*"], "4 fields, expected 8"),
        (&["p0f"], "SIGNATURE"),
    ] {
        let out = run("bpfgen", args, b"");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        let err = stderr(&out);
        assert!(
            err.starts_with("bpfgen: ") && err.lines().count() == 1 && err.contains(message),
            "{args:?}: {err}"
        );
    }
    let out = run("bpfgen", &["-6", "p0f", "--", "*:64:0:*:*,*:::0"], b"");
    assert!(out.status.success(), "{}", stderr(&out));
    // Help, from both tools.
    for tool in ["bpfgen", "iptables-bpf"] {
        let out = run(tool, &["p0f", "--help"], b"");
        assert!(out.status.success(), "{tool}: {}", stderr(&out));
        let help = stdout(&out);
        assert!(
            help.contains("ver:ittl:olen:mss:wsize,scale:olayout:quirks:pclass")
                && help.contains("Differences from the original bpftools")
                && help.contains("Examples:"),
            "{tool}: {help}"
        );
    }
    // Every example of the help generates.
    let help = stdout(&run("bpfgen", &["p0f", "--help"], b""));
    let examples: Vec<&str> = help
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("bpfgen "))
        .collect();
    assert!(examples.len() >= 4, "{help}");
    for example in examples {
        let (flags, rest) = example.split_once("p0f -- '").unwrap();
        let signature = rest.split('\'').next().unwrap();
        let mut args: Vec<&str> = flags.split_whitespace().collect();
        args.extend(["p0f", "--", signature]);
        let out = run("bpfgen", &args, b"");
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }
}
