//! The program of a p0f signature: one pass over the IP and TCP headers per family, every
//! check failing to one "no match" label.
//!
//! Keeps the header offsets the program reads and the emission of each field's and quirk's
//! check. Must not refuse a signature: [`P0fSpec`]'s parser has checked it (an option a field
//! reads is in the layout, a quirk fits the version), and [`super::check_family`] its version
//! against the options; everything it is given, it builds.

use crate::asm::labels::Target;
use crate::gen::builder::Builder;
use crate::gen::GenOptions;
use crate::insn::{AluOp, Insn, JumpCond, Operand, Size};

use super::{IpVersion, P0fSpec, PayloadClass, Quirk, TcpOption, WindowSize};

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
        self.emit_window();
        if let Some(scale) = spec.scale.filter(|&s| s != 0) {
            self.b.comment(format!("scale {scale}"));
            let at = self.option_offset(TcpOption::WindowScale);
            self.ld_tcp(Size::Byte, at + 2);
            self.fail_unless(JumpCond::Eq, u32::from(scale));
        }
        self.emit_layout();
        self.emit_quirks();
        self.emit_payload();
        self.b.insn(Insn::RetK(verdict));
    }

    /// `wsize`: the window, exact, a multiple, or the MSS option's value times N.
    fn emit_window(&mut self) {
        let spec = self.spec;
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
    }

    /// `pclass`: the TCP payload's length from the IP length field and the headers' lengths.
    fn emit_payload(&mut self) {
        let spec = self.spec;
        let v4 = self.family == Family::V4;
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

    /// The quirks: the IPv4 flags and ID first, then each listed quirk in order.
    fn emit_quirks(&mut self) {
        if self.family == Family::V4 {
            self.emit_ipv4_flags();
        }
        for &quirk in &self.spec.quirks {
            self.emit_quirk(quirk);
        }
    }

    /// `df`, `id+`, `id-` and `0+`: the DF and must-be-zero bits, and the IP ID.
    fn emit_ipv4_flags(&mut self) {
        let spec = self.spec;
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

    /// One quirk that is not an IPv4 flag's, on this family.
    fn emit_quirk(&mut self, quirk: Quirk) {
        let v4 = self.family == Family::V4;
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
                self.b
                    .comment("quirk linux: IP ID == (sequence number ^ own timestamp) & 0xffff");
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
            // Checked with the IP flags, or with the layout, or not for this family.
            _ => {}
        }
    }
}

/// Builds the program for `spec` (its version checked against `opts` by `check_family`).
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
