//! The names of a master-format zone file (RFC 1035 section 5): the names that exist are
//! legitimate, whatever the capture says of them, and so are the names a wildcard answers.
//!
//! Read: `$ORIGIN` (`.` included), `@`, relative and absolute owner names, a blank owner (the
//! previous one), comments (`;`), parentheses spanning lines, quoted strings. `$TTL` is
//! skipped, `$INCLUDE` is refused (the file must stand alone). Wildcard owners (`*.x`) are
//! kept apart: they make every name below `x` answerable. The origin is, in this order,
//! `$ORIGIN`, the one given by the caller (`--zone-origin`), the SOA record's absolute owner,
//! or the parent shared by the SOA's primary server and mailbox (`ns1.example.net.`,
//! `hostmaster.example.net.`: `example.net`); a relative name met before any of them is an
//! error. Every record line must name a record type. The file is read line by line (a line
//! over 64 KiB is refused), so its size costs only the names it declares. Errors name the
//! line.

use std::io::BufRead;

use crate::triage::stats::FastMap;

/// The names a zone file declares (lowercase wire form).
#[derive(Debug, Default, Clone)]
pub struct Zone {
    names: FastMap<Box<[u8]>, ()>,
    wildcards: FastMap<Box<[u8]>, ()>,
    /// The origin the file's relative names were read against (wire form).
    pub origin: Vec<u8>,
}

/// Why the zone says a name is legitimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ZoneMatch {
    /// The zone declares the name.
    Name,
    /// A wildcard of the zone answers it.
    Wildcard,
}

/// A zone file that cannot be read, with its line.
#[derive(Debug, thiserror::Error)]
#[error("{line}: {message}")]
pub struct ZoneError {
    /// Line number, from 1.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Splits a line into fields, dropping the comment; reports whether a parenthesis is still
/// open at its end.
fn fields(line: &str, mut open: bool) -> (Vec<String>, bool) {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => quoted = !quoted,
            '\\' => {
                current.push(c);
                if let Some(next) = chars.next() {
                    current.push(next);
                }
            }
            ';' if !quoted => break,
            '(' if !quoted => open = true,
            ')' if !quoted => open = false,
            c if c.is_whitespace() && !quoted => {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    (out, open)
}

/// Why a name in zone-file text cannot be a DNS name (each names the text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Two dots in a row, or a leading dot.
    #[error("empty label in '{0}'")]
    EmptyLabel(String),
    /// A label over 63 bytes.
    #[error("label longer than 63 bytes in '{0}'")]
    LongLabel(String),
    /// A `\DDD` escape above 255.
    #[error("escape \\{digits} above 255 in '{text}'")]
    BadEscape {
        /// The three digits.
        digits: String,
        /// The name.
        text: String,
    },
    /// Over 255 bytes in wire form.
    #[error("name longer than 255 bytes: '{0}'")]
    TooLong(String),
}

/// Turns a name in zone-file text into lowercase wire form (without the root byte),
/// relative to `origin` unless it ends with a dot.
fn to_wire(text: &str, origin: &[u8]) -> Result<Vec<u8>, NameError> {
    if text == "@" {
        return Ok(origin.to_vec());
    }
    if text == "." {
        return Ok(Vec::new());
    }
    let absolute = text.ends_with('.') && !text.ends_with("\\.");
    let mut wire = Vec::new();
    let mut label = Vec::new();
    let mut chars = text.chars().peekable();
    let flush = |label: &mut Vec<u8>, wire: &mut Vec<u8>| -> Result<(), NameError> {
        if label.is_empty() {
            return Err(NameError::EmptyLabel(text.to_string()));
        }
        if label.len() > 63 {
            return Err(NameError::LongLabel(text.to_string()));
        }
        wire.push(label.len() as u8);
        wire.extend(label.iter().map(u8::to_ascii_lowercase));
        label.clear();
        Ok(())
    };
    while let Some(c) = chars.next() {
        match c {
            '.' => flush(&mut label, &mut wire)?,
            '\\' => {
                let digits: String = chars.clone().take(3).collect();
                if digits.len() == 3 && digits.chars().all(|d| d.is_ascii_digit()) {
                    let value: u32 = digits.parse().expect("three digits");
                    let byte = u8::try_from(value).map_err(|_| NameError::BadEscape {
                        digits: digits.clone(),
                        text: text.to_string(),
                    })?;
                    label.push(byte);
                    for _ in 0..3 {
                        chars.next();
                    }
                } else if let Some(next) = chars.next() {
                    let mut buf = [0; 4];
                    label.extend_from_slice(next.encode_utf8(&mut buf).as_bytes());
                }
            }
            c => {
                let mut buf = [0; 4];
                label.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    if !label.is_empty() {
        flush(&mut label, &mut wire)?;
    }
    if !absolute {
        wire.extend_from_slice(origin);
    }
    if wire.len() > 254 {
        return Err(NameError::TooLong(text.to_string()));
    }
    Ok(wire)
}

/// Longest line read.
const MAX_LINE: usize = 64 * 1024;

/// Record types a zone line may name (others are written `TYPEnnn`).
const TYPES: [&str; 44] = [
    "A",
    "AAAA",
    "NS",
    "CNAME",
    "SOA",
    "MX",
    "TXT",
    "PTR",
    "SRV",
    "CAA",
    "HTTPS",
    "SVCB",
    "DS",
    "DNSKEY",
    "RRSIG",
    "NSEC",
    "NSEC3",
    "NSEC3PARAM",
    "TLSA",
    "SSHFP",
    "NAPTR",
    "DNAME",
    "LOC",
    "HINFO",
    "RP",
    "AFSDB",
    "CDS",
    "CDNSKEY",
    "CSYNC",
    "ZONEMD",
    "OPENPGPKEY",
    "SMIMEA",
    "URI",
    "SPF",
    "CERT",
    "KX",
    "APL",
    "DHCID",
    "IPSECKEY",
    "EUI48",
    "EUI64",
    "L32",
    "L64",
    "NID",
];

/// Whether `word` is a record type.
fn is_type(word: &str) -> bool {
    let upper = word.to_ascii_uppercase();
    TYPES.contains(&upper.as_str())
        || upper
            .strip_prefix("TYPE")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Whether `word` may stand between an owner and the type: a TTL or a class.
fn is_ttl_or_class(word: &str) -> bool {
    matches!(
        word.to_ascii_uppercase().as_str(),
        "IN" | "CH" | "HS" | "CS" | "ANY"
    ) || (word.bytes().next().is_some_and(|b| b.is_ascii_digit())
        && word
            .bytes()
            .all(|b| b.is_ascii_digit() || b"smhdwSMHDW".contains(&b)))
}

/// At most 40 characters of `text`, for error messages.
fn cut(text: &str) -> String {
    let mut out: String = text.chars().take(40).collect();
    if out.len() < text.len() {
        out.push_str("...");
    }
    out
}

/// The origin an SOA record gives: its owner when absolute, else the parent shared by its
/// primary server and mailbox names (both absolute).
fn soa_origin(words: &[String], starts_blank: bool, rdata: &[String]) -> Option<Vec<u8>> {
    if !starts_blank && words[0].ends_with('.') {
        return to_wire(&words[0], &[]).ok();
    }
    let (mname, rname) = (rdata.first()?, rdata.get(1)?);
    if !mname.ends_with('.') || !rname.ends_with('.') {
        return None;
    }
    let (m, r) = (to_wire(mname, &[]).ok()?, to_wire(rname, &[]).ok()?);
    let (pm, pr) = (parent(&m)?, parent(&r)?);
    (pm == pr && !pm.is_empty()).then(|| pm.to_vec())
}

/// The parent of a wire name (the name without its first label), when it has one.
fn parent(wire: &[u8]) -> Option<&[u8]> {
    let first = usize::from(*wire.first()?);
    wire.get(1 + first..)
}

impl Zone {
    /// Reads a zone file's text (see [`Zone::read`]).
    pub fn parse(text: &str) -> Result<Zone, ZoneError> {
        Zone::read(text.as_bytes(), None)
    }

    /// Reads a zone file line by line; `origin` (text, e.g. `example.net`) is used when the
    /// file has no `$ORIGIN` before its first relative name.
    pub fn read(mut input: impl BufRead, origin: Option<&str>) -> Result<Zone, ZoneError> {
        let mut zone = Zone::default();
        let mut known_origin: Option<Vec<u8>> = match origin {
            Some(text) => Some(
                to_wire(&format!("{}.", text.trim_end_matches('.')), &[]).map_err(|e| {
                    ZoneError {
                        line: 0,
                        message: e.to_string(),
                    }
                })?,
            ),
            None => None,
        };
        let mut previous: Option<Vec<u8>> = None;
        let mut open = false;
        let mut number = 0;
        let mut raw = Vec::new();
        loop {
            raw.clear();
            let read = std::io::Read::take(input.by_ref(), MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut raw)
                .map_err(|e| ZoneError {
                    line: number + 1,
                    message: format!("cannot read: {e}"),
                })?;
            if read == 0 {
                break;
            }
            number += 1;
            let err = |message: String| ZoneError {
                line: number,
                message,
            };
            if raw.len() > MAX_LINE && !raw.ends_with(b"\n") {
                return Err(err(format!("line longer than {MAX_LINE} bytes")));
            }
            let line = String::from_utf8_lossy(&raw);
            let line = line.trim_end_matches(['\n', '\r']);
            let continuation = open;
            let starts_blank = line.starts_with([' ', '\t']);
            let (words, still_open) = fields(line, open);
            open = still_open;
            if continuation || words.is_empty() {
                continue;
            }
            match words[0].to_ascii_uppercase().as_str() {
                "$ORIGIN" => {
                    let name = words
                        .get(1)
                        .ok_or_else(|| err("$ORIGIN without a name".into()))?;
                    if !name.ends_with('.') && known_origin.is_none() {
                        return Err(err(format!(
                            "relative $ORIGIN '{name}' with no origin before it"
                        )));
                    }
                    let base = known_origin.clone().unwrap_or_default();
                    known_origin = Some(to_wire(name, &base).map_err(|e| err(e.to_string()))?);
                    continue;
                }
                "$TTL" => continue,
                "$INCLUDE" => {
                    return Err(err(
                        "$INCLUDE is not followed: give one self-contained zone file".into(),
                    ))
                }
                other if other.starts_with('$') => {
                    return Err(err(format!("unknown directive {}", words[0])))
                }
                _ => {}
            }
            // The record's type: the owner (unless the line starts blank), then TTL and class
            // in any order, then the type.
            let rest = if starts_blank {
                &words[..]
            } else {
                &words[1..]
            };
            let type_at = rest.iter().position(|w| !is_ttl_or_class(w));
            let Some(type_at) = type_at.filter(|&i| is_type(&rest[i])) else {
                return Err(err(format!(
                    "not a record: expected [owner] [ttl] [class] TYPE data, got '{}'",
                    cut(line)
                )));
            };
            let is_soa = rest[type_at].eq_ignore_ascii_case("SOA");
            if known_origin.is_none() && is_soa {
                known_origin = soa_origin(&words, starts_blank, &rest[type_at + 1..]);
            }
            let owner = if starts_blank {
                match &previous {
                    Some(owner) => owner.clone(),
                    None => return Err(err("a record without an owner name before it".into())),
                }
            } else {
                let text = &words[0];
                let absolute = text.ends_with('.') && !text.ends_with("\\.");
                match (&known_origin, absolute) {
                    (_, true) => to_wire(text, &[]).map_err(|e| err(e.to_string()))?,
                    (Some(origin), false) => to_wire(text, origin).map_err(|e| err(e.to_string()))?,
                    (None, false) => {
                        return Err(err(format!(
                            "relative name '{}' and no origin: add $ORIGIN to the file or give --zone-origin",
                            cut(text)
                        )))
                    }
                }
            };
            if owner.starts_with(b"\x01*") {
                if let Some(parent) = parent(&owner) {
                    zone.wildcards.insert(parent.into(), ());
                }
            } else {
                zone.names.insert(owner.clone().into_boxed_slice(), ());
            }
            previous = Some(owner);
        }
        zone.origin = known_origin.unwrap_or_default();
        Ok(zone)
    }

    /// Whether the zone declares `name`, or a wildcard of it answers `name` (lowercase wire
    /// form).
    pub fn covers(&self, name: &[u8]) -> Option<ZoneMatch> {
        if self.names.contains_key(name) {
            return Some(ZoneMatch::Name);
        }
        let mut at = name;
        while let Some(up) = parent(at) {
            if self.wildcards.contains_key(up) {
                return Some(ZoneMatch::Wildcard);
            }
            // A declared name between the query and the wildcard stops it (RFC 4592).
            if self.names.contains_key(up) && !self.wildcards.contains_key(up) {
                return None;
            }
            at = up;
        }
        None
    }

    /// The parents of the zone's wildcards (`x` for `*.x`).
    pub fn wildcards(&self) -> impl Iterator<Item = &[u8]> {
        self.wildcards.keys().map(|k| &k[..])
    }

    /// Whether the zone has `name` (lowercase wire form).
    pub fn contains(&self, name: &[u8]) -> bool {
        self.names.contains_key(name)
    }

    /// The zone's names.
    pub fn names(&self) -> impl Iterator<Item = &[u8]> {
        self.names.keys().map(|k| &k[..])
    }

    /// How many names it has.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether it has none.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_relative_absolute_and_continued() {
        let text = "\
$ORIGIN example.net.
$TTL 3600
@   IN SOA ns1 hostmaster ( 1 7200
        3600 1209600 3600 )
    IN NS ns1
www IN A 192.0.2.1 ; comment
WWW.Example.COM. IN A 192.0.2.2
*.wild IN A 192.0.2.3
_dmarc IN TXT \"v=DMARC1; p=none\"
";
        let zone = Zone::parse(text).unwrap();
        assert!(zone.contains(b"\x07example\x03net"));
        assert!(zone.contains(b"\x03www\x07example\x03net"));
        assert!(zone.contains(b"\x03www\x07example\x03com"));
        assert!(zone.contains(b"\x06_dmarc\x07example\x03net"));
        assert!(!zone.contains(b"\x04wild\x07example\x03net"));
        assert_eq!(zone.len(), 4);
        let err = Zone::parse("$INCLUDE other\n").unwrap_err();
        assert_eq!(err.line, 1);
    }

    #[test]
    fn wildcards_cover_names_below_them_unless_a_closer_name_exists() {
        let zone = Zone::parse(
            "$ORIGIN example.net.\n@ IN SOA ns1 h 1 2 3 4 5\n*.users IN A 192.0.2.1\nbob.users IN A 192.0.2.2\nx.y IN A 192.0.2.3\n",
        )
        .unwrap();
        assert_eq!(
            zone.covers(b"\x03ann\x05users\x07example\x03net"),
            Some(ZoneMatch::Wildcard)
        );
        assert_eq!(
            zone.covers(b"\x03sso\x04acme\x05users\x07example\x03net"),
            Some(ZoneMatch::Wildcard)
        );
        assert_eq!(
            zone.covers(b"\x03bob\x05users\x07example\x03net"),
            Some(ZoneMatch::Name)
        );
        // bob.users exists: names below it are not the wildcard's (RFC 4592).
        assert_eq!(
            zone.covers(b"\x01a\x03bob\x05users\x07example\x03net"),
            None
        );
        assert_eq!(zone.covers(b"\x01z\x07example\x03net"), None);
        assert_eq!(zone.wildcards().count(), 1);
    }

    #[test]
    fn lines_are_bounded_and_records_need_a_type() {
        let long = format!(
            "$ORIGIN example.net.\n{} IN A 192.0.2.1\n",
            "a".repeat(70_000)
        );
        let err = Zone::parse(&long).unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.message.contains("longer than"), "{}", err.message);
        let err = Zone::parse("$ORIGIN example.net.\nwww 300 IN 192.0.2.1\n").unwrap_err();
        assert_eq!(err.line, 2);
        let zone = Zone::parse("$ORIGIN example.net.\nwww 300 IN TYPE65 \\# 0\n").unwrap();
        assert!(zone.covers(b"\x03www\x07example\x03net").is_some());
    }
}
