//! The text of a p0f signature: parsing `ver:ittl:olen:mss:wsize,scale:olayout:quirks:pclass`
//! into a [`P0fSpec`], and refusing what can never match or cannot be checked.
//!
//! Keeps one parser per field, each saying which field is wrong and what it expects
//! ([`SignatureProblem`]), and the checks across fields ([`P0fSpec::check`]). Must not emit
//! instructions: a spec it returns is one the program builder can always build.

use std::str::FromStr;

use thiserror::Error;

use super::{IpVersion, P0fSpec, PayloadClass, Quirk, TcpOption, Ttl, WindowSize, QUIRKS};

/// Why a signature is not valid.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("signature '{signature}': {problem}")]
pub struct SignatureError {
    /// The signature as given (at most 100 characters of it).
    pub signature: String,
    /// What is wrong, naming the field, and what was expected.
    pub problem: SignatureProblem,
}

/// What is wrong with a signature: the field, and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SignatureProblem {
    /// Not 8 fields.
    #[error("{count} fields, expected 8: ver:ittl:olen:mss:wsize,scale:olayout:quirks:pclass")]
    FieldCount {
        /// The fields found.
        count: usize,
    },
    /// A bad `ver`.
    #[error("version '{text}': expected 4, 6 or * (either)")]
    Version {
        /// The field.
        text: String,
    },
    /// A bad `ittl`.
    #[error("ittl '{text}': expected the initial TTL N (1 to 255), N- (random TTLs) or N+D (observed TTL and distance)")]
    Ttl {
        /// The field.
        text: String,
    },
    /// A bad `olen`.
    #[error("olen '{text}': expected the IPv4 options' length in bytes (0, 4, ... 40) or *")]
    OptionsLen {
        /// The field.
        text: String,
    },
    /// A bad `mss`.
    #[error("mss '{text}': expected 0 to 65535 or *")]
    Mss {
        /// The field.
        text: String,
    },
    /// `wsize,scale` without its comma.
    #[error("wsize,scale '{text}': expected the window size and scale, separated by ','")]
    WindowAndScale {
        /// The field.
        text: String,
    },
    /// A bad `wsize`.
    #[error("wsize '{text}': expected N, mss*N, mtu*N, %N (N from 1) or *")]
    Window {
        /// The field.
        text: String,
    },
    /// A bad `scale`.
    #[error("scale '{text}': expected 0 to 255 or *")]
    Scale {
        /// The field.
        text: String,
    },
    /// An option after `eol`.
    #[error("olayout: '{option}' after eol: eol ends the options (expected it last)")]
    AfterEol {
        /// The option.
        option: String,
    },
    /// An option without a fixed length (`sack`, `?N`).
    #[error("olayout: option {number} '{option}' has no fixed length, so the options after it have no fixed place: not supported")]
    VariableLength {
        /// Its number in the layout, from 1.
        number: usize,
        /// The option.
        option: String,
    },
    /// An unknown option.
    #[error("olayout: option {number} '{option}': expected eol+N, nop, mss, ws, sok or ts")]
    UnknownOption {
        /// Its number in the layout, from 1.
        number: usize,
        /// The option.
        option: String,
    },
    /// An unknown quirk.
    #[error("quirk '{text}': expected one of {}", QUIRKS.map(|(_, n)| n).join(", "))]
    UnknownQuirk {
        /// The quirk.
        text: String,
    },
    /// A bad `pclass`.
    #[error("pclass '{text}': expected 0 (no payload), + (some) or * (either)")]
    Payload {
        /// The field.
        text: String,
    },
    /// A field that reads an option the layout does not have.
    #[error("{what} needs the '{option}' option in olayout, which has none")]
    MissingOption {
        /// The field (`mss`, `wsize mss*N`, `scale`, `quirk 'ts1-'`...).
        what: String,
        /// The option's name.
        option: &'static str,
    },
    /// `opt+` without padding to look at.
    #[error("quirk 'opt+' needs padding after the options: eol+N with N from 1 in olayout")]
    NoPadding,
    /// A quirk of the other family than the signature's version.
    #[error("quirk '{quirk}' is for {family} only, and the signature's version is {version}")]
    QuirkFamily {
        /// The quirk.
        quirk: &'static str,
        /// The family it is for (`IPv4`, `IPv6`).
        family: &'static str,
        /// The signature's version.
        version: u8,
    },
    /// Two quirks that contradict each other.
    #[error("quirks '{first}' and '{second}' never hold together ({why})")]
    Contradiction {
        /// The first quirk.
        first: &'static str,
        /// The second quirk.
        second: &'static str,
        /// What they ask for.
        why: &'static str,
    },
    /// A layout longer than a TCP header's options.
    #[error("olayout takes {bytes} bytes, a TCP header has room for 40")]
    LayoutTooLong {
        /// The layout's bytes.
        bytes: u32,
    },
}

use SignatureProblem as Problem;

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
        parse_fields(text).map_err(|problem| SignatureError {
            signature: text.chars().take(100).collect(),
            problem,
        })
    }
}

/// The signature's fields, each parsed by its own function, then checked together.
fn parse_fields(text: &str) -> Result<P0fSpec, Problem> {
    let fields: Vec<&str> = text.trim().split(':').collect();
    let [ver, ittl, olen, mss, window, layout, quirks, pclass] = fields[..] else {
        return Err(Problem::FieldCount {
            count: fields.len(),
        });
    };
    // Parsed in the order written: the first bad field is the one reported.
    let version = parse_version(ver)?;
    let ttl = parse_ttl(ittl)?;
    let options_len = parse_options_len(olen)?;
    let mss = star_or(mss).map_err(|()| Problem::Mss { text: mss.into() })?;
    let (window, scale) = parse_window_and_scale(window)?;
    let spec = P0fSpec {
        version,
        ttl,
        options_len,
        mss,
        window,
        scale,
        layout: parse_layout(layout)?,
        quirks: parse_quirks(quirks)?,
        payload: parse_payload(pclass)?,
    };
    spec.check()?;
    Ok(spec)
}

fn parse_version(text: &str) -> Result<IpVersion, Problem> {
    match text {
        "4" => Ok(IpVersion::V4),
        "6" => Ok(IpVersion::V6),
        "*" => Ok(IpVersion::Any),
        other => Err(Problem::Version { text: other.into() }),
    }
}

/// `N`, `N-` or `N+D` (the observed TTL and the distance: their sum is the initial TTL).
fn parse_ttl(text: &str) -> Result<Ttl, Problem> {
    let bad = || Problem::Ttl { text: text.into() };
    if let Some(n) = text.strip_suffix('-') {
        return Ok(Ttl {
            initial: number(n).filter(|&n| n > 0).ok_or_else(bad)?,
            random: true,
        });
    }
    let initial = if let Some((n, d)) = text.split_once('+') {
        let (n, d): (u32, u32) = (number(n).ok_or_else(bad)?, number(d).ok_or_else(bad)?);
        u8::try_from(n + d).ok()
    } else {
        number(text)
    };
    Ok(Ttl {
        initial: initial.filter(|&n| n > 0).ok_or_else(bad)?,
        random: false,
    })
}

fn parse_options_len(text: &str) -> Result<Option<u8>, Problem> {
    star_or(text)
        .ok()
        .filter(|o: &Option<u8>| match o {
            None => true,
            Some(n) => n % 4 == 0 && *n <= 40,
        })
        .ok_or_else(|| Problem::OptionsLen { text: text.into() })
}

fn parse_window_and_scale(text: &str) -> Result<(WindowSize, Option<u8>), Problem> {
    let (wsize, scale) = text
        .split_once(',')
        .ok_or_else(|| Problem::WindowAndScale { text: text.into() })?;
    let bad_window = || Problem::Window { text: wsize.into() };
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
    let scale = star_or(scale).map_err(|()| Problem::Scale { text: scale.into() })?;
    Ok((window, scale))
}

fn parse_layout(text: &str) -> Result<Vec<TcpOption>, Problem> {
    let mut options = Vec::new();
    for (index, name) in text
        .split(',')
        .filter(|o| !text.is_empty() || !o.is_empty())
        .enumerate()
    {
        if options.iter().any(|o| matches!(o, TcpOption::Eol { .. })) {
            return Err(Problem::AfterEol {
                option: name.into(),
            });
        }
        options.push(parse_option(index + 1, name)?);
    }
    Ok(options)
}

/// Option `number` (from 1) of the layout.
fn parse_option(number_in_layout: usize, name: &str) -> Result<TcpOption, Problem> {
    Ok(match name {
        "nop" => TcpOption::Nop,
        "mss" => TcpOption::Mss,
        "ws" => TcpOption::WindowScale,
        "sok" => TcpOption::SackPermitted,
        "ts" => TcpOption::Timestamp,
        "eol" => TcpOption::Eol { padding: 0 },
        other => match other.strip_prefix("eol+").map(number::<u8>) {
            Some(Some(padding)) => TcpOption::Eol { padding },
            _ if other == "sack" || other.starts_with('?') => {
                return Err(Problem::VariableLength {
                    number: number_in_layout,
                    option: other.into(),
                })
            }
            _ => {
                return Err(Problem::UnknownOption {
                    number: number_in_layout,
                    option: other.into(),
                })
            }
        },
    })
}

fn parse_quirks(text: &str) -> Result<Vec<Quirk>, Problem> {
    text.split(',')
        .filter(|q| !q.is_empty())
        .map(|name| {
            QUIRKS
                .iter()
                .find(|(_, n)| *n == name)
                .map(|(q, _)| *q)
                .ok_or_else(|| Problem::UnknownQuirk { text: name.into() })
        })
        .collect()
}

fn parse_payload(text: &str) -> Result<PayloadClass, Problem> {
    match text {
        "0" => Ok(PayloadClass::Zero),
        "+" => Ok(PayloadClass::NonZero),
        "*" => Ok(PayloadClass::Any),
        other => Err(Problem::Payload { text: other.into() }),
    }
}

impl P0fSpec {
    /// Refuses what can never match or cannot be checked.
    fn check(&self) -> Result<(), Problem> {
        if self.mss.is_some_and(|m| m != 0) {
            self.needs("mss", TcpOption::Mss)?;
        }
        if matches!(self.window, WindowSize::MssMultiple(_)) {
            self.needs("wsize mss*N", TcpOption::Mss)?;
        }
        if self.scale.is_some_and(|s| s != 0) {
            self.needs("scale", TcpOption::WindowScale)?;
        }
        for &quirk in &self.quirks {
            self.check_quirk(quirk)?;
        }
        for (first, second, why) in [
            (Quirk::NonZeroId, Quirk::ZeroId, "DF set and DF clear"),
            (Quirk::Df, Quirk::ZeroId, "DF set and DF clear"),
            (
                Quirk::NonZeroAck,
                Quirk::ZeroAck,
                "the ACK flag clear and set",
            ),
            (Quirk::NonZeroUrg, Quirk::Urg, "the URG flag clear and set"),
        ] {
            if self.has_quirk(first) && self.has_quirk(second) {
                return Err(Problem::Contradiction {
                    first: first.name(),
                    second: second.name(),
                    why,
                });
            }
        }
        let bytes = self.options_bytes();
        if bytes > 40 {
            return Err(Problem::LayoutTooLong { bytes });
        }
        Ok(())
    }

    /// Refuses a field `what` reading an option the layout does not have.
    fn needs(&self, what: &str, option: TcpOption) -> Result<(), Problem> {
        if self.layout.contains(&option) {
            Ok(())
        } else {
            Err(Problem::MissingOption {
                what: what.into(),
                option: option.name(),
            })
        }
    }

    /// Refuses a quirk whose option is missing, or which is for the other family.
    fn check_quirk(&self, quirk: Quirk) -> Result<(), Problem> {
        match quirk {
            Quirk::ZeroTs1 | Quirk::NonZeroTs2 | Quirk::Linux => {
                self.needs(&format!("quirk '{}'", quirk.name()), TcpOption::Timestamp)?
            }
            Quirk::ExcessiveScale => self.needs("quirk 'exws'", TcpOption::WindowScale)?,
            Quirk::NonZeroPadding if self.padding().is_none_or(|(_, n)| n == 0) => {
                return Err(Problem::NoPadding)
            }
            _ => {}
        }
        if self.version == IpVersion::V6 && quirk.ipv4_only() {
            return Err(Problem::QuirkFamily {
                quirk: quirk.name(),
                family: "IPv4",
                version: 6,
            });
        }
        if self.version == IpVersion::V4 && quirk == Quirk::Flow {
            return Err(Problem::QuirkFamily {
                quirk: quirk.name(),
                family: "IPv6",
                version: 4,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn problems_are_typed() {
        let problem = |text: &str| text.parse::<P0fSpec>().unwrap_err().problem;
        assert_eq!(
            problem("4:64:0:*:*,*:mss,nope::0"),
            Problem::UnknownOption {
                number: 2,
                option: "nope".into()
            }
        );
        assert_eq!(
            problem("6:64:0:*:*,*::id+:0"),
            Problem::QuirkFamily {
                quirk: "id+",
                family: "IPv4",
                version: 6
            }
        );
        assert_eq!(
            problem("4:64:0:*:*,*::id+,id-:0").to_string(),
            "quirks 'id+' and 'id-' never hold together (DF set and DF clear)"
        );
    }
}
