//! The `boards` array: each board's members typed in one pass, unknown
//! members flagged so that the row keeps the raw array.

use adit_types::{Board, Boards};
use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::fields::{expected_number, f32c, i16c, int_rule, range_rule, Invalid};
use super::rules::Rules;
use crate::json::Key;

/// `boards[]` into [`Boards`], in one typed pass over the array; the
/// flag says some board carried fields the contract does not name (the
/// caller then keeps the raw array).
pub(super) fn boards<'a>(
    v: &'a RawValue,
    rules: &Rules,
) -> std::result::Result<Option<(Boards, bool)>, Invalid<'a>> {
    if v.get() == "null" {
        return Ok(None);
    }
    let mut p = BoardsParse {
        rules,
        b: Vec::with_capacity(4),
        unknown: false,
        failed: None,
    };
    let mut de = serde_json::Deserializer::from_str(v.get());
    if serde::Deserializer::deserialize_seq(&mut de, &mut p).is_err() {
        return Err(p.failed.take().unwrap_or_else(|| Invalid {
            field: "".into(),
            reason: "expected an array of objects".into(),
        }));
    }
    let BoardsParse { b, unknown, .. } = p;
    Ok(Some((b, unknown)))
}

/// The boards array while it is being parsed.
struct BoardsParse<'r> {
    rules: &'r Rules,
    b: Boards,
    unknown: bool,
    failed: Option<Invalid<'static>>,
}

impl<'a> Visitor<'a> for &mut BoardsParse<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array of objects")
    }

    fn visit_seq<A: SeqAccess<'a>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        loop {
            let index = self.b.len();
            if index == self.rules.max_boards {
                if seq.next_element::<IgnoredAny>()?.is_some() {
                    self.failed = Some(Invalid {
                        field: "".into(),
                        reason: format!("more than {} items", self.rules.max_boards),
                    });
                    return Err(serde::de::Error::custom("boards refused"));
                }
                return Ok(());
            }
            match seq.next_element_seed(BoardSeed {
                parse: &mut *self,
                index,
            }) {
                Ok(Some(())) => {}
                Ok(None) => return Ok(()),
                Err(e) => {
                    if self.failed.is_none() {
                        self.failed = Some(Invalid {
                            field: format!("[{index}]").into(),
                            reason: "expected an object".into(),
                        });
                    }
                    return Err(e);
                }
            }
        }
    }
}

/// One board of the array.
struct BoardSeed<'p, 'r> {
    parse: &'p mut BoardsParse<'r>,
    index: usize,
}

impl<'a> serde::de::DeserializeSeed<'a> for BoardSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'a>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'a> Visitor<'a> for BoardSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a board object")
    }

    fn visit_map<M: MapAccess<'a>>(self, mut map: M) -> std::result::Result<(), M::Error> {
        let p = self.parse;
        let rules = p.rules;
        let temp = (rules.temperature_min_c, rules.temperature_max_c);
        let chips = (0, i16::MAX as i64);
        let (mut id, mut hashrate, mut t, mut ok, mut total) = (None, None, None, None, None);
        let mut seen = 0u8;
        while let Some(Key(key)) = map.next_key::<Key<'a>>()? {
            let bit = match key.as_ref() {
                "id" => 0,
                "hashrate" => 1,
                "temp" => 2,
                "chips_ok" => 3,
                "chips_total" => 4,
                _ => {
                    p.unknown = true;
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            let result = if seen & (1 << bit) != 0 {
                Err("duplicate key".to_string())
            } else {
                seen |= 1 << bit;
                let number = map
                    .next_value::<Option<serde_json::Number>>()
                    .map_err(|e| expected_number(&e.to_string()));
                number.and_then(|n| match bit {
                    0 => int_rule(n, chips).map(|x| id = x.map(i16c)),
                    1 => range_rule(n.and_then(|n| n.as_f64()), (0.0, rules.hashrate_max_ghs))
                        .map(|x| hashrate = x.map(f32c)),
                    2 => range_rule(n.and_then(|n| n.as_f64()), temp).map(|x| t = x.map(f32c)),
                    3 => int_rule(n, chips).map(|x| ok = x.map(i16c)),
                    _ => int_rule(n, chips).map(|x| total = x.map(i16c)),
                })
            };
            if let Err(reason) = result {
                p.failed = Some(Invalid {
                    field: format!("[{}].{key}", self.index).into(),
                    reason,
                });
                return Err(serde::de::Error::custom("board refused"));
            }
        }
        p.b.push(Board {
            id,
            hashrate,
            temp: t,
            chips_ok: ok,
            chips_total: total,
        });
        Ok(())
    }
}
