//! The generators' command lines: clap's view of [`crate::gen::Generator`].
//!
//! `bpfgen` and `iptables-bpf` take a generator as a subcommand: `bpfgen [OPTIONS] dns --
//! -i '*.example.net'`. As in the original bpftools, one `--` right after the generator's name
//! separates the tool's options from the generator's and is dropped, so the generator's own
//! options may follow it (`dns -- -i ...`); a pattern that starts with `-` needs a second `--`.
//! [`normalize_argv`] does that, and [`GeneratorArgs::into_generator`] turns what clap parsed
//! into the library's typed value.

use std::ffi::OsString;

use clap::{Args, Parser, Subcommand};

use crate::gen::{
    DnsSpec, DnsValidateSpec, Generator, P0fSpec, SuffixSpec, TcpdumpSpec, DEFAULT_EXT_HEADERS,
    EXT_HEADERS_UNWALKED_PASS, GENERATOR_NAMES,
};

const DNS_HELP: &str = "\
Patterns:
  example.com         exactly example.com (leading/trailing dots ignored)
  *.example.com       any one label, then example.com
  *{3-10}.example.com one label of 3 to 10 characters, then example.com
  *{4-255}.example.com one label of 4 or more characters (a maximum above 63 means 63,
                      the longest label; *{0-n} is *{1-n}: a label is never empty)
  ex?mple.com         ? is any one character
  example.**          example, then any suffix: example.com, example.co.uk
  foo*.example.com    * inside a label is a literal '*'
  ex%2Eample.com      %XX is the byte XX (here one label 'ex.ample')

One name per pattern, each an argument of its own: labels are letters, digits, '-' and
'_' with the wildcards above; anything else (a space, a comma, quotes, a URL) is refused:
write a byte that really is in a name as %XX.

The name is compared on the wire (length-prefixed labels) in the first question only.
Letters match exactly unless -i is given; bpfgen warns (unless -q) about a pattern with
upper-case letters without -i, since resolvers randomize the case of names (0x20).
A wildcard label is 1 to 63 characters: it never matches the root label ending the name.
IPv4 headers of any length are handled. With -6, up to 2 IPv6 extension headers
(hop-by-hop, routing, destination options, a first fragment) before UDP are skipped
(--ext-headers 0..3; each costs 16 instructions); a query behind more is matched (5
instructions; --unwalked-pass: not matched, so extension headers could hide a flood),
a later fragment never matches, and only UDP matches. On IPv4 the program does not read
the protocol or fragment fields (iptables-bpf's rules say -p udp --dport 53).

Examples:
  bpfgen dns -- '*.www.example.uk'
  bpfgen -o 14 dns -- -i www.example.net '*.example.org'
  bpfgen -6 -s dns -- 'example.**'";

const DNS_VALIDATE_HELP: &str = "\
Matches a UDP DNS request when any of these holds:
  the UDP payload is shorter than 17 bytes (12 of header and the shortest question:
    the root name, type and class);
  a flag other than the allowed ones is set (allowed: CD, AD, Z, and RD and RA unless
    --strict; QR, AA, TC, the opcode and the rcode must be 0);
  qdcount != 1, ancount != 0, nscount != 0, or arcount > 1.

Examples:
  bpfgen dns_validate
  bpfgen -o 14 dns_validate -- --strict";

const SUFFIX_HELP: &str = "\
The bytes are given in hex, in one or more arguments (spaces allowed).

Examples:
  bpfgen suffix -- 0a0b0c
  bpfgen suffix -- 00 29 10 00 00     EDNS OPT record with a 4096-byte buffer";

const TCPDUMP_HELP: &str = "\
The link type follows --offset and -6: 0 = raw IPv4 (IPv6 with -6), 14 = Ethernet,
16 = Linux cooked (SLL), 20 = Linux cooked v2 (SLL2).

Examples:
  bpfgen tcpdump -- 'udp and dst port 53'
  bpfgen -o 14 tcpdump -- 'ip6 and udp port 53'";

const P0F_HELP: &str = "\
A p0f v3 TCP signature (p0f.fp's 'sig =' lines, p0f's raw_sig) has 8 fields:
  ver:ittl:olen:mss:wsize,scale:olayout:quirks:pclass
  ver      4, 6, or * (either: the program reads the version and checks each family;
           iptables-bpf builds * for its script's family only); 4 and 6 must agree with -6
  ittl     initial TTL N: N-35 < TTL <= N (TTL <= N when N <= 32); N+D (p0f's observed
           TTL and distance) is N+D; N- (random TTLs) does not check the TTL
  olen     IPv4 options length in bytes (0, 4, ... 40) or *; not read on IPv6
  mss      the MSS option's value; * or 0 does not check
  wsize    window: N, mss*N (the packet's MSS times N), mtu*N (1500 times N), %N (a
           multiple of N) or *
  scale    the window scale option's value; * or 0 does not check
  olayout  option kinds in order, at their usual places: eol+N (N bytes of zero padding
           follow; last), nop, mss, ws, sok, ts; the TCP data offset must hold them
  quirks   each listed one must hold: df, id+ (DF, IP ID not 0), id- (no DF, IP ID 0),
           0+ (must-be-zero bit set; without it, clear), ecn, flow (IPv6 flow label),
           seq- (seq 0), ack+ (ack number, no ACK flag), ack- (ACK flag, ack number 0),
           uptr+ (urgent pointer, no URG flag), urgf+, pushf+, ts1- (own timestamp 0),
           ts2+ (peer timestamp not 0), opt+ (non-zero padding after eol), exws (scale
           above 14), bad (malformed options: data offset not checked), linux (IPv4 ID =
           (seq ^ own timestamp) & 0xffff)
  pclass   TCP payload: 0 (none), + (some) or * (either)
Only TCP matches (IPv4: the first fragment; IPv6: TCP right after the fixed header). The SYN
and ACK flags are not checked: a signature from p0f.fp's [tcp:request] describes SYNs, from
[tcp:response] SYN+ACKs.

Differences from the original bpftools: version * is accepted; olen is in bytes as p0f
writes it (the original read 32-bit words); every listed one of df, id+, id- is checked (the
original: the first only); ecn is either ECN bit, on IPv6 too; flow is the whole 20-bit
label; eol+N checks exactly N bytes; IPv6 packets must be TCP; N+D TTLs are read; quirks
that never hold together, or that need an option missing from olayout, are refused.

Examples:
  bpfgen p0f -- '4:64:0:*:mss*20,10:mss,sok,ts,nop,ws:df,id+:0'       Linux 3.x SYN
  bpfgen -6 p0f -- '6:64:0:*:mss*20,7:mss,sok,ts,nop,ws::0'
  bpfgen -o 14 p0f -- '*:128:0:*:8192,8:mss,nop,ws,nop,nop,sok:df,id+:0'
  bpfgen -s p0f -- '4:255-:0:*:*,*:::*'                              any TCP over IPv4";

/// A generator and its arguments, as parsed from a command line.
#[derive(Debug, Clone, Subcommand)]
pub enum GeneratorArgs {
    /// Match DNS queries whose first question name matches any of the patterns
    #[command(after_help = DNS_HELP)]
    Dns(DnsArgs),
    /// Match malformed DNS requests
    #[command(name = "dns_validate", after_help = DNS_VALIDATE_HELP)]
    DnsValidate(DnsValidateArgs),
    /// Match packets that end with the given bytes
    #[command(after_help = SUFFIX_HELP)]
    Suffix(SuffixArgs),
    /// Compile a tcpdump filter expression with the system's tcpdump
    #[command(after_help = TCPDUMP_HELP)]
    Tcpdump(TcpdumpArgs),
    /// Match TCP packets that fit a p0f v3 signature
    #[command(after_help = P0F_HELP)]
    P0f(P0fArgs),
}

/// Arguments of the `dns` generator.
#[derive(Debug, Clone, Args)]
pub struct DnsArgs {
    /// Match letters in either case.
    #[arg(short = 'i', long)]
    pub ignorecase: bool,
    /// IPv6 only: how many extension headers before UDP the program skips (0 to 3).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_EXT_HEADERS, value_parser = clap::value_parser!(u8).range(0..=3))]
    pub ext_headers: u8,
    /// IPv6 only: a query behind more extension headers than --ext-headers is not matched
    /// (by default it is matched, so that extension headers cannot hide a flood).
    #[arg(long)]
    pub unwalked_pass: bool,
    /// Name patterns.
    #[arg(required = true, value_name = "PATTERN")]
    pub patterns: Vec<String>,
}

/// Arguments of the `dns_validate` generator.
#[derive(Debug, Clone, Args)]
pub struct DnsValidateArgs {
    /// Also refuse the RD and RA flags (for authoritative-only servers): only CD, AD and Z.
    #[arg(long)]
    pub strict: bool,
    /// IPv6 only: how many extension headers before UDP the program skips (0 to 3).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_EXT_HEADERS, value_parser = clap::value_parser!(u8).range(0..=3))]
    pub ext_headers: u8,
}

/// Arguments of the `suffix` generator.
#[derive(Debug, Clone, Args)]
pub struct SuffixArgs {
    /// Hex bytes.
    #[arg(required = true, value_name = "HEX")]
    pub hex: Vec<String>,
}

/// Arguments of the `tcpdump` generator.
#[derive(Debug, Clone, Args)]
pub struct TcpdumpArgs {
    /// The expression (several arguments are joined with spaces).
    #[arg(required = true, value_name = "EXPR", allow_hyphen_values = true)]
    pub expr: Vec<String>,
}

/// Arguments of the `p0f` generator.
#[derive(Debug, Clone, Args)]
pub struct P0fArgs {
    /// The p0f v3 TCP signature: ver:ittl:olen:mss:wsize,scale:olayout:quirks:pclass.
    #[arg(value_name = "SIGNATURE")]
    pub signature: String,
}

impl GeneratorArgs {
    /// The typed generator, or a message saying which argument is wrong.
    pub fn into_generator(self) -> Result<Generator, String> {
        Ok(match self {
            GeneratorArgs::Dns(args) => Generator::Dns(DnsSpec {
                patterns: args.patterns,
                ignore_case: args.ignorecase,
                ext_headers: args.ext_headers
                    | if args.unwalked_pass {
                        EXT_HEADERS_UNWALKED_PASS
                    } else {
                        0
                    },
            }),
            GeneratorArgs::DnsValidate(args) => Generator::DnsValidate(DnsValidateSpec {
                strict: args.strict,
                ext_headers: args.ext_headers,
            }),
            GeneratorArgs::Suffix(args) => {
                let text: String = args
                    .hex
                    .concat()
                    .chars()
                    .filter(|c| !c.is_whitespace())
                    .collect();
                let bytes = crate::pcap::hex::decode(&text)
                    .map_err(|e| format!("suffix: bad hex '{}': {e}", quote_short(&text)))?;
                if bytes.is_empty() {
                    return Err("suffix: no bytes given: expected hex digits".into());
                }
                Generator::Suffix(SuffixSpec { bytes })
            }
            GeneratorArgs::Tcpdump(args) => Generator::Tcpdump(TcpdumpSpec {
                expr: args.expr.join(" "),
            }),
            GeneratorArgs::P0f(args) => Generator::P0f(
                args.signature
                    .parse::<P0fSpec>()
                    .map_err(|e| format!("p0f: {e}"))?,
            ),
        })
    }
}

/// At most 40 characters of `text`, for quoting user input in messages.
fn quote_short(text: &str) -> String {
    if text.chars().count() <= 40 {
        text.to_string()
    } else {
        format!("{}...", text.chars().take(40).collect::<String>())
    }
}

/// Drops the one `--` that directly follows the generator's name (the first argument that names
/// a generator), so that `bpfgen dns -- -i NAME` gives `-i` to the generator, as the original
/// bpftools did.
pub fn normalize_argv(argv: Vec<OsString>) -> Vec<OsString> {
    let position = argv
        .iter()
        .skip(1)
        .position(|a| GENERATOR_NAMES.iter().any(|name| a == name))
        .map(|p| p + 1);
    match position {
        Some(p) if argv.get(p + 1).is_some_and(|a| a == "--") => {
            let mut argv = argv;
            argv.remove(p + 1);
            argv
        }
        _ => argv,
    }
}

#[derive(Debug, Parser)]
#[command(name = "generator", no_binary_name = true)]
struct Standalone {
    #[command(subcommand)]
    generator: GeneratorArgs,
}

/// Why a generator's arguments could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GenArgsError {
    /// Help was asked for; the text is the help.
    Help(String),
    /// The arguments are wrong; one line saying why.
    Usage(String),
}

/// Parses a generator's name and arguments (what follows the name on `bpfgen`'s line, with or
/// without the leading `--`) into the typed value.
pub fn parse_generator(name: &str, args: &[String]) -> Result<Generator, GenArgsError> {
    let argv: Vec<OsString> = std::iter::once(OsString::from("generator"))
        .chain(std::iter::once(OsString::from(name)))
        .chain(args.iter().map(OsString::from))
        .collect();
    let argv = normalize_argv(argv);
    match Standalone::try_parse_from(&argv[1..]) {
        Ok(parsed) => parsed
            .generator
            .into_generator()
            .map_err(GenArgsError::Usage),
        Err(err) if !err.use_stderr() => Err(GenArgsError::Help(err.to_string())),
        Err(err) => Err(GenArgsError::Usage(crate::cli::clap_error_line(
            &err.render().to_string(),
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn args_parse_back_to_the_same_generator() {
        let cases = [
            Generator::Dns(DnsSpec {
                patterns: strings(&["*.example.net", "-x.example.org"]),
                ignore_case: true,
                ext_headers: 1,
            }),
            Generator::Dns(DnsSpec {
                patterns: strings(&["www.example.net"]),
                ignore_case: false,
                ext_headers: DEFAULT_EXT_HEADERS,
            }),
            Generator::Dns(DnsSpec {
                patterns: strings(&["www.example.net"]),
                ignore_case: false,
                ext_headers: 3 | EXT_HEADERS_UNWALKED_PASS,
            }),
            Generator::DnsValidate(DnsValidateSpec {
                strict: true,
                ext_headers: 0,
            }),
            Generator::DnsValidate(DnsValidateSpec {
                strict: false,
                ext_headers: DEFAULT_EXT_HEADERS,
            }),
            Generator::Suffix(SuffixSpec {
                bytes: vec![0, 0x29, 0x10],
            }),
            Generator::Tcpdump(TcpdumpSpec {
                expr: "udp and dst port 53".into(),
            }),
            Generator::P0f(
                "4:64:0:*:mss*20,10:mss,sok,ts,nop,ws:df,id+:0"
                    .parse()
                    .unwrap(),
            ),
            Generator::P0f(
                "*:54+10:*:1460:%8192,*:mss,nop,eol+3:opt+,ecn:+"
                    .parse()
                    .unwrap(),
            ),
            Generator::P0f("6:255-:0:0:mtu*2,0:::*".parse().unwrap()),
        ];
        for generator in cases {
            let args = generator.args();
            let parsed = parse_generator(generator.name(), &args)
                .unwrap_or_else(|e| panic!("{generator:?} -> {args:?}: {e:?}"));
            assert_eq!(parsed, generator, "args {args:?}");
        }
    }

    #[test]
    fn transports_follow_what_the_programs_read() {
        let p0f = parse_generator("p0f", &strings(&["*:64:0:*:*,*:::0"])).unwrap();
        assert_eq!(p0f.transport(), Some("tcp"));
        let dns = parse_generator("dns", &strings(&["a.example"])).unwrap();
        assert_eq!(dns.transport(), Some("udp"));
        let suffix = parse_generator("suffix", &strings(&["00"])).unwrap();
        assert_eq!(suffix.transport(), None);
    }

    #[test]
    fn one_dash_dash_after_the_name_is_dropped() {
        let parsed = parse_generator("dns", &strings(&["--", "-i", "a.example"])).unwrap();
        assert_eq!(
            parsed,
            Generator::Dns(DnsSpec {
                patterns: strings(&["a.example"]),
                ignore_case: true,
                ext_headers: DEFAULT_EXT_HEADERS,
            })
        );
        let parsed = parse_generator("dns", &strings(&["--", "--", "-i"])).unwrap();
        assert_eq!(
            parsed,
            Generator::Dns(DnsSpec {
                patterns: strings(&["-i"]),
                ignore_case: false,
                ext_headers: DEFAULT_EXT_HEADERS,
            })
        );
    }

    #[test]
    fn errors_and_help_are_told_apart() {
        assert!(matches!(
            parse_generator("dns", &[]),
            Err(GenArgsError::Usage(m)) if m.contains("PATTERN")
        ));
        assert!(matches!(
            parse_generator("dns", &strings(&["--help"])),
            Err(GenArgsError::Help(h)) if h.contains("Patterns:")
        ));
        assert!(matches!(
            parse_generator("nosuch", &[]),
            Err(GenArgsError::Usage(m)) if m.contains("nosuch")
        ));
        assert!(matches!(
            parse_generator("suffix", &strings(&["0g"])),
            Err(GenArgsError::Usage(m)) if m.contains("bad hex")
        ));
    }
}
