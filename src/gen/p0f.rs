//! The `p0f` generator: TCP packets that fit a p0f v3 TCP signature.
//!
//! A signature is `ver:ittl:olen:mss:wsize,scale:olayout:quirks:pclass`, as in p0f's p0f.fp
//! and in the `raw_sig` p0f prints. The program checks, all of them at once:
//! - `ver`: `4`, `6`, or `*` (either: the program reads the IP version and checks each packet
//!   with its own family's fields and quirks);
//! - the packet is TCP (IPv4: protocol 6 and the first fragment; IPv6: next header 6, directly
//!   after the fixed header, as p0f reads IPv6);
//! - `ittl`: the initial TTL `N` (also `N+D`, p0f's observed TTL and distance: N + D): the TTL
//!   is at most N and, when N > 32, more than N - 35; `N-` (tools that pick random TTLs) does
//!   not check the TTL;
//! - `olen`: the length of the IPv4 options in bytes (`*` any); not read on IPv6;
//! - `mss`: the MSS option's value (`*` and `0` do not check);
//! - `wsize`: the window: `N`, `mss*N` (the packet's MSS times N), `mtu*N` (1500 times N, as
//!   the original bpftools assumed), `%N` (a multiple of N), `*` any; `scale`: the window
//!   scale option's value (`*` and `0` do not check);
//! - `olayout`: the kinds of the options in this order at their usual places (mss 4 bytes, ws 3,
//!   sok 2, ts 10, nop 1, eol 1 followed by `eol+N`'s N bytes of padding, which must be zero)
//!   and the TCP data offset that holds them (the option bytes rounded up to 4);
//! - quirks, each listed one must hold: `df` (don't fragment), `id+` (DF and a non-zero IP ID),
//!   `id-` (no DF and a zero IP ID), `0+` (the must-be-zero bit set: without it the bit must be
//!   clear), `ecn` (an ECN bit in the IP header), `flow` (a non-zero IPv6 flow label), `seq-`
//!   (sequence number 0), `ack+` (ACK number without the ACK flag), `ack-` (ACK flag with ACK
//!   number 0), `uptr+` (urgent pointer without the URG flag), `urgf+` (URG flag), `pushf+`
//!   (PSH flag), `ts1-` (own timestamp 0), `ts2+` (non-zero peer timestamp), `opt+` (non-zero
//!   padding after EOL), `exws` (window scale above 14), `bad` (malformed options: the data
//!   offset is not checked), and the original bpftools' `linux` (IPv4 ID = (sequence number
//!   XOR own timestamp) & 0xffff). IPv4-only quirks are refused in a version 6 signature and
//!   `flow` in a version 4 one (as p0f does); with `*` each applies to its own family only;
//! - `pclass`: the TCP payload is empty (`0`), not empty (`+`), or either (`*`).
//!
//! The SYN and ACK flags are not checked (a signature fits SYNs or SYN+ACKs depending on the
//! p0f.fp section it comes from): combine with the rule's own `--syn` or a tcpdump expression.
//!
//! Where this differs from the original bpftools' `p0f` generator (which wrote a tcpdump
//! expression): `*` is accepted as the version; the TCP protocol and first fragment are always
//! checked (IPv6 included: the original read any IPv6 packet's bytes 40 on as TCP); `olen` is
//! in bytes, as p0f writes it (the original read it as 32-bit words); every listed quirk of
//! `df`, `id+`, `id-` is checked (the original checked the first one only); `ecn` is either ECN
//! bit, on IPv6 too (the original: bit 0x02 on IPv4 only); `flow` is the whole 20-bit label
//! (the original: its low 16 bits); `eol+N` checks exactly N bytes of padding, and `opt+` means
//! any of them is non-zero (the original read some paddings in wrong chunks and wanted every
//! chunk non-zero); `N+D` TTLs are read; a version 4 signature with `-6`, a version 6 one
//! without, an option a field needs missing from `olayout`, and quirks that can never hold
//! together are refused.
//!
//! Layout: this file keeps the signature's types, what a signature says about the packets
//! (option offsets, padding, the per-family signature), its printing, and the check of its
//! version against the generator's options; `signature` parses and checks the text, and
//! `emit` writes the program. This file must not parse text nor emit instructions.

mod emit;
mod signature;

use std::fmt;

use thiserror::Error;

use crate::gen::GenOptions;

pub use emit::{build, ASSUMED_MTU};
pub use signature::{SignatureError, SignatureProblem};

/// The IP version(s) a signature applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpVersion {
    /// `4`.
    V4,
    /// `6`.
    V6,
    /// `*`: either.
    Any,
}

/// The initial TTL field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ttl {
    /// The initial TTL (1 to 255).
    pub initial: u8,
    /// `N-`: the sender picks random TTLs, the TTL is not checked.
    pub random: bool,
}

/// The window size field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowSize {
    /// `*`.
    Any,
    /// `N`.
    Exact(u16),
    /// `mss*N`: the packet's MSS option times N.
    MssMultiple(u16),
    /// `mtu*N`: 1500 times N.
    MtuMultiple(u16),
    /// `%N`: a multiple of N.
    Multiple(u16),
}

/// One entry of the option layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpOption {
    /// `eol+N`: end of options, then N bytes of padding.
    Eol {
        /// Padding bytes after the EOL.
        padding: u8,
    },
    /// `nop`.
    Nop,
    /// `mss`.
    Mss,
    /// `ws`.
    WindowScale,
    /// `sok`.
    SackPermitted,
    /// `ts`.
    Timestamp,
}

impl TcpOption {
    /// The option's kind byte.
    pub fn kind(self) -> u8 {
        match self {
            TcpOption::Eol { .. } => 0,
            TcpOption::Nop => 1,
            TcpOption::Mss => 2,
            TcpOption::WindowScale => 3,
            TcpOption::SackPermitted => 4,
            TcpOption::Timestamp => 8,
        }
    }

    /// The option's length in a SYN (for EOL, the padding is not included).
    pub fn size(self) -> u32 {
        match self {
            TcpOption::Eol { .. } | TcpOption::Nop => 1,
            TcpOption::Mss => 4,
            TcpOption::WindowScale => 3,
            TcpOption::SackPermitted => 2,
            TcpOption::Timestamp => 10,
        }
    }

    fn name(self) -> &'static str {
        match self {
            TcpOption::Eol { .. } => "eol",
            TcpOption::Nop => "nop",
            TcpOption::Mss => "mss",
            TcpOption::WindowScale => "ws",
            TcpOption::SackPermitted => "sok",
            TcpOption::Timestamp => "ts",
        }
    }
}

/// A quirk (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quirk {
    /// `df`.
    Df,
    /// `id+`.
    NonZeroId,
    /// `id-`.
    ZeroId,
    /// `ecn`.
    Ecn,
    /// `0+`.
    MustBeZero,
    /// `flow`.
    Flow,
    /// `seq-`.
    ZeroSeq,
    /// `ack+`.
    NonZeroAck,
    /// `ack-`.
    ZeroAck,
    /// `uptr+`.
    NonZeroUrg,
    /// `urgf+`.
    Urg,
    /// `pushf+`.
    Push,
    /// `ts1-`.
    ZeroTs1,
    /// `ts2+`.
    NonZeroTs2,
    /// `opt+`.
    NonZeroPadding,
    /// `exws`.
    ExcessiveScale,
    /// `bad`.
    Bad,
    /// `linux` (the original bpftools').
    Linux,
}

const QUIRKS: [(Quirk, &str); 18] = [
    (Quirk::Df, "df"),
    (Quirk::NonZeroId, "id+"),
    (Quirk::ZeroId, "id-"),
    (Quirk::Ecn, "ecn"),
    (Quirk::MustBeZero, "0+"),
    (Quirk::Flow, "flow"),
    (Quirk::ZeroSeq, "seq-"),
    (Quirk::NonZeroAck, "ack+"),
    (Quirk::ZeroAck, "ack-"),
    (Quirk::NonZeroUrg, "uptr+"),
    (Quirk::Urg, "urgf+"),
    (Quirk::Push, "pushf+"),
    (Quirk::ZeroTs1, "ts1-"),
    (Quirk::NonZeroTs2, "ts2+"),
    (Quirk::NonZeroPadding, "opt+"),
    (Quirk::ExcessiveScale, "exws"),
    (Quirk::Bad, "bad"),
    (Quirk::Linux, "linux"),
];

impl Quirk {
    /// The quirk as p0f writes it.
    pub fn name(self) -> &'static str {
        QUIRKS
            .iter()
            .find(|(q, _)| *q == self)
            .map(|(_, name)| *name)
            .unwrap_or("?")
    }

    fn ipv4_only(self) -> bool {
        matches!(
            self,
            Quirk::Df | Quirk::NonZeroId | Quirk::ZeroId | Quirk::MustBeZero | Quirk::Linux
        )
    }
}

/// The payload class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadClass {
    /// `0`: no TCP payload.
    Zero,
    /// `+`: some payload.
    NonZero,
    /// `*`: either.
    Any,
}

/// A parsed p0f v3 TCP signature: the `p0f` generator's argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct P0fSpec {
    /// `ver`.
    pub version: IpVersion,
    /// `ittl`.
    pub ttl: Ttl,
    /// `olen`: IPv4 options length in bytes (a multiple of 4, at most 40); `None` for `*`.
    pub options_len: Option<u8>,
    /// `mss`: `None` for `*`.
    pub mss: Option<u16>,
    /// `wsize`.
    pub window: WindowSize,
    /// `scale`: `None` for `*`.
    pub scale: Option<u8>,
    /// `olayout`.
    pub layout: Vec<TcpOption>,
    /// `quirks`, as written.
    pub quirks: Vec<Quirk>,
    /// `pclass`.
    pub payload: PayloadClass,
}

impl P0fSpec {
    /// The signature as it reads packets of one family (IPv6 when `inet6`): version `*`
    /// becomes that family's version and the other family's quirks are left out (the `*`
    /// program never checks them on this family's packets), so on packets of that family its
    /// program gives the `*` program's verdicts, in fewer instructions. A signature of
    /// version 4 or 6 is returned as it is.
    pub fn for_family(&self, inet6: bool) -> P0fSpec {
        if self.version != IpVersion::Any {
            return self.clone();
        }
        P0fSpec {
            version: if inet6 { IpVersion::V6 } else { IpVersion::V4 },
            quirks: self
                .quirks
                .iter()
                .copied()
                .filter(|q| {
                    if inet6 {
                        !q.ipv4_only()
                    } else {
                        *q != Quirk::Flow
                    }
                })
                .collect(),
            ..self.clone()
        }
    }

    fn has_quirk(&self, quirk: Quirk) -> bool {
        self.quirks.contains(&quirk)
    }

    /// Where an option starts, counted from the TCP header (options start at 20).
    fn option_offset(&self, wanted: TcpOption) -> Option<u32> {
        let mut at = 20;
        for option in &self.layout {
            if *option == wanted {
                return Some(at);
            }
            at += option.size();
        }
        None
    }

    /// The option bytes the layout describes, padding included.
    fn options_bytes(&self) -> u32 {
        self.layout
            .iter()
            .map(|o| match o {
                TcpOption::Eol { padding } => 1 + u32::from(*padding),
                other => other.size(),
            })
            .sum()
    }

    fn padding(&self) -> Option<(u32, u8)> {
        let mut at = 20;
        for option in &self.layout {
            if let TcpOption::Eol { padding } = option {
                return Some((at + 1, *padding));
            }
            at += option.size();
        }
        None
    }
}

impl fmt::Display for P0fSpec {
    /// The signature in p0f's notation (TTLs written `N+D` are shown as their sum).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let star = |value: Option<String>| value.unwrap_or_else(|| "*".into());
        let version = match self.version {
            IpVersion::V4 => "4",
            IpVersion::V6 => "6",
            IpVersion::Any => "*",
        };
        let ttl = format!(
            "{}{}",
            self.ttl.initial,
            if self.ttl.random { "-" } else { "" }
        );
        let window = match self.window {
            WindowSize::Any => "*".to_string(),
            WindowSize::Exact(n) => n.to_string(),
            WindowSize::MssMultiple(n) => format!("mss*{n}"),
            WindowSize::MtuMultiple(n) => format!("mtu*{n}"),
            WindowSize::Multiple(n) => format!("%{n}"),
        };
        let layout: Vec<String> = self
            .layout
            .iter()
            .map(|o| match o {
                TcpOption::Eol { padding } => format!("eol+{padding}"),
                other => other.name().to_string(),
            })
            .collect();
        let quirks: Vec<&str> = self.quirks.iter().map(|q| q.name()).collect();
        let payload = match self.payload {
            PayloadClass::Zero => "0",
            PayloadClass::NonZero => "+",
            PayloadClass::Any => "*",
        };
        write!(
            f,
            "{version}:{ttl}:{}:{}:{window},{}:{}:{}:{payload}",
            star(self.options_len.map(|n| n.to_string())),
            star(self.mss.map(|n| n.to_string())),
            star(self.scale.map(|n| n.to_string())),
            layout.join(","),
            quirks.join(",")
        )
    }
}

/// Why a signature cannot be built for the generator's options: its version is the other
/// family's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum FamilyError {
    /// A version 4 signature with `-6`.
    #[error("the signature's version is 4 and -6 asks for IPv6: drop -6, or use version 6 or *")]
    V4ForInet6,
    /// A version 6 signature without `-6`.
    #[error("the signature's version is 6: add -6 (IPv6), or use version 4 or *")]
    V6ForInet,
}

/// Why a signature cannot be built for these options.
pub fn check_family(spec: &P0fSpec, opts: &GenOptions) -> Result<(), FamilyError> {
    match (spec.version, opts.inet6) {
        (IpVersion::V4, true) => Err(FamilyError::V4ForInet6),
        (IpVersion::V6, false) => Err(FamilyError::V6ForInet),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_print_back_as_parsed() {
        for text in [
            "4:64:0:*:mss*20,10:mss,sok,ts,nop,ws:df,id+:0",
            "*:128:0:*:8192,0:mss,nop,ws,nop,nop,sok:df,id+:0",
            "6:255-:*:1460:%8192,*:mss,nop,eol+2:flow,opt+:+",
            "*:64:4:*:mtu*4,*::bad,ecn:*",
        ] {
            let spec: P0fSpec = text.parse().unwrap();
            assert_eq!(spec.to_string(), text);
        }
        let spec: P0fSpec = "4:54+10:0:*:*,*:eol::*".parse().unwrap();
        assert_eq!(spec.to_string(), "4:64:0:*:*,*:eol+0::*");
    }

    #[test]
    fn a_version_of_the_other_family_is_refused() {
        let v4: P0fSpec = "4:64:0:*:*,*:::0".parse().unwrap();
        let inet6 = GenOptions {
            inet6: true,
            ..GenOptions::default()
        };
        assert_eq!(check_family(&v4, &inet6), Err(FamilyError::V4ForInet6));
        assert_eq!(check_family(&v4, &GenOptions::default()), Ok(()));
        let any = v4.for_family(true);
        assert_eq!(any, v4, "a version 4 signature is kept as it is");
        let v6: P0fSpec = "6:64:*:*:*,*:::0".parse().unwrap();
        assert_eq!(
            check_family(&v6, &GenOptions::default()),
            Err(FamilyError::V6ForInet)
        );
    }
}
