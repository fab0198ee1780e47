//! The names of a master-format zone file (RFC 1035 section 5): the names that exist are
//! legitimate, whatever the capture says of them.
//!
//! Read: `$ORIGIN`, `@`, relative and absolute owner names, a blank owner (the previous one),
//! comments (`;`), parentheses spanning lines, quoted strings. `$TTL` is skipped, `$INCLUDE`
//! is refused (the file must stand alone), wildcard owners (`*.x`) are skipped: they make no
//! single name legitimate. Errors name the line.

use crate::triage::stats::FastMap;

/// The names a zone file declares (lowercase wire form).
#[derive(Debug, Default, Clone)]
pub struct Zone {
    names: FastMap<Box<[u8]>, ()>,
}

/// A zone file that cannot be read, with its line.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {message}")]
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

/// Turns a name in zone-file text into lowercase wire form (without the root byte),
/// relative to `origin` unless it ends with a dot.
fn to_wire(text: &str, origin: &[u8]) -> Result<Vec<u8>, String> {
    if text == "@" {
        return Ok(origin.to_vec());
    }
    let absolute = text.ends_with('.') && !text.ends_with("\\.");
    let mut wire = Vec::new();
    let mut label = Vec::new();
    let mut chars = text.chars().peekable();
    let flush = |label: &mut Vec<u8>, wire: &mut Vec<u8>| -> Result<(), String> {
        if label.is_empty() {
            return Err(format!("empty label in '{text}'"));
        }
        if label.len() > 63 {
            return Err(format!("label longer than 63 bytes in '{text}'"));
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
                    let byte = u8::try_from(value)
                        .map_err(|_| format!("escape \\{digits} above 255 in '{text}'"))?;
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
        return Err(format!("name longer than 255 bytes: '{text}'"));
    }
    Ok(wire)
}

impl Zone {
    /// Reads a zone file's text. `origin` is the starting `$ORIGIN` (wire form), usually empty.
    pub fn parse(text: &str) -> Result<Zone, ZoneError> {
        let mut zone = Zone::default();
        let mut origin: Vec<u8> = Vec::new();
        let mut previous: Option<Vec<u8>> = None;
        let mut open = false;
        for (index, line) in text.lines().enumerate() {
            let number = index + 1;
            let err = |message: String| ZoneError {
                line: number,
                message,
            };
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
                    origin = to_wire(name, &origin).map_err(err)?;
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
            let owner = if starts_blank {
                match &previous {
                    Some(owner) => owner.clone(),
                    None => return Err(err("a record without an owner name before it".into())),
                }
            } else {
                to_wire(&words[0], &origin).map_err(err)?
            };
            if !owner.starts_with(b"\x01*") {
                zone.names.insert(owner.clone().into_boxed_slice(), ());
            }
            previous = Some(owner);
        }
        Ok(zone)
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
}
