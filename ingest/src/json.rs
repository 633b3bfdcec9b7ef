//! JSON building blocks for validation: object keys borrowed from the body,
//! the nesting-depth pre-check, and the escapes PostgreSQL's `jsonb`
//! refuses.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, Visitor};

/// An object key, borrowed from the body unless it had escapes.
pub(crate) struct Key<'a>(pub(crate) Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Key<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// True when arrays/objects nest deeper than `limit` anywhere in `body`.
/// One pass over the bytes, skipping string contents.
pub fn nests_deeper_than(body: &[u8], limit: usize) -> bool {
    let n = body.len();
    let mut depth = 0usize;
    let mut i = 0;
    while i < n {
        match body[i] {
            b'"' => {
                // Jump from quote to backslash to quote (memchr: many bytes
                // a step) instead of looking at every byte of the string.
                i += 1;
                loop {
                    if i >= n {
                        return false; // unterminated: the parser refuses it
                    }
                    match memchr::memchr2(b'"', b'\\', &body[i..]) {
                        None => return false,
                        Some(j) if body[i + j] == b'\\' => i += j + 2,
                        Some(j) => {
                            i += j + 1;
                            break;
                        }
                    }
                }
                continue;
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The byte-at-a-time scan the memchr one replaced.
    fn reference(body: &[u8], limit: usize) -> bool {
        let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
        for &b in body {
            if in_string {
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    in_string = false;
                }
                continue;
            }
            match b {
                b'"' => in_string = true,
                b'[' | b'{' => {
                    depth += 1;
                    if depth > limit {
                        return true;
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        false
    }

    #[test]
    fn the_fast_scan_agrees_with_the_reference() {
        // Random strings over the bytes that matter, many of them.
        let alphabet = b"[]{}\"\\a1,:";
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 40) as usize;
            let body: Vec<u8> = (0..len)
                .map(|k| alphabet[((x >> (k % 50)) as usize + k * 7) % alphabet.len()])
                .collect();
            for limit in [1, 2, 3] {
                assert_eq!(
                    nests_deeper_than(&body, limit),
                    reference(&body, limit),
                    "{:?} limit {limit}",
                    String::from_utf8_lossy(&body)
                );
            }
        }
    }

    #[test]
    fn depth_counts_brackets_outside_strings_only() {
        assert!(!nests_deeper_than(br#"[{"a":[1]}]"#, 3));
        assert!(nests_deeper_than(br#"[{"a":[[1]]}]"#, 3));
        assert!(!nests_deeper_than(br#"[{"a":"[[[[[[\"[["}]"#, 2));
        let deep = "[".repeat(65) + &"]".repeat(65);
        assert!(nests_deeper_than(deep.as_bytes(), 64));
        let ok = "[".repeat(64) + &"]".repeat(64);
        assert!(!nests_deeper_than(ok.as_bytes(), 64));
        // Escaped quotes and backslashes do not end a string.
        assert!(!nests_deeper_than(br#"[{"a":"\"[[[[\\"}]"#, 2));
        assert!(nests_deeper_than(br#"[{"a":"\\"},[[[1]]]]"#, 3));
        // Unterminated strings and a trailing backslash end the scan.
        assert!(!nests_deeper_than(br#"["abc"#, 1));
        assert!(!nests_deeper_than(b"[\"ab\\", 1));
    }
}

/// A `\u` escape PostgreSQL's `jsonb` refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadEscape {
    /// `\u0000`.
    Nul,
    /// A high surrogate not followed by a low one, or a low one alone.
    Surrogate,
}

/// Checks the `\u` escapes of raw JSON text (already known to be
/// well-formed otherwise): what serde's raw scan does not decode.
pub fn check_escapes(text: &[u8]) -> Result<(), BadEscape> {
    fn hex4(t: &[u8]) -> Option<u32> {
        let s = std::str::from_utf8(t.get(..4)?).ok()?;
        u32::from_str_radix(s, 16).ok()
    }
    let mut i = 0;
    // Set after a high surrogate: the next thing must be a low one.
    let mut want_low = false;
    while i < text.len() {
        if text[i] != b'\\' {
            if want_low {
                return Err(BadEscape::Surrogate);
            }
            i += 1;
            continue;
        }
        let Some(&c) = text.get(i + 1) else { break };
        if c != b'u' {
            if want_low {
                return Err(BadEscape::Surrogate);
            }
            i += 2;
            continue;
        }
        let Some(u) = hex4(&text[i + 2..]) else {
            // Malformed escapes are the parser's to refuse.
            return Ok(());
        };
        match u {
            0 => return Err(BadEscape::Nul),
            0xD800..=0xDBFF if !want_low => want_low = true,
            0xDC00..=0xDFFF if want_low => want_low = false,
            0xD800..=0xDFFF => return Err(BadEscape::Surrogate),
            _ if want_low => return Err(BadEscape::Surrogate),
            _ => {}
        }
        i += 6;
    }
    if want_low {
        return Err(BadEscape::Surrogate);
    }
    Ok(())
}

#[cfg(test)]
mod escape_tests {
    use super::{check_escapes, BadEscape};

    #[test]
    fn escapes_postgres_refuses_are_found() {
        let ok = |t: &str| check_escapes(t.as_bytes());
        assert_eq!(ok(r#""plain""#), Ok(()));
        assert_eq!(ok(r#""\u00e9 \ud83d\ude00 \n""#), Ok(()));
        assert_eq!(ok(r#""a literal \\u0000 is text""#), Ok(()));
        assert_eq!(ok(r#"{"a":"\u0000"}"#), Err(BadEscape::Nul));
        assert_eq!(ok(r#""\ud83dxx""#), Err(BadEscape::Surrogate));
        assert_eq!(ok(r#""\ud83d""#), Err(BadEscape::Surrogate));
        assert_eq!(ok(r#""\ude00""#), Err(BadEscape::Surrogate));
        assert_eq!(ok(r#""\ud83d\ud83d""#), Err(BadEscape::Surrogate));
        assert_eq!(ok(r#""\ud83d\n""#), Err(BadEscape::Surrogate));
    }
}
