//! One row: its members read into the declared columns' cells (duplicate
//! members refused, unknown ones kept for `extra`), then the row's own
//! rules: required columns, the time window, the declaration's checks.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;

use adit_types::dataset::{interval_micros, Check, ColumnType};
use adit_types::json::{unstorable_json, JsonStr};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::value::{cell, Cell};
use crate::declared::Declared;

/// Why a row is refused: the field and the reason.
pub(crate) type Invalid = (String, String);

/// An object's members in order, names borrowed from the body.
pub(crate) struct Members<'a>(pub(crate) Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for Members<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Members<'de>, M::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some(JsonStr(k)) = map.next_key::<JsonStr<'de>>()? {
                    out.push((k, map.next_value::<&'de RawValue>()?));
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// The time window a row's time must fall in, Unix microseconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    pub(crate) earliest: i64,
    pub(crate) latest: i64,
}

/// A row's cells, reused from row to row.
#[derive(Debug)]
pub(crate) struct Scratch<'a> {
    pub(crate) cells: Vec<Cell<'a>>,
    /// The row number that last set each cell (duplicates are refused).
    stamps: Vec<u32>,
    pub(crate) extra: Vec<(Cow<'a, str>, &'a RawValue)>,
}

impl<'a> Scratch<'a> {
    pub(crate) fn new(columns: usize) -> Self {
        Self {
            cells: vec![Cell::Null; columns],
            stamps: vec![u32::MAX; columns],
            extra: Vec::new(),
        }
    }

    /// Reads row `index` (raw JSON text) into the cells, or says why it is
    /// refused.
    pub(crate) fn read(
        &mut self,
        d: &Declared,
        window: Window,
        index: u32,
        raw: &'a str,
    ) -> Result<(), Invalid> {
        let row = || "row".to_string();
        if !raw.starts_with('{') {
            return Err((row(), "expected a JSON object".into()));
        }
        let members: Members<'a> =
            serde_json::from_str(raw).map_err(|e| (row(), format!("not a JSON object: {e}")))?;
        self.cells.iter_mut().for_each(|c| *c = Cell::Null);
        self.extra.clear();
        let columns = &d.dataset().columns;
        // Members mostly come in declaration order: try the column after
        // the last one matched before looking the name up.
        let mut next = 0;
        for (name, value) in members.0 {
            let at = match columns.get(next) {
                Some(c) if c.name == name => Some(next),
                _ => d.column_index(&name),
            };
            match at {
                Some(i) => {
                    if self.stamps[i] == index {
                        return Err((name.into_owned(), "duplicate member".into()));
                    }
                    self.stamps[i] = index;
                    next = i + 1;
                    self.cells[i] =
                        cell(&columns[i], value.get()).map_err(|r| (name.to_string(), r))?;
                }
                None => {
                    let field = || shown(&name);
                    if name.contains('\0') {
                        return Err((field(), "a member name contains \\u0000".into()));
                    }
                    if self.extra.iter().any(|(k, _)| *k == name) {
                        return Err((field(), "duplicate member".into()));
                    }
                    if let Some(reason) = unstorable_json(value.get().as_bytes()) {
                        return Err((field(), reason));
                    }
                    self.extra.push((name, value));
                }
            }
        }
        for (c, cell) in columns.iter().zip(&self.cells) {
            if c.required && *cell == Cell::Null {
                return Err((c.name.clone(), "required".into()));
            }
        }
        self.check_time(d, window)?;
        d.dataset()
            .checks
            .iter()
            .try_for_each(|rule| self.check_rule(d, rule))
    }

    fn check_time(&self, d: &Declared, w: Window) -> Result<(), Invalid> {
        let ds = d.dataset();
        let i = d.column_index(&ds.time_column).expect("checked on load");
        let Cell::Time(t) = self.cells[i] else {
            return Ok(());
        };
        if t > w.latest {
            return Err((ds.time_column.clone(), "too far in the future".into()));
        }
        if t < w.earliest {
            return Err((
                ds.time_column.clone(),
                format!("older than the dataset's retention ({})", ds.retention),
            ));
        }
        Ok(())
    }

    fn check_rule(&self, d: &Declared, rule: &Check) -> Result<(), Invalid> {
        let ds = d.dataset();
        let at = |name: &str| d.column_index(name).expect("checked on load");
        let number = |name: &str| -> Option<f64> {
            let i = at(name);
            self.cells[i].number(ds.columns[i].ty)
        };
        match rule {
            Check::NotLess { column, than } | Check::NotGreater { column, than } => {
                let less = matches!(rule, Check::NotLess { .. });
                let Some(x) = number(column) else {
                    return Ok(());
                };
                for other in than {
                    let Some(y) = number(other) else { continue };
                    let order = self
                        .exact_order(d, column, other)
                        .unwrap_or_else(|| x.partial_cmp(&y).unwrap_or(Ordering::Equal));
                    let ok = if less {
                        order != Ordering::Less
                    } else {
                        order != Ordering::Greater
                    };
                    if !ok {
                        let (word, op) = if less { ("below", "<") } else { ("above", ">") };
                        return Err((
                            column.clone(),
                            format!("{column} {x} is {word} {other} {y} ({column} {op} {other})"),
                        ));
                    }
                }
                Ok(())
            }
            Check::AlignedTo {
                column,
                interval_column,
            } => {
                let (Cell::Time(t), Cell::Text(iv)) =
                    (&self.cells[at(column)], &self.cells[at(interval_column)])
                else {
                    return Ok(());
                };
                match interval_micros(iv) {
                    Some(step) if t.rem_euclid(step) == 0 => Ok(()),
                    Some(_) => Err((
                        column.clone(),
                        format!("not aligned to its {interval_column} {iv}"),
                    )),
                    None => Err((
                        interval_column.clone(),
                        format!("{iv:?} is not an interval"),
                    )),
                }
            }
        }
    }

    /// `column` against `other` exactly when both are numerics of one
    /// scale or both integers (floats are exact enough otherwise).
    fn exact_order(&self, d: &Declared, column: &str, other: &str) -> Option<Ordering> {
        let ds = d.dataset();
        let (i, j) = (d.column_index(column)?, d.column_index(other)?);
        let same_scale = matches!(
            (ds.columns[i].ty, ds.columns[j].ty),
            (ColumnType::Numeric { scale: a, .. }, ColumnType::Numeric { scale: b, .. }) if a == b
        );
        match (&self.cells[i], &self.cells[j]) {
            (Cell::Numeric(x), Cell::Numeric(y)) if same_scale => Some(x.cmp(y)),
            (Cell::Int(x), Cell::Int(y)) => Some(x.cmp(y)),
            _ => None,
        }
    }

    /// The `extra` object: the unknown members as they came, or `None`.
    pub(crate) fn extra_json(&self, out: &mut String) -> bool {
        if self.extra.is_empty() {
            return false;
        }
        out.clear();
        out.push('{');
        for (i, (k, v)) in self.extra.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            adit_types::push_json_string(out, k);
            out.push(':');
            out.push_str(v.get());
        }
        out.push('}');
        true
    }
}

/// Longest member name echoed back in a row error.
const MAX_FIELD_NAME_CHARS: usize = 128;

/// A member name made safe to echo and store: control characters escaped,
/// cut at [`MAX_FIELD_NAME_CHARS`].
fn shown(name: &str) -> String {
    let escaped: String = name.chars().flat_map(char::escape_default).collect();
    let escaped = if name.chars().any(char::is_control) {
        escaped
    } else {
        name.to_string()
    };
    match escaped.char_indices().nth(MAX_FIELD_NAME_CHARS) {
        Some((at, _)) => format!("{}…", &escaped[..at]),
        None => escaped,
    }
}
