//! Program builder and generators (dns, dns_validate, suffix, tcpdump).
//!
//! [`generate`] is the one entry point, used by `bpfgen` and by `iptables-bpf`: it takes the
//! generator's name, its own arguments (parsed by the generator, as the original bpftools did:
//! `bpfgen -o 14 dns -- -i www.example.net`) and the common options.
//!
//! Every generator returns 65535 for "match" (socket filters keep that many bytes; xt_bpf only
//! needs non-zero) and 0 otherwise; `--negate` swaps them.

pub mod builder;
pub mod dns;
pub mod iptables;
pub mod tcpdump;

use clap::Parser;
use thiserror::Error;

pub use builder::{Builder, Generated};

use crate::asm::labels::LabelError;
use crate::insn::{AluOp, Insn, Operand, Size, BPF_MAXINSNS};

/// Options common to every generator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GenOptions {
    /// IPv6 instead of IPv4.
    pub inet6: bool,
    /// Match what the program would not match.
    pub negate: bool,
    /// Bytes before the IP header (0 for xt_bpf, 14 for Ethernet pcaps, ...).
    pub offset: u32,
}

/// Why a program could not be generated.
#[derive(Debug, Error)]
pub enum GenError {
    /// The generator's arguments are wrong (or help was asked for: the text is the help).
    #[error("{0}")]
    Usage(String),
    /// Help was asked for; the text is the help.
    #[error("{0}")]
    Help(String),
    /// No generator of that name.
    #[error("unknown generator '{0}': expected dns, dns_validate, suffix or tcpdump")]
    UnknownGenerator(String),
    /// A bad DNS pattern.
    #[error(transparent)]
    Pattern(#[from] dns::PatternError),
    /// A bad suffix.
    #[error("suffix: {0}")]
    Suffix(String),
    /// The program does not fit (jump range or length).
    #[error("{0}")]
    Program(#[from] LabelError<String>),
    /// tcpdump failed.
    #[error(transparent)]
    Tcpdump(#[from] tcpdump::TcpdumpError),
}

fn parse_args<T: Parser>(name: &str, args: &[String]) -> Result<T, GenError> {
    let argv = std::iter::once(name.to_string()).chain(args.iter().cloned());
    T::try_parse_from(argv).map_err(|err| match err.kind() {
        clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
            GenError::Help(err.to_string())
        }
        _ => GenError::Usage(format!("{name}: {}", one_line(&err.render().to_string()))),
    })
}

/// A generator's help (the text of [`GenError::Help`]) as `tool` shows it: the usage line
/// names the tool and its options before the generator, as typed on its command line.
pub fn help_for_tool(text: &str, tool: &str, generator: &str) -> String {
    text.replacen(
        &format!("Usage: {generator} "),
        &format!("Usage: {tool} [OPTIONS] {generator} [--] "),
        1,
    )
}

/// A rendered clap error as one line: its text up to the usage part, lines joined (so that,
/// e.g., the missing arguments named on the line after "not provided:" are kept).
pub(crate) fn one_line(rendered: &str) -> String {
    rendered
        .lines()
        .take_while(|line| !line.starts_with("Usage:") && !line.starts_with("For more"))
        .map(|line| line.trim().trim_start_matches("error: "))
        .filter(|line| !line.is_empty())
        .fold(String::new(), |mut out, line| {
            if !out.is_empty() {
                out.push_str(if out.ends_with(':') { " " } else { "; " });
            }
            out.push_str(line);
            out
        })
}

/// Arguments of the `dns` generator.
#[derive(Debug, Parser)]
#[command(
    name = "dns",
    no_binary_name = false,
    about = "Match DNS queries whose first question name matches any of the patterns",
    after_help = "\
Patterns:
  example.com         exactly example.com (leading/trailing dots ignored)
  *.example.com       any one label, then example.com
  *{3-10}.example.com one label of 3 to 10 characters, then example.com
  ex?mple.com         ? is any one character
  example.**          example, then any suffix: example.com, example.co.uk
  foo*.example.com    * inside a label is a literal '*'
  ex%2Eample.com      %XX is the byte XX (here one label 'ex.ample')

The name is compared on the wire (length-prefixed labels) in the first question only.
A wildcard label is 1 to 63 characters: it never matches the root label ending the name.
IPv4 headers of any length are handled. With -6, up to 2 IPv6 extension headers
(hop-by-hop, routing, destination options, a first fragment) before UDP are skipped
(--ext-headers 0..3; each costs 16 instructions), a query behind more is not matched,
a later fragment never matches, and only UDP matches. On IPv4 the program does not read
the protocol or fragment fields (iptables-bpf's rules say -p udp --dport 53).

Examples:
  bpfgen dns -- '*.www.example.uk'
  bpfgen -o 14 dns -- -i www.example.net '*.example.org'
  bpfgen -6 -s dns -- 'example.**'"
)]
pub struct DnsArgs {
    /// Match letters in either case.
    #[arg(short = 'i', long)]
    pub ignorecase: bool,
    /// IPv6 only: how many extension headers before UDP the program skips (0 to 3).
    #[arg(long, value_name = "N", default_value_t = dns::IPV6_EXTENSION_HEADERS as u8, value_parser = clap::value_parser!(u8).range(0..=3))]
    pub ext_headers: u8,
    /// Name patterns.
    #[arg(required = true, value_name = "PATTERN")]
    pub patterns: Vec<String>,
}

/// Arguments of the `dns_validate` generator.
#[derive(Debug, Parser)]
#[command(
    name = "dns_validate",
    about = "Match malformed DNS requests",
    after_help = "\
Matches a UDP DNS request when any of these holds:
  the UDP payload is shorter than 17 bytes (12 of header and the shortest question:
    the root name, type and class);
  a flag other than the allowed ones is set (allowed: CD, AD, Z, and RD and RA unless
    --strict; QR, AA, TC, the opcode and the rcode must be 0);
  qdcount != 1, ancount != 0, nscount != 0, or arcount > 1.

Examples:
  bpfgen dns_validate
  bpfgen -o 14 dns_validate -- --strict"
)]
pub struct DnsValidateArgs {
    /// Also refuse the RD and RA flags (for authoritative-only servers): only CD, AD and Z.
    #[arg(long)]
    pub strict: bool,
    /// IPv6 only: how many extension headers before UDP the program skips (0 to 3).
    #[arg(long, value_name = "N", default_value_t = dns::IPV6_EXTENSION_HEADERS as u8, value_parser = clap::value_parser!(u8).range(0..=3))]
    pub ext_headers: u8,
}

/// Arguments of the `suffix` generator.
#[derive(Debug, Parser)]
#[command(
    name = "suffix",
    about = "Match packets that end with the given bytes",
    after_help = "\
The bytes are given in hex, in one or more arguments (spaces allowed).

Examples:
  bpfgen suffix -- 0a0b0c
  bpfgen suffix -- 00 29 10 00 00     EDNS OPT record with a 4096-byte buffer"
)]
pub struct SuffixArgs {
    /// Hex bytes.
    #[arg(required = true, value_name = "HEX")]
    pub hex: Vec<String>,
}

/// Arguments of the `tcpdump` generator.
#[derive(Debug, Parser)]
#[command(
    name = "tcpdump",
    about = "Compile a tcpdump filter expression with the system's tcpdump",
    after_help = "\
The link type follows --offset and -6: 0 = raw IPv4 (IPv6 with -6), 14 = Ethernet,
16 = Linux cooked (SLL), 20 = Linux cooked v2 (SLL2).

Examples:
  bpfgen tcpdump -- 'udp and dst port 53'
  bpfgen -o 14 tcpdump -- 'ip6 and udp port 53'"
)]
pub struct TcpdumpArgs {
    /// The expression (several arguments are joined with spaces).
    #[arg(required = true, value_name = "EXPR", allow_hyphen_values = true)]
    pub expr: Vec<String>,
}

/// Generates a program with generator `name` and its arguments.
pub fn generate(name: &str, args: &[String], opts: &GenOptions) -> Result<Generated, GenError> {
    let mut b = Builder::new();
    match name {
        "dns" => {
            let args: DnsArgs = parse_args(name, args)?;
            let patterns = args
                .patterns
                .iter()
                .map(|p| dns::parse_pattern(p, args.ignorecase))
                .collect::<Result<Vec<_>, _>>()?;
            dns::build(&patterns, opts, usize::from(args.ext_headers), &mut b);
        }
        "dns_validate" => {
            let args: DnsValidateArgs = parse_args(name, args)?;
            build_dns_validate(args.strict, opts, usize::from(args.ext_headers), &mut b);
        }
        "suffix" => {
            let args: SuffixArgs = parse_args(name, args)?;
            let text: String = args
                .hex
                .concat()
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect();
            let bytes = hex::decode(&text)
                .map_err(|e| GenError::Suffix(format!("bad hex '{text}': {e}")))?;
            if bytes.is_empty() {
                return Err(GenError::Suffix(
                    "no bytes given: expected hex digits".into(),
                ));
            }
            build_suffix(&bytes, opts, &mut b);
        }
        "tcpdump" => {
            let args: TcpdumpArgs = parse_args(name, args)?;
            let linktype = tcpdump::linktype_for(opts.offset, opts.inet6)?;
            let mut insns = tcpdump::compile(&args.expr, linktype)?;
            if opts.negate {
                insns = tcpdump::negate(&insns)?;
            }
            let assembly = crate::asm::disassemble(&insns);
            return Ok(Generated { insns, assembly });
        }
        other => return Err(GenError::UnknownGenerator(other.to_string())),
    }
    Ok(b.finish(BPF_MAXINSNS)?)
}

fn verdicts(opts: &GenOptions) -> (u32, u32) {
    if opts.negate {
        (0, 65535)
    } else {
        (65535, 0)
    }
}

fn build_dns_validate(strict: bool, opts: &GenOptions, ext_headers: usize, b: &mut Builder) {
    let (malformed, fine) = verdicts(opts);
    let bad = b.new_label("malformed");
    let fail = b.new_label("fragment");
    b.context("dns_validate");
    // UDP fields are read at [x + udp + field], DNS fields at [x + udp + 8 + field].
    let udp = dns::emit_udp_offset(b, opts, ext_headers, 0, &fail);
    let load = |b: &mut Builder, size, offset: u32| {
        b.insn(Insn::LoadInd {
            size,
            offset: udp + offset,
        })
    };
    let unless = |b: &mut Builder, cond, k, jump_if_true: bool| {
        use crate::asm::labels::Target;
        let label = Target::Label(bad.clone());
        if jump_if_true {
            b.jump(cond, Operand::K(k), label, Target::Next);
        } else {
            b.jump(cond, Operand::K(k), Target::Next, label);
        }
    };
    use crate::insn::JumpCond::{Eq, Ge, Gt};
    // The shortest question is the root name (1 byte), type and class: 5 bytes.
    b.comment("UDP length: 8 + 12 of header + at least 5 of question");
    load(b, Size::Half, 4);
    unless(b, Ge, 25, false);
    // Allowed: CD 0x0010, AD 0x0020, Z 0x0040 and, unless strict, RA 0x0080 and RD 0x0100.
    // (The original documented this set but its mask, 0xfc8f, let TC through and refused RA.)
    let mask = if strict { 0xff8f } else { 0xfe0f };
    b.comment(if strict {
        "flags: only Z, AD and CD may be set (QR, opcode, AA, TC, RD, RA, rcode must be 0)"
    } else {
        "flags: only RD, RA, Z, AD and CD may be set (QR, opcode, AA, TC, rcode must be 0)"
    });
    load(b, Size::Half, 8 + 2);
    b.insn(Insn::Alu {
        op: AluOp::And,
        operand: Operand::K(mask),
    });
    unless(b, Eq, 0, false);
    b.comment("qdcount == 1");
    load(b, Size::Half, 8 + 4);
    unless(b, Eq, 1, false);
    b.comment("ancount == 0 and nscount == 0");
    load(b, Size::Word, 8 + 6);
    unless(b, Eq, 0, false);
    b.comment("arcount <= 1");
    load(b, Size::Half, 8 + 10);
    unless(b, Gt, 1, true);
    b.label(&fail);
    b.insn(Insn::RetK(fine));
    b.label(&bad);
    b.insn(Insn::RetK(malformed));
}

fn build_suffix(bytes: &[u8], opts: &GenOptions, b: &mut Builder) {
    let (yes, no) = verdicts(opts);
    let nomatch = b.new_label("nomatch");
    b.context("suffix");
    b.comment(format!("x = packet length - {}", bytes.len()));
    b.insn(Insn::LoadLen);
    b.insn(Insn::Alu {
        op: AluOp::Sub,
        operand: Operand::K(bytes.len() as u32),
    });
    b.insn(Insn::Tax);
    b.comment(format!("match {}", hex::encode(bytes)));
    let masked: Vec<dns::MaskedByte> = bytes
        .iter()
        .map(|&value| dns::MaskedByte { value, mask: 0 })
        .collect();
    dns::compare_bytes(b, &masked, 0, &nomatch);
    b.insn(Insn::RetK(yes));
    b.label(&nomatch);
    b.insn(Insn::RetK(no));
}
