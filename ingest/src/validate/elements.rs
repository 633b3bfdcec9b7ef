//! The batch's top-level array, walked by hand so that each element is
//! parsed where it stands and its raw text can be cut out when refused.

use serde::de::IgnoredAny;
use serde_json::value::RawValue;

use crate::{Error, Result};

/// The top-level array, walked by hand so that each element can be
/// parsed in place (serde_json gives the bytes each one took).
pub(super) struct Elements<'t> {
    text: &'t str,
    pub(super) pos: usize,
    first: bool,
}

pub(super) fn malformed(reason: impl Into<String>) -> Error {
    Error::MalformedJson {
        reason: reason.into(),
    }
}

impl<'t> Elements<'t> {
    /// Past the opening `[`; a body that is JSON but no array is
    /// [`Error::NotAnArray`].
    pub(super) fn open(text: &'t str) -> Result<Self> {
        let mut e = Self {
            text,
            pos: 0,
            first: true,
        };
        e.skip_ws();
        if text.as_bytes().get(e.pos) != Some(&b'[') {
            return Err(match serde_json::from_str::<IgnoredAny>(text) {
                Ok(_) => Error::NotAnArray,
                Err(err) => malformed(err.to_string()),
            });
        }
        e.pos += 1;
        Ok(e)
    }

    fn skip_ws(&mut self) {
        let b = self.text.as_bytes();
        while self.pos < b.len() && matches!(b[self.pos], b' ' | b'\n' | b'\r' | b'\t') {
            self.pos += 1;
        }
    }

    /// Where the next element starts, or None after the closing `]`.
    pub(super) fn next_start(&mut self) -> Result<Option<usize>> {
        self.skip_ws();
        let b = self.text.as_bytes();
        match b.get(self.pos) {
            Some(b']') => {
                self.pos += 1;
                return Ok(None);
            }
            Some(b',') if !self.first => {
                self.pos += 1;
                self.skip_ws();
            }
            Some(_) if self.first => {}
            Some(_) => return Err(malformed("expected `,` or `]` between array elements")),
            None => return Err(malformed("EOF while parsing a list")),
        }
        self.first = false;
        if self.pos >= b.len() {
            return Err(malformed("EOF while parsing a list"));
        }
        Ok(Some(self.pos))
    }

    /// Counts the elements from `start` on (the over-the-limit path).
    pub(super) fn count_from(&mut self, start: usize) -> Result<usize> {
        let mut n = 0;
        let mut at = Some(start);
        while let Some(start) = at {
            self.pos = start + raw_len(&self.text[start..])?;
            n += 1;
            at = self.next_start()?;
        }
        Ok(n)
    }

    /// Nothing but whitespace may follow the array.
    pub(super) fn close(mut self) -> Result<()> {
        self.skip_ws();
        if self.pos != self.text.len() {
            return Err(malformed("trailing characters after the array"));
        }
        Ok(())
    }
}

/// The length of the JSON value `text` starts with.
pub(super) fn raw_len(text: &str) -> Result<usize> {
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<&RawValue>();
    match stream.next() {
        Some(Ok(_)) => Ok(stream.byte_offset()),
        Some(Err(e)) => Err(malformed(e.to_string())),
        None => Err(malformed("EOF while parsing a value")),
    }
}
