//! Names and ids of the iptables generator: deployment id, version, set, chain and file
//! names.
//!
//! Keeps every name a script gives the objects it owns, and the one byte encoding the ids
//! are hashed from. Must not change an id or a name for an existing input: deployments made
//! by earlier scripts are found again by them (a script that computed other ids would leave
//! the old rules behind and make new ones beside them). Must not build programs or write
//! script text.

use sha2::{Digest, Sha256};

use super::Spec;

/// Characters of a name hash: 10 base32 characters, 50 bits.
const HASH_LEN: usize = 10;

/// 50 bits of the SHA-256 of `key` in base32 (`a-z2-7`), [`HASH_LEN`] characters: ids of
/// different deployments or versions do not collide by chance.
fn name_hash(key: &str) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let digest = Sha256::digest(key.as_bytes());
    let mut bits = u128::from_be_bytes(digest[..16].try_into().expect("16 bytes"));
    let mut out = String::with_capacity(HASH_LEN);
    for _ in 0..HASH_LEN {
        out.push(char::from(ALPHABET[(bits >> 123) as usize]));
        bits <<= 5;
    }
    out
}

/// An unambiguous key for a list of words, the bytes the ids are hashed from: `[`, the words
/// separated by `,`, `]`, each word between double quotes with
/// - `"` and `\` preceded by a `\`;
/// - the control characters U+0008, U+0009, U+000A, U+000C, U+000D written `\b`, `\t`, `\n`,
///   `\f`, `\r`;
/// - the other characters below U+0020 written `\u00` and two lower-case hex digits;
/// - every other character (U+007F and all non-ASCII ones included) as its UTF-8 bytes.
///
/// Quoting makes `a b` and `a`,`b` differ, and escaping makes a quote inside a word differ
/// from one that ends it. This is the compact JSON form of a list of strings byte for byte
/// (the form earlier versions hashed, through a JSON library): written out here so that ids
/// depend on nothing but this function, and pinned by tests.
fn words_key(words: &[String]) -> String {
    let mut key = String::from("[");
    for (index, word) in words.iter().enumerate() {
        if index > 0 {
            key.push(',');
        }
        key.push('"');
        for c in word.chars() {
            match c {
                '"' => key.push_str("\\\""),
                '\\' => key.push_str("\\\\"),
                '\u{8}' => key.push_str("\\b"),
                '\t' => key.push_str("\\t"),
                '\n' => key.push_str("\\n"),
                '\u{c}' => key.push_str("\\f"),
                '\r' => key.push_str("\\r"),
                c if c < ' ' => {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    let byte = c as u8;
                    key.push_str("\\u00");
                    key.push(char::from(HEX[usize::from(byte >> 4)]));
                    key.push(char::from(HEX[usize::from(byte & 0xf)]));
                }
                c => key.push(c),
            }
        }
        key.push('"');
    }
    key.push(']');
    key
}

/// The deployment id of the deployment named `name` in `family` (`ip4` or `ip6`): the hash of
/// `FAMILY|` followed by `words_key` of the name alone. Set and chain names end with it and
/// rule comments carry it: a script touches only objects with its id.
pub fn deployment_id(family: &str, name: &str) -> String {
    name_hash(&format!(
        "{family}|{}",
        words_key(std::slice::from_ref(&name.to_string()))
    ))
}

/// Keeps `[a-z0-9_]`, turns `*` into `any` and everything else into `_`, squeezing repeats.
fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        let piece = match c {
            '*' => "any".to_string(),
            c if c.is_ascii_alphanumeric() => c.to_ascii_lowercase().to_string(),
            _ => "_".to_string(),
        };
        if piece == "_" && (out.ends_with('_') || out.is_empty()) {
            continue;
        }
        out.push_str(&piece);
    }
    out.trim_end_matches('_').to_string()
}

/// A name of at most `max` characters: a readable prefix and `hash`.
fn limited_name(prefix: &str, readable: &str, hash: &str, max: usize) -> String {
    let room = max.saturating_sub(prefix.len() + hash.len() + 1);
    let mut readable: String = readable.chars().take(room).collect();
    while readable.ends_with('_') {
        readable.pop();
    }
    if readable.is_empty() {
        // Owned objects are found by the pattern PREFIX*_HASH: keep the separator.
        readable.push('d');
    }
    format!("{prefix}{readable}_{hash}")
}

/// The readable part of the set's and chain's names: it must not change between versions of
/// a deployment, so it comes from the deployment's name (the script file's name without
/// `bpf_`, the family and `.sh`; the chain's name).
fn deployment_readable(deployment: &str) -> String {
    let last = deployment
        .rsplit(['/', ':'])
        .next()
        .unwrap_or(deployment)
        .trim_end_matches(".sh");
    let last = last.strip_prefix("bpf_").unwrap_or(last);
    let text = slug(last).replace("_ip4", "").replace("_ip6", "");
    if text.is_empty() {
        "d".to_string()
    } else {
        text
    }
}

/// The file name a script gets when none is given (`bpf_dns_ip4_any_www_example_uk.sh`).
pub fn default_file_name(spec: &Spec) -> String {
    let family = spec.family();
    let patterns_slug = match &spec.chain {
        Some(chain) => slug(&chain.name),
        None => slug(&spec.dns_patterns().join("_")),
    };
    let kind = if spec.chain.is_some() {
        "chain"
    } else {
        spec.generator_name()
    };
    let mut file_stem = format!("bpf_{}_{family}", slug(kind));
    if !patterns_slug.is_empty() {
        file_stem = format!("{file_stem}_{patterns_slug}");
    }
    if file_stem.len() > 120 {
        file_stem = limited_name("", &file_stem, &name_hash(&file_stem), 120);
    }
    if spec.negate {
        file_stem.push_str("_negated");
    }
    format!("{file_stem}.sh")
}

/// Everything a script is known by: its version, its deployment and the names of the objects
/// it owns.
pub(super) struct Identity {
    /// The hash of everything that makes the rules.
    pub version: String,
    /// The deployment's name (`rules:VERSION` when the spec gives none).
    pub deployment_name: String,
    /// The deployment id.
    pub deployment: String,
    /// The ipset's name.
    pub set_name: String,
    /// The chain's name, empty when the rules need no chain.
    pub chain_name: String,
}

impl Identity {
    /// The identity of a script of `spec` whose rules carry `comment`, read the transport
    /// `proto`, and need a chain when `chained`.
    pub fn of(spec: &Spec, comment: &str, proto: &str, chained: bool) -> Identity {
        let family = spec.family();
        let comment = comment.to_string();
        // The version: everything that makes the rules, each list encoded unambiguously.
        let key = match &spec.chain {
            Some(chain) => format!(
                "1|{family}|chain|{}|{}|{}|{}|{}|{}",
                words_key(std::slice::from_ref(&chain.name)),
                words_key(&chain.accept),
                words_key(&chain.drop),
                chain.match_case,
                words_key(std::slice::from_ref(&comment)),
                chain.accept_final,
            ),
            None => format!(
                "1|{family}|{}|{}|{}|{}",
                spec.negate,
                words_key(&[spec.generator_name().to_string()]),
                words_key(&spec.generator_args()),
                words_key(std::slice::from_ref(&comment)),
            ),
        };
        let version = name_hash(&format!("{key}|{proto}"));
        let deployment_name = spec
            .deployment
            .clone()
            .unwrap_or_else(|| format!("rules:{version}"));
        let deployment = deployment_id(family, &deployment_name);
        // The set's and chain's names come from the deployment alone: they never change
        // between versions (chain mode or not, other patterns), so a new version keeps the
        // set and the addresses added to it.
        let readable = match (&spec.deployment, &spec.chain) {
            (Some(_), _) => deployment_readable(&deployment_name),
            (None, Some(chain)) => slug(&chain.name),
            (None, None) => {
                let patterns = slug(&spec.dns_patterns().join("_"));
                slug(&format!("{}_{patterns}", spec.generator_name()))
            }
        };
        let set_name = limited_name(&format!("bpf{}_", &family[2..]), &readable, &deployment, 31);
        let chain_name = if chained {
            limited_name("bpf_", &readable, &deployment, 28)
        } else {
            String::new()
        };
        Identity {
            version,
            deployment_name,
            deployment,
            set_name,
            chain_name,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_safe_and_distinct() {
        let a = limited_name("bpf4_", &slug("dns_*.www.example.uk"), &name_hash("a"), 31);
        let b = limited_name("bpf4_", &slug("dns_*.www.example.uk"), &name_hash("b"), 31);
        assert!(a.len() <= 31 && b.len() <= 31, "{a} {b}");
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
        assert_eq!(slug("$(rm -rf /)`x`.example"), "rm_rf_x_example");
    }

    /// Ids of deployments made by earlier versions: a change here would orphan their rules.
    #[test]
    fn deployment_ids_are_those_of_earlier_scripts() {
        for (family, name, id) in [
            ("ip4", "rules:facmvcja5p", "hifd25xbqc"),
            ("ip6", "rules:dlqp4tzfan", "2ufptnvgcr"),
            ("ip4", "chain:DNSGUARD", "4anauflbjx"),
            ("ip6", "chain:G2", "d3yohujbca"),
            ("ip4", "id:weird \"name\" \\ x", "c6x7e6ul2c"),
            ("ip4", "id:ctl\u{1}\t\u{7f} \u{e9}\u{1f600}", "sjqc3xdqxs"),
        ] {
            assert_eq!(deployment_id(family, name), id, "{family} {name:?}");
        }
    }

    #[test]
    fn the_key_escapes_quotes_backslashes_and_control_characters() {
        let words = |list: &[&str]| list.iter().map(|w| w.to_string()).collect::<Vec<_>>();
        assert_eq!(words_key(&[]), "[]");
        assert_eq!(words_key(&words(&["a b"])), r#"["a b"]"#);
        assert_eq!(words_key(&words(&["a", "b"])), r#"["a","b"]"#);
        assert_eq!(
            words_key(&words(&["\"\\\u{8}\t\n\u{c}\r\u{0}\u{1f}\u{7f}\u{e9}"])),
            "[\"\\\"\\\\\\b\\t\\n\\f\\r\\u0000\\u001f\u{7f}\u{e9}\"]"
        );
    }

    /// The key is the compact JSON of the words, as the ids were made before: checked for
    /// every character below U+0100 and a few beyond, alone and in words.
    #[test]
    fn the_key_is_the_json_form_ids_were_hashed_from() {
        let mut words: Vec<String> = (0u32..0x100)
            .chain([0x2028, 0x2029, 0xfeff, 0x1f600])
            .filter_map(char::from_u32)
            .map(|c| format!("x{c}y{c}"))
            .collect();
        words.push(String::new());
        for word in &words {
            let one = std::slice::from_ref(word);
            assert_eq!(
                words_key(one),
                serde_json::to_string(one).unwrap(),
                "{word:?}"
            );
        }
        assert_eq!(words_key(&words), serde_json::to_string(&words).unwrap());
    }
}
