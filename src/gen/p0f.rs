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

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

use crate::asm::labels::Target;
use crate::gen::builder::Builder;
use crate::gen::GenOptions;
use crate::insn::{AluOp, Insn, JumpCond, Operand, Size};

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

/// Why a signature is not valid.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("signature '{signature}': {message}")]
pub struct SignatureError {
    /// The signature as given (at most 100 characters of it).
    pub signature: String,
    /// What is wrong, naming the field, and what was expected.
    pub message: String,
}

fn number<T: FromStr>(text: &str) -> Option<T> {
    (!text.is_empty() && text.len() <= 5 && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

fn star_or<T: FromStr>(text: &str) -> Result<Option<T>, ()> {
    if text == "*" {
        Ok(None)
    } else {
        number(text).map(Some).ok_or(())
    }
}

impl FromStr for P0fSpec {
    type Err = SignatureError;

    fn from_str(text: &str) -> Result<P0fSpec, SignatureError> {
        let fail = |message: String| SignatureError {
            signature: text.chars().take(100).collect(),
            message,
        };
        let fields: Vec<&str> = text.trim().split(':').collect();
        let [ver, ittl, olen, mss, window, layout, quirks, pclass] = fields[..] else {
            return Err(fail(format!(
                "{} fields, expected 8: ver:ittl:olen:mss:wsize,scale:olayout:quirks:pclass",
                fields.len()
            )));
        };
        let version = match ver {
            "4" => IpVersion::V4,
            "6" => IpVersion::V6,
            "*" => IpVersion::Any,
            other => {
                return Err(fail(format!(
                    "version '{other}': expected 4, 6 or * (either)"
                )))
            }
        };
        let bad_ttl = || {
            fail(format!(
                "ittl '{ittl}': expected the initial TTL N (1 to 255), N- (random TTLs) or N+D (observed TTL and distance)"
            ))
        };
        let ttl = if let Some(n) = ittl.strip_suffix('-') {
            Ttl {
                initial: number(n).filter(|&n| n > 0).ok_or_else(bad_ttl)?,
                random: true,
            }
        } else if let Some((n, d)) = ittl.split_once('+') {
            let (n, d): (u32, u32) = (
                number(n).ok_or_else(bad_ttl)?,
                number(d).ok_or_else(bad_ttl)?,
            );
            Ttl {
                initial: u8::try_from(n + d)
                    .ok()
                    .filter(|&t| t > 0)
                    .ok_or_else(bad_ttl)?,
                random: false,
            }
        } else {
            Ttl {
                initial: number(ittl).filter(|&n| n > 0).ok_or_else(bad_ttl)?,
                random: false,
            }
        };
        let options_len: Option<u8> = star_or(olen)
            .ok()
            .filter(|o: &Option<u8>| match o {
                None => true,
                Some(n) => n % 4 == 0 && *n <= 40,
            })
            .ok_or_else(|| {
                fail(format!(
                    "olen '{olen}': expected the IPv4 options' length in bytes (0, 4, ... 40) or *"
                ))
            })?;
        let mss: Option<u16> =
            star_or(mss).map_err(|()| fail(format!("mss '{mss}': expected 0 to 65535 or *")))?;
        let (wsize, scale) = window.split_once(',').ok_or_else(|| {
            fail(format!(
                "wsize,scale '{window}': expected the window size and scale, separated by ','"
            ))
        })?;
        let bad_window = || {
            fail(format!(
                "wsize '{wsize}': expected N, mss*N, mtu*N, %N (N from 1) or *"
            ))
        };
        let multiplier = |n: &str| number::<u16>(n).filter(|&n| n > 0).ok_or_else(bad_window);
        let window = if wsize == "*" {
            WindowSize::Any
        } else if let Some(n) = wsize.strip_prefix("mss*") {
            WindowSize::MssMultiple(multiplier(n)?)
        } else if let Some(n) = wsize.strip_prefix("mtu*") {
            WindowSize::MtuMultiple(multiplier(n)?)
        } else if let Some(n) = wsize.strip_prefix('%') {
            WindowSize::Multiple(multiplier(n)?)
        } else {
            WindowSize::Exact(number(wsize).ok_or_else(bad_window)?)
        };
        let scale: Option<u8> = star_or(scale)
            .map_err(|()| fail(format!("scale '{scale}': expected 0 to 255 or *")))?;
        let mut options = Vec::new();
        for (index, name) in layout
            .split(',')
            .filter(|o| !layout.is_empty() || !o.is_empty())
            .enumerate()
        {
            if options.iter().any(|o| matches!(o, TcpOption::Eol { .. })) {
                return Err(fail(format!(
                    "olayout: '{name}' after eol: eol ends the options (expected it last)"
                )));
            }
            let option = match name {
                "nop" => TcpOption::Nop,
                "mss" => TcpOption::Mss,
                "ws" => TcpOption::WindowScale,
                "sok" => TcpOption::SackPermitted,
                "ts" => TcpOption::Timestamp,
                "eol" => TcpOption::Eol { padding: 0 },
                other => match other.strip_prefix("eol+").map(number::<u8>) {
                    Some(Some(padding)) => TcpOption::Eol { padding },
                    _ if other == "sack" || other.starts_with('?') => {
                        return Err(fail(format!(
                            "olayout: option {} '{other}' has no fixed length, so the options after it have no fixed place: not supported",
                            index + 1
                        )))
                    }
                    _ => {
                        return Err(fail(format!(
                            "olayout: option {} '{other}': expected eol+N, nop, mss, ws, sok or ts",
                            index + 1
                        )))
                    }
                },
            };
            options.push(option);
        }
        let mut quirk_list = Vec::new();
        for name in quirks.split(',').filter(|q| !q.is_empty()) {
            let quirk = QUIRKS
                .iter()
                .find(|(_, n)| *n == name)
                .map(|(q, _)| *q)
                .ok_or_else(|| {
                    fail(format!(
                        "quirk '{name}': expected one of {}",
                        QUIRKS.map(|(_, n)| n).join(", ")
                    ))
                })?;
            quirk_list.push(quirk);
        }
        let payload = match pclass {
            "0" => PayloadClass::Zero,
            "+" => PayloadClass::NonZero,
            "*" => PayloadClass::Any,
            other => {
                return Err(fail(format!(
                    "pclass '{other}': expected 0 (no payload), + (some) or * (either)"
                )))
            }
        };
        let spec = P0fSpec {
            version,
            ttl,
            options_len,
            mss,
            window,
            scale,
            layout: options,
            quirks: quirk_list,
            payload,
        };
        spec.check().map_err(fail)?;
        Ok(spec)
    }
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

    /// Refuses what can never match or cannot be checked.
    fn check(&self) -> Result<(), String> {
        let needs = |what: &str, option: TcpOption| -> Result<(), String> {
            if self.layout.contains(&option) {
                Ok(())
            } else {
                Err(format!(
                    "{what} needs the '{}' option in olayout, which has none",
                    option.name()
                ))
            }
        };
        if self.mss.is_some_and(|m| m != 0) {
            needs("mss", TcpOption::Mss)?;
        }
        if matches!(self.window, WindowSize::MssMultiple(_)) {
            needs("wsize mss*N", TcpOption::Mss)?;
        }
        if self.scale.is_some_and(|s| s != 0) {
            needs("scale", TcpOption::WindowScale)?;
        }
        for quirk in &self.quirks {
            match quirk {
                Quirk::ZeroTs1 | Quirk::NonZeroTs2 | Quirk::Linux => {
                    needs(&format!("quirk '{}'", quirk.name()), TcpOption::Timestamp)?
                }
                Quirk::ExcessiveScale => needs("quirk 'exws'", TcpOption::WindowScale)?,
                Quirk::NonZeroPadding if self.padding().is_none_or(|(_, n)| n == 0) => return Err(
                    "quirk 'opt+' needs padding after the options: eol+N with N from 1 in olayout"
                        .into(),
                ),
                _ => {}
            }
            if self.version == IpVersion::V6 && quirk.ipv4_only() {
                return Err(format!(
                    "quirk '{}' is for IPv4 only, and the signature's version is 6",
                    quirk.name()
                ));
            }
            if self.version == IpVersion::V4 && *quirk == Quirk::Flow {
                return Err(
                    "quirk 'flow' is for IPv6 only, and the signature's version is 4".into(),
                );
            }
        }
        for (a, b, why) in [
            (Quirk::NonZeroId, Quirk::ZeroId, "DF set and DF clear"),
            (Quirk::Df, Quirk::ZeroId, "DF set and DF clear"),
            (
                Quirk::NonZeroAck,
                Quirk::ZeroAck,
                "the ACK flag clear and set",
            ),
            (Quirk::NonZeroUrg, Quirk::Urg, "the URG flag clear and set"),
        ] {
            if self.has_quirk(a) && self.has_quirk(b) {
                return Err(format!(
                    "quirks '{}' and '{}' never hold together ({why})",
                    a.name(),
                    b.name()
                ));
            }
        }
        let bytes = self.options_bytes();
        if bytes > 40 {
            return Err(format!(
                "olayout takes {bytes} bytes, a TCP header has room for 40"
            ));
        }
        Ok(())
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

/// Why a signature cannot be built for these options.
pub fn check_family(spec: &P0fSpec, opts: &GenOptions) -> Result<(), String> {
    match (spec.version, opts.inet6) {
        (IpVersion::V4, true) => Err(
            "the signature's version is 4 and -6 asks for IPv6: drop -6, or use version 6 or *"
                .into(),
        ),
        (IpVersion::V6, false) => {
            Err("the signature's version is 6: add -6 (IPv6), or use version 4 or *".into())
        }
        _ => Ok(()),
    }
}

/// IPv4 or IPv6, for the part of the program that reads one family's headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

/// Byte offsets in the IP headers.
mod ip {
    /// IPv4: version and header length.
    pub const V4_VERSION_IHL: u32 = 0;
    /// IPv4: DSCP and ECN.
    pub const V4_TOS: u32 = 1;
    /// IPv4: total length.
    pub const V4_TOTAL_LEN: u32 = 2;
    /// IPv4: identification.
    pub const V4_ID: u32 = 4;
    /// IPv4: flags (reserved, DF, MF) and fragment offset.
    pub const V4_FLAGS_FRAGMENT: u32 = 6;
    /// IPv4: TTL.
    pub const V4_TTL: u32 = 8;
    /// IPv4: protocol.
    pub const V4_PROTOCOL: u32 = 9;
    /// IPv6: version, traffic class, flow label.
    pub const V6_FIRST_WORD: u32 = 0;
    /// IPv6: traffic class' low nibble (its ECN bits are 0x30 here) and the flow label's top.
    pub const V6_TCLASS_LOW: u32 = 1;
    /// IPv6: payload length.
    pub const V6_PAYLOAD_LEN: u32 = 4;
    /// IPv6: next header.
    pub const V6_NEXT_HEADER: u32 = 6;
    /// IPv6: hop limit.
    pub const V6_HOP_LIMIT: u32 = 7;
    /// IPv6: fixed header length.
    pub const V6_HEADER_LEN: u32 = 40;
}

/// Byte offsets in the TCP header.
mod tcp {
    pub const SEQ: u32 = 4;
    pub const ACK: u32 = 8;
    pub const DATA_OFFSET: u32 = 12;
    pub const FLAGS: u32 = 13;
    pub const WINDOW: u32 = 14;
    pub const URGENT: u32 = 18;
    pub const FLAG_PSH: u32 = 0x08;
    pub const FLAG_ACK: u32 = 0x10;
    pub const FLAG_URG: u32 = 0x20;
}

/// IPv4 flag bits in the flags and fragment offset half-word.
const IPV4_MBZ: u32 = 0x8000;
const IPV4_DF: u32 = 0x4000;
const IPV4_FRAGMENT_OFFSET: u32 = 0x1fff;
const TCP: u32 = 6;
/// The MTU `mtu*N` window sizes multiply, as the original bpftools assumed (Ethernet).
pub const ASSUMED_MTU: u32 = 1500;

struct Emitter<'a> {
    b: &'a mut Builder,
    spec: &'a P0fSpec,
    offset: u32,
    fail: String,
    family: Family,
}

impl Emitter<'_> {
    fn fail_unless(&mut self, cond: JumpCond, k: u32) {
        self.b.jump(
            cond,
            Operand::K(k),
            Target::Next,
            Target::Label(self.fail.clone()),
        );
    }

    fn fail_if(&mut self, cond: JumpCond, k: u32) {
        self.b.jump(
            cond,
            Operand::K(k),
            Target::Label(self.fail.clone()),
            Target::Next,
        );
    }

    fn ld_ip(&mut self, size: Size, field: u32) {
        self.b.insn(Insn::LoadAbs {
            size,
            offset: self.offset + field,
        });
    }

    /// A TCP field: X holds the IP header's length.
    fn ld_tcp(&mut self, size: Size, field: u32) {
        self.b.insn(Insn::LoadInd {
            size,
            offset: self.offset + field,
        });
    }

    /// X = the IP header's length, so that `[x + offset + k]` is the TCP header's byte k.
    fn load_header_len(&mut self) {
        match self.family {
            Family::V4 => self
                .b
                .insn(Insn::LoadXMsh(self.offset + ip::V4_VERSION_IHL)),
            Family::V6 => self.b.insn(Insn::LoadXImm(ip::V6_HEADER_LEN)),
        }
    }

    fn alu(&mut self, op: AluOp, k: u32) {
        self.b.insn(Insn::Alu {
            op,
            operand: Operand::K(k),
        });
    }

    /// Fails unless A == M[0] (X is reloaded afterwards).
    fn fail_unless_a_equals_m0(&mut self) {
        self.b.insn(Insn::LoadXMem(0));
        self.b.jump(
            JumpCond::Eq,
            Operand::X,
            Target::Next,
            Target::Label(self.fail.clone()),
        );
        self.load_header_len();
    }

    fn option_offset(&self, option: TcpOption) -> u32 {
        self.spec
            .option_offset(option)
            .expect("checked when the signature was parsed")
    }

    fn emit(&mut self, verdict: u32) {
        let spec = self.spec;
        let v4 = self.family == Family::V4;
        if v4 {
            self.b
                .comment("IPv4: TCP, first fragment (later ones carry no TCP header)");
            self.ld_ip(Size::Byte, ip::V4_PROTOCOL);
            self.fail_unless(JumpCond::Eq, TCP);
            self.ld_ip(Size::Half, ip::V4_FLAGS_FRAGMENT);
            self.fail_if(JumpCond::Set, IPV4_FRAGMENT_OFFSET);
        } else {
            self.b
                .comment("IPv6: TCP right after the fixed header (p0f reads no extension headers)");
            self.ld_ip(Size::Byte, ip::V6_NEXT_HEADER);
            self.fail_unless(JumpCond::Eq, TCP);
        }
        self.b
            .comment("x = IP header length: [x + k] is the TCP header's byte k");
        self.load_header_len();
        if !spec.ttl.random {
            let n = u32::from(spec.ttl.initial);
            if n > 32 {
                self.b.comment(format!("ittl {n}: {} < TTL <= {n}", n - 35));
            } else {
                self.b.comment(format!("ittl {n}: TTL <= {n}"));
            }
            let field = if v4 { ip::V4_TTL } else { ip::V6_HOP_LIMIT };
            self.ld_ip(Size::Byte, field);
            self.fail_if(JumpCond::Gt, n);
            if n > 32 {
                self.fail_unless(JumpCond::Gt, n - 35);
            }
        }
        if let (true, Some(olen)) = (v4, spec.options_len) {
            self.b.comment(format!(
                "olen {olen}: IPv4 header length {} (5 + {olen} / 4 words)",
                20 + u32::from(olen)
            ));
            self.ld_ip(Size::Byte, ip::V4_VERSION_IHL);
            self.alu(AluOp::And, 0x0f);
            self.fail_unless(JumpCond::Eq, 5 + u32::from(olen) / 4);
        }
        if let Some(mss) = spec.mss.filter(|&m| m != 0) {
            self.b.comment(format!("mss {mss}"));
            let at = self.option_offset(TcpOption::Mss);
            self.ld_tcp(Size::Half, at + 2);
            self.fail_unless(JumpCond::Eq, u32::from(mss));
        }
        match spec.window {
            WindowSize::Any => {}
            WindowSize::Exact(n) => {
                self.b.comment(format!("wsize {n}"));
                self.ld_tcp(Size::Half, tcp::WINDOW);
                self.fail_unless(JumpCond::Eq, u32::from(n));
            }
            WindowSize::MtuMultiple(n) => {
                self.b.comment(format!(
                    "wsize mtu*{n}: {ASSUMED_MTU} * {n} (the MTU is taken as {ASSUMED_MTU})"
                ));
                self.ld_tcp(Size::Half, tcp::WINDOW);
                self.fail_unless(JumpCond::Eq, ASSUMED_MTU * u32::from(n));
            }
            WindowSize::Multiple(n) => {
                self.b.comment(format!("wsize %{n}: a multiple of {n}"));
                self.ld_tcp(Size::Half, tcp::WINDOW);
                self.alu(AluOp::Mod, u32::from(n));
                self.fail_unless(JumpCond::Eq, 0);
            }
            WindowSize::MssMultiple(n) => {
                self.b
                    .comment(format!("wsize mss*{n}: the MSS option's value * {n}"));
                let at = self.option_offset(TcpOption::Mss);
                self.ld_tcp(Size::Half, at + 2);
                self.alu(AluOp::Mul, u32::from(n));
                self.b.insn(Insn::Store(0));
                self.ld_tcp(Size::Half, tcp::WINDOW);
                self.fail_unless_a_equals_m0();
            }
        }
        if let Some(scale) = spec.scale.filter(|&s| s != 0) {
            self.b.comment(format!("scale {scale}"));
            let at = self.option_offset(TcpOption::WindowScale);
            self.ld_tcp(Size::Byte, at + 2);
            self.fail_unless(JumpCond::Eq, u32::from(scale));
        }
        self.emit_layout();
        self.emit_quirks();
        match spec.payload {
            PayloadClass::Any => {}
            class => {
                self.b.comment(if class == PayloadClass::Zero {
                    "pclass 0: no TCP payload"
                } else {
                    "pclass +: some TCP payload"
                });
                // A = TCP header length (data offset * 4), + the IPv4 header length; the IP
                // length field minus it is the payload's length.
                self.ld_tcp(Size::Byte, tcp::DATA_OFFSET);
                self.alu(AluOp::And, 0xf0);
                self.alu(AluOp::Rsh, 2);
                if v4 {
                    self.b.insn(Insn::Alu {
                        op: AluOp::Add,
                        operand: Operand::X,
                    });
                }
                self.b.insn(Insn::Tax);
                let length = if v4 {
                    ip::V4_TOTAL_LEN
                } else {
                    ip::V6_PAYLOAD_LEN
                };
                self.ld_ip(Size::Half, length);
                self.b.insn(Insn::Alu {
                    op: AluOp::Sub,
                    operand: Operand::X,
                });
                if class == PayloadClass::Zero {
                    self.fail_unless(JumpCond::Eq, 0);
                } else {
                    self.fail_if(JumpCond::Eq, 0);
                }
            }
        }
        self.b.insn(Insn::RetK(verdict));
    }

    fn emit_layout(&mut self) {
        let spec = self.spec;
        if spec.has_quirk(Quirk::Bad) {
            self.b
                .comment("quirk bad: malformed options, the data offset is not checked");
        } else {
            let words = 5 + spec.options_bytes().div_ceil(4);
            self.b.comment(format!(
                "olayout: {} option bytes, TCP data offset {words}",
                spec.options_bytes()
            ));
            self.ld_tcp(Size::Byte, tcp::DATA_OFFSET);
            self.alu(AluOp::Rsh, 4);
            self.fail_unless(JumpCond::Eq, words);
        }
        let mut at = 20;
        for option in &spec.layout {
            self.b
                .comment(format!("option {} at TCP byte {at}", option.name()));
            self.ld_tcp(Size::Byte, at);
            self.fail_unless(JumpCond::Eq, u32::from(option.kind()));
            at += option.size();
        }
        let Some((start, padding)) = spec.padding().filter(|(_, n)| *n > 0) else {
            return;
        };
        let any_nonzero = spec.has_quirk(Quirk::NonZeroPadding);
        self.b.comment(if any_nonzero {
            format!("quirk opt+: one of the {padding} padding bytes after eol is not zero")
        } else {
            format!("the {padding} padding bytes after eol are zero")
        });
        let found = self.b.new_label("padding_not_zero");
        let mut rest = u32::from(padding);
        let mut at = start;
        while rest > 0 {
            let (size, width) = match rest {
                4.. => (Size::Word, 4),
                2..=3 => (Size::Half, 2),
                _ => (Size::Byte, 1),
            };
            self.ld_tcp(size, at);
            rest -= width;
            at += width;
            if !any_nonzero {
                self.fail_unless(JumpCond::Eq, 0);
            } else if rest > 0 {
                self.b.jump(
                    JumpCond::Eq,
                    Operand::K(0),
                    Target::Next,
                    Target::Label(found.clone()),
                );
            } else {
                self.fail_if(JumpCond::Eq, 0);
            }
        }
        if any_nonzero {
            self.b.label(&found);
        }
    }

    fn emit_quirks(&mut self) {
        let spec = self.spec;
        let v4 = self.family == Family::V4;
        if v4 {
            let df = spec.has_quirk(Quirk::Df) || spec.has_quirk(Quirk::NonZeroId);
            let no_df = spec.has_quirk(Quirk::ZeroId);
            let mbz = spec.has_quirk(Quirk::MustBeZero);
            self.b.comment(format!(
                "{}the must-be-zero bit {}",
                if df {
                    "quirk df: DF set; "
                } else if no_df {
                    "quirk id-: DF clear; "
                } else {
                    ""
                },
                if mbz { "set (quirk 0+)" } else { "clear" }
            ));
            self.ld_ip(Size::Half, ip::V4_FLAGS_FRAGMENT);
            if df {
                self.fail_unless(JumpCond::Set, IPV4_DF);
            }
            if no_df {
                self.fail_if(JumpCond::Set, IPV4_DF);
            }
            if mbz {
                self.fail_unless(JumpCond::Set, IPV4_MBZ);
            } else {
                self.fail_if(JumpCond::Set, IPV4_MBZ);
            }
            if spec.has_quirk(Quirk::NonZeroId) || no_df {
                let nonzero = spec.has_quirk(Quirk::NonZeroId);
                self.b.comment(if nonzero {
                    "quirk id+: IP ID not zero"
                } else {
                    "quirk id-: IP ID zero"
                });
                self.ld_ip(Size::Half, ip::V4_ID);
                if nonzero {
                    self.fail_if(JumpCond::Eq, 0);
                } else {
                    self.fail_unless(JumpCond::Eq, 0);
                }
            }
        }
        for &quirk in &spec.quirks {
            match quirk {
                Quirk::Ecn => {
                    self.b.comment("quirk ecn: an ECN bit set (ECT or CE)");
                    if v4 {
                        self.ld_ip(Size::Byte, ip::V4_TOS);
                        self.fail_unless(JumpCond::Set, 0x03);
                    } else {
                        self.ld_ip(Size::Byte, ip::V6_TCLASS_LOW);
                        self.fail_unless(JumpCond::Set, 0x30);
                    }
                }
                Quirk::Flow if !v4 => {
                    self.b.comment("quirk flow: flow label not zero");
                    self.ld_ip(Size::Word, ip::V6_FIRST_WORD);
                    self.fail_unless(JumpCond::Set, 0x000f_ffff);
                }
                Quirk::ZeroSeq => {
                    self.b.comment("quirk seq-: sequence number zero");
                    self.ld_tcp(Size::Word, tcp::SEQ);
                    self.fail_unless(JumpCond::Eq, 0);
                }
                Quirk::NonZeroAck | Quirk::ZeroAck => {
                    let plus = quirk == Quirk::NonZeroAck;
                    self.b.comment(if plus {
                        "quirk ack+: ACK number not zero, ACK flag clear"
                    } else {
                        "quirk ack-: ACK number zero, ACK flag set"
                    });
                    self.ld_tcp(Size::Byte, tcp::FLAGS);
                    if plus {
                        self.fail_if(JumpCond::Set, tcp::FLAG_ACK);
                    } else {
                        self.fail_unless(JumpCond::Set, tcp::FLAG_ACK);
                    }
                    self.ld_tcp(Size::Word, tcp::ACK);
                    if plus {
                        self.fail_if(JumpCond::Eq, 0);
                    } else {
                        self.fail_unless(JumpCond::Eq, 0);
                    }
                }
                Quirk::NonZeroUrg => {
                    self.b
                        .comment("quirk uptr+: urgent pointer not zero, URG flag clear");
                    self.ld_tcp(Size::Byte, tcp::FLAGS);
                    self.fail_if(JumpCond::Set, tcp::FLAG_URG);
                    self.ld_tcp(Size::Half, tcp::URGENT);
                    self.fail_if(JumpCond::Eq, 0);
                }
                Quirk::Urg | Quirk::Push => {
                    let (flag, name) = if quirk == Quirk::Urg {
                        (tcp::FLAG_URG, "urgf+: URG")
                    } else {
                        (tcp::FLAG_PSH, "pushf+: PSH")
                    };
                    self.b.comment(format!("quirk {name} flag set"));
                    self.ld_tcp(Size::Byte, tcp::FLAGS);
                    self.fail_unless(JumpCond::Set, flag);
                }
                Quirk::ZeroTs1 | Quirk::NonZeroTs2 => {
                    let at = self.option_offset(TcpOption::Timestamp);
                    if quirk == Quirk::ZeroTs1 {
                        self.b.comment("quirk ts1-: own timestamp zero");
                        self.ld_tcp(Size::Word, at + 2);
                        self.fail_unless(JumpCond::Eq, 0);
                    } else {
                        self.b.comment("quirk ts2+: peer timestamp not zero");
                        self.ld_tcp(Size::Word, at + 6);
                        self.fail_if(JumpCond::Eq, 0);
                    }
                }
                Quirk::ExcessiveScale => {
                    self.b.comment("quirk exws: window scale above 14");
                    let at = self.option_offset(TcpOption::WindowScale);
                    self.ld_tcp(Size::Byte, at + 2);
                    self.fail_unless(JumpCond::Gt, 14);
                }
                Quirk::Linux if v4 => {
                    self.b.comment(
                        "quirk linux: IP ID == (sequence number ^ own timestamp) & 0xffff",
                    );
                    let at = self.option_offset(TcpOption::Timestamp);
                    self.ld_tcp(Size::Word, tcp::SEQ);
                    self.b.insn(Insn::Store(0));
                    self.ld_tcp(Size::Word, at + 2);
                    self.b.insn(Insn::LoadXMem(0));
                    self.b.insn(Insn::Alu {
                        op: AluOp::Xor,
                        operand: Operand::X,
                    });
                    self.alu(AluOp::And, 0xffff);
                    self.b.insn(Insn::Store(0));
                    self.load_header_len();
                    self.ld_ip(Size::Half, ip::V4_ID);
                    self.fail_unless_a_equals_m0();
                }
                // Checked with the IP flags above, or with the layout, or not for this family.
                _ => {}
            }
        }
    }
}

/// Builds the program for `spec` (its version checked against `opts` by [`check_family`]).
pub fn build(spec: &P0fSpec, opts: &GenOptions, b: &mut Builder) {
    let (yes, no) = if opts.negate { (0, 65535) } else { (65535, 0) };
    let nomatch = b.new_label("nomatch");
    b.context("p0f");
    b.comment(format!("p0f signature {spec}"));
    b.insn(Insn::LoadAbs {
        size: Size::Byte,
        offset: opts.offset,
    });
    b.insn(Insn::Alu {
        op: AluOp::And,
        operand: Operand::K(0xf0),
    });
    let families: Vec<Family> = match spec.version {
        IpVersion::V4 => vec![Family::V4],
        IpVersion::V6 => vec![Family::V6],
        IpVersion::Any => vec![Family::V4, Family::V6],
    };
    let ipv6 = b.new_label("ipv6");
    match spec.version {
        IpVersion::V4 => b.jump_unless_eq(0x40, &nomatch),
        IpVersion::V6 => b.jump_unless_eq(0x60, &nomatch),
        IpVersion::Any => {
            b.comment("IP version 4 or 6");
            b.jump(
                JumpCond::Eq,
                Operand::K(0x60),
                Target::Label(ipv6.clone()),
                Target::Next,
            );
            b.jump_unless_eq(0x40, &nomatch);
        }
    }
    for family in families {
        if family == Family::V6 && spec.version == IpVersion::Any {
            b.label(&ipv6);
        }
        let mut emitter = Emitter {
            b: &mut *b,
            spec,
            offset: opts.offset,
            fail: nomatch.clone(),
            family,
        };
        emitter.emit(yes);
    }
    b.label(&nomatch);
    b.insn(Insn::RetK(no));
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
    fn bad_signatures_say_which_field() {
        for (text, message) in [
            ("4:64:0:*:*,*::", "7 fields, expected 8"),
            ("5:64:0:*:*,*:::0", "version '5'"),
            ("4:x:0:*:*,*:::0", "ittl 'x'"),
            ("4:250+10:0:*:*,*:::0", "ittl '250+10'"),
            ("4:64:3:*:*,*:::0", "olen '3'"),
            ("4:64:0:y:*,*:::0", "mss 'y'"),
            ("4:64:0:*:nope*2,*:::0", "wsize 'nope*2'"),
            ("4:64:0:*:%0,*:::0", "wsize '%0'"),
            (
                "4:64:0:*:*:::0",
                "wsize,scale '*': expected the window size and scale",
            ),
            ("4:64:0:*:*,x:::0", "scale 'x'"),
            ("4:64:0:*:*,*:mss,nope::0", "option 2 'nope'"),
            ("4:64:0:*:*,*:sack::0", "no fixed length"),
            ("4:64:0:*:*,*:eol+1,nop::0", "after eol"),
            ("4:64:0:*:*,*::quirk:0", "quirk 'quirk'"),
            ("4:64:0:*:*,*:::-", "pclass '-'"),
            ("4:64:0:1460:*,*:::0", "mss needs the 'mss' option"),
            ("4:64:0:*:mss*4,*:::0", "wsize mss*N needs the 'mss' option"),
            ("4:64:0:*:*,7:::0", "scale needs the 'ws' option"),
            ("4:64:0:*:*,*::ts1-:0", "'ts1-' needs the 'ts' option"),
            ("4:64:0:*:*,*:ws:exws,flow:0", "'flow' is for IPv6 only"),
            ("6:64:0:*:*,*::df:0", "'df' is for IPv4 only"),
            ("4:64:0:*:*,*:nop:opt+:0", "'opt+' needs padding"),
            ("4:64:0:*:*,*::id+,id-:0", "never hold together"),
            ("4:64:0:*:*,*:ts,ts,ts,ts,ts::0", "50 bytes"),
        ] {
            let err = text.parse::<P0fSpec>().unwrap_err().to_string();
            assert!(err.contains(message), "{text}: {err}");
        }
    }
}
