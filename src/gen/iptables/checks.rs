//! Input checks of the iptables generator: what may reach a script and in which form.
//!
//! Keeps every refusal of a value given by the user (comment, protected addresses, chain
//! name, generator arguments that read as addresses) and the escaping of text for `#`
//! comment lines. Must not build programs or names: it only says yes, or which
//! [`ScriptError`] and why.

use std::fmt::Write;
use std::net::IpAddr;

use super::{ScriptError, Spec, COMMENT_MAX};

/// Target and chain names a user chain may not take: iptables refuses names that clash with a
/// built-in chain or a target.
const RESERVED_CHAIN_NAMES: &[&str] = &[
    "INPUT",
    "OUTPUT",
    "FORWARD",
    "PREROUTING",
    "POSTROUTING",
    "ACCEPT",
    "DROP",
    "RETURN",
    "QUEUE",
    "REJECT",
    "LOG",
    "NFLOG",
    "ULOG",
    "MARK",
    "CONNMARK",
    "CT",
    "NOTRACK",
    "TRACE",
    "DNAT",
    "SNAT",
    "MASQUERADE",
    "REDIRECT",
    "NETMAP",
    "NFQUEUE",
    "TCPMSS",
    "TOS",
    "TTL",
    "HL",
    "DSCP",
    "ECN",
    "CLASSIFY",
    "CHECKSUM",
    "AUDIT",
    "SET",
    "TEE",
    "LED",
    "IDLETIMER",
    "SECMARK",
    "CONNSECMARK",
    "SYNPROXY",
    "TPROXY",
    "HMARK",
    "RATEEST",
    "CLUSTERIP",
    "TCPOPTSTRIP",
    "ERROR",
    "BPF",
];

/// Escapes text for a `#` comment line: printable ASCII kept, everything else `\xNN`.
pub(super) fn comment_safe(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if (0x20..0x7f).contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// Refuses a comment that could be taken for an ownership tag, is too long, or holds a
/// character outside the safe set.
pub(super) fn check_comment(comment: &str) -> Result<(), ScriptError> {
    if comment.contains("bpftools=") {
        return Err(ScriptError::CommentHasTag);
    }
    if comment.len() > COMMENT_MAX {
        return Err(ScriptError::CommentTooLong {
            length: comment.len(),
        });
    }
    if let Some(character) = comment
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || " -_.:,/*@=+#%[]()".contains(*c)))
    {
        return Err(ScriptError::CommentCharacter { character });
    }
    Ok(())
}

/// Parses an address or network (`192.0.2.1`, `2001:db8::/32`) of the right family and
/// writes it as ipset lists it (a host without its prefix, a network at its first address),
/// so the script can compare it with the set's members.
pub fn check_address(text: &str, inet6: bool) -> Result<String, ScriptError> {
    let (addr, prefix) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (text, None),
    };
    let ip: IpAddr = addr.parse().map_err(|_| ScriptError::BadAddress {
        address: text.to_string(),
        octal: has_octal_octet(addr),
    })?;
    if ip.is_ipv6() != inet6 {
        return Err(ScriptError::WrongFamily {
            address: text.to_string(),
            address_inet6: ip.is_ipv6(),
            inet6,
        });
    }
    let max: u8 = if inet6 { 128 } else { 32 };
    let bits = match prefix {
        None => max,
        Some(p) => p
            .parse()
            .ok()
            .filter(|b| *b <= max)
            .ok_or_else(|| ScriptError::BadPrefix {
                address: text.to_string(),
                max,
            })?,
    };
    if bits == 0 {
        return Err(ScriptError::ZeroPrefix {
            address: text.to_string(),
            inet6,
        });
    }
    let network = match ip {
        IpAddr::V4(v4) => {
            let mask = u32::MAX << (32 - u32::from(bits));
            IpAddr::from((u32::from(v4) & mask).to_be_bytes())
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX << (128 - u32::from(bits));
            IpAddr::from((u128::from(v6) & mask).to_be_bytes())
        }
    };
    let network = ipset_text(network);
    if bits == max {
        Ok(network)
    } else {
        Ok(format!("{network}/{bits}"))
    }
}

/// True for a dotted quad with an octet written with a leading zero, which ipset would read
/// as octal.
fn has_octal_octet(addr: &str) -> bool {
    addr.split('.').count() == 4
        && addr
            .split('.')
            .any(|o| o.len() > 1 && o.starts_with('0') && o.bytes().all(|b| b.is_ascii_digit()))
}

/// An address as ipset (glibc's `inet_ntop`) writes it: Rust's form, except that an
/// IPv4-compatible IPv6 address (`::a.b.c.d`, the first 96 bits zero, the next 16 not) keeps
/// its dotted form.
fn ipset_text(ip: IpAddr) -> String {
    if let IpAddr::V6(v6) = ip {
        let segments = v6.segments();
        if segments[..6].iter().all(|s| *s == 0) && segments[6] != 0 {
            let [.., a, b, c, d] = v6.octets();
            return format!("::{a}.{b}.{c}.{d}");
        }
    }
    ip.to_string()
}

/// True when a generator argument reads as an address or network: protected addresses are
/// options of iptables-bpf (`-i`), given before the generator.
pub fn looks_like_address(arg: &str) -> bool {
    let addr = arg.split_once('/').map_or(arg, |(a, _)| a);
    addr.parse::<IpAddr>().is_ok()
}

/// Refuses generator arguments that read as addresses: `iptables-bpf dns -- '*.x' -i
/// 192.0.2.53` would otherwise make 192.0.2.53 a DNS pattern and leave the set empty.
fn check_patterns_are_not_addresses(patterns: &[String]) -> Result<(), ScriptError> {
    if let Some(address) = patterns.iter().find(|p| looks_like_address(p)) {
        return Err(ScriptError::AddressAsPattern {
            address: address.clone(),
        });
    }
    Ok(())
}

/// Every check of `spec` made before any program is built, in the order the user reads the
/// errors: comment, addresses (returned as ipset lists them), chain mode, patterns.
pub(super) fn check_spec(spec: &Spec) -> Result<Vec<String>, ScriptError> {
    if let Some(comment) = &spec.comment {
        check_comment(comment)?;
    }
    let addresses = spec
        .addresses
        .iter()
        .map(|a| check_address(a, spec.inet6))
        .collect::<Result<Vec<_>, _>>()?;
    let Some(chain) = &spec.chain else {
        check_patterns_are_not_addresses(&spec.dns_patterns())?;
        return Ok(addresses);
    };
    if chain.name.is_empty()
        || chain.name.len() > 28
        || chain.name.starts_with('-')
        || !chain
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(ScriptError::BadChainName {
            name: chain.name.clone(),
        });
    }
    if RESERVED_CHAIN_NAMES.contains(&chain.name.as_str()) {
        return Err(ScriptError::ReservedChainName {
            name: chain.name.clone(),
        });
    }
    if spec.negate {
        return Err(ScriptError::NegateInChainMode);
    }
    let patterns: Vec<String> = chain
        .accept
        .iter()
        .chain(&chain.drop)
        .filter(|p| *p != "any")
        .cloned()
        .collect();
    check_patterns_are_not_addresses(&patterns)?;
    Ok(addresses)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_comments_and_addresses_are_refused() {
        assert!(check_comment("ok comment 1.2").is_ok());
        for bad in ["$(id)", "`id`", "a'b", "a\"b", "a\nb", "a;b"] {
            assert!(check_comment(bad).is_err(), "{bad:?}");
        }
        assert!(check_address("192.0.2.1; rm -rf /", false).is_err());
        assert_eq!(
            check_address("192.0.2.0/24", false).unwrap(),
            "192.0.2.0/24"
        );
        assert!(check_address("2001:db8::1", false).is_err());
    }

    #[test]
    fn refusals_are_typed_and_say_what_was_expected() {
        assert!(matches!(
            check_address("010.1.1.1", false),
            Err(ScriptError::BadAddress { octal: true, .. })
        ));
        assert!(matches!(
            check_address("::/0", true),
            Err(ScriptError::ZeroPrefix { inet6: true, .. })
        ));
        assert_eq!(
            check_address("192.0.2.1/33", false)
                .unwrap_err()
                .to_string(),
            "bad prefix length in '192.0.2.1/33': expected 1..32"
        );
        assert_eq!(
            check_comment("a\u{1b}b").unwrap_err().to_string(),
            "comment contains '\\u{1b}': allowed are letters, digits, spaces and - _ . : , / * @ = + # % [ ] ( )"
        );
    }
}
