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
    DnsSpec, DnsValidateSpec, Generator, SuffixSpec, TcpdumpSpec, DEFAULT_EXT_HEADERS,
    GENERATOR_NAMES,
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

The name is compared on the wire (length-prefixed labels) in the first question only.
Letters match exactly unless -i is given; bpfgen warns (unless -q) about a pattern with
upper-case letters without -i, since resolvers randomize the case of names (0x20).
A wildcard label is 1 to 63 characters: it never matches the root label ending the name.
IPv4 headers of any length are handled. With -6, up to 2 IPv6 extension headers
(hop-by-hop, routing, destination options, a first fragment) before UDP are skipped
(--ext-headers 0..3; each costs 16 instructions), a query behind more is not matched,
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

impl GeneratorArgs {
    /// The typed generator, or a message saying which argument is wrong.
    pub fn into_generator(self) -> Result<Generator, String> {
        Ok(match self {
            GeneratorArgs::Dns(args) => Generator::Dns(DnsSpec {
                patterns: args.patterns,
                ignore_case: args.ignorecase,
                ext_headers: args.ext_headers,
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
        ];
        for generator in cases {
            let args = generator.args();
            let parsed = parse_generator(generator.name(), &args)
                .unwrap_or_else(|e| panic!("{generator:?} -> {args:?}: {e:?}"));
            assert_eq!(parsed, generator, "args {args:?}");
        }
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
