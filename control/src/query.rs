//! The query string of a control-plane request and what listings build
//! from it: typed parameters ([`Query`]), pages ([`Page`]) and a WHERE
//! clause with numbered parameters ([`Filter`]), run by [`page`].

use chrono::{DateTime, Utc};
use tokio_postgres::types::ToSql;

use crate::{ControlError, Result};

/// A URL query string, decoded as HTML forms are (`form_urlencoded`: `+`
/// is a space, a `%` not followed by two hex digits stays as it is).
#[derive(Debug, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    /// Decodes `q`; a NUL character in a name or value is refused (it
    /// would reach a `text` filter, which PostgreSQL refuses).
    pub fn parse(q: Option<&str>) -> Result<Self> {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(q.unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        for (k, v) in &pairs {
            crate::storable::text("query", k)?;
            crate::storable::text(k, v)?;
        }
        Ok(Self(pairs))
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    pub fn int(&self, key: &str) -> Result<Option<i64>> {
        self.get(key)
            .map(|v| {
                v.parse()
                    .map_err(|_| ControlError::bad(key, format!("{v:?} is not an integer")))
            })
            .transpose()
    }

    /// A site id: a 32-bit integer (a larger one is refused, never wrapped).
    pub fn site(&self, key: &str) -> Result<Option<i32>> {
        self.int(key)?
            .map(|v| {
                i32::try_from(v).map_err(|_| {
                    ControlError::bad(key, format!("{v} is outside the site id range"))
                })
            })
            .transpose()
    }

    pub fn time(&self, key: &str) -> Result<Option<DateTime<Utc>>> {
        self.get(key)
            .map(|v| {
                DateTime::parse_from_rfc3339(v)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|_| ControlError::bad(key, format!("{v:?} is not an RFC 3339 time")))
            })
            .transpose()
    }

    /// `page` (from 1) and `per_page` (1-500, default 50), as the page and
    /// the row offset it starts at.
    pub fn page(&self) -> Result<Page> {
        let page = self.int("page")?.unwrap_or(1);
        let per_page = self.int("per_page")?.unwrap_or(50);
        if page < 1 {
            return Err(ControlError::bad("page", "starts at 1"));
        }
        if !(1..=500).contains(&per_page) {
            return Err(ControlError::bad("per_page", "must be 1-500"));
        }
        let offset = (page - 1).checked_mul(per_page).ok_or_else(|| {
            ControlError::bad(
                "page",
                format!("{page} is too large for per_page {per_page}"),
            )
        })?;
        Ok(Page {
            page,
            per_page,
            offset,
        })
    }
}

/// One page of a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub page: i64,
    pub per_page: i64,
    /// Rows before it: `(page - 1) * per_page`, known not to overflow.
    pub offset: i64,
}

/// A WHERE clause built from optional filters, with numbered parameters.
#[derive(Default)]
pub struct Filter {
    clauses: Vec<String>,
    values: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(&self.clauses).finish()
    }
}

impl Filter {
    /// Adds `<left> $n` (e.g. `"site_id = "`) with its value.
    pub fn push(&mut self, left: &str, value: impl ToSql + Sync + Send + 'static) {
        self.push_around(left, value, "");
    }

    /// Adds `<left> $n <right>`.
    pub fn push_around(
        &mut self,
        left: &str,
        value: impl ToSql + Sync + Send + 'static,
        right: &str,
    ) {
        self.values.push(Box::new(value));
        self.clauses
            .push(format!("{left}${}{right}", self.values.len()));
    }

    /// A clause with no parameter.
    pub fn raw(&mut self, clause: &str) {
        self.clauses.push(clause.to_string());
    }

    pub fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.clauses.join(" AND "))
        }
    }

    pub fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.values
            .iter()
            .map(|v| v.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

/// One page of `SELECT <select> FROM <from> <filter> ORDER BY <order>`
/// and the count of all matching rows.
pub(crate) async fn page(
    client: &tokio_postgres::Client,
    select: &str,
    from: &str,
    f: &Filter,
    order: &str,
    p: Page,
) -> Result<(i64, Vec<tokio_postgres::Row>)> {
    let (filter, params) = (f.sql(), f.params());
    let total: i64 = client
        .query_one(&format!("SELECT count(*) FROM {from} {filter}"), &params)
        .await?
        .get(0);
    let rows = client
        .query(
            &format!(
                "SELECT {select} FROM {from} {filter} ORDER BY {order} \
                 LIMIT {} OFFSET {}",
                p.per_page, p.offset
            ),
            &params,
        )
        .await?;
    Ok((total, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_percent_decoded() {
        let q = Query::parse(Some("miner_id=a%2Fb+c&page=2&empty=&x=%zz")).unwrap();
        assert_eq!(q.get("miner_id"), Some("a/b c"));
        assert_eq!(q.int("page").unwrap(), Some(2));
        assert_eq!(q.get("empty"), None);
        assert_eq!(q.get("x"), Some("%zz"));
        let parse = |s| Query::parse(Some(s)).unwrap();
        assert!(parse("page=x").int("page").is_err());
        assert!(parse("per_page=501").page().is_err());
        // A sign is not a hex digit (`%+f` was byte 0x0f).
        assert_eq!(parse("m=%+f").get("m"), Some("% f"));
        assert_eq!(parse("m=%-1").get("m"), Some("%-1"));
        // A NUL would reach a text filter.
        assert!(matches!(
            Query::parse(Some("miner_id=a%00")),
            Err(ControlError::Unstorable { .. })
        ));
    }

    #[test]
    fn pages_and_site_ids_never_wrap() {
        let parse = |s| Query::parse(Some(s)).unwrap();
        assert_eq!(
            parse("page=3&per_page=10").page().unwrap(),
            Page {
                page: 3,
                per_page: 10,
                offset: 20
            }
        );
        assert!(parse("page=9223372036854775807&per_page=500")
            .page()
            .is_err());
        assert!(parse("page=18446744073709551617").page().is_err());
        assert_eq!(parse("site_id=7").site("site_id").unwrap(), Some(7));
        assert!(parse("site_id=4294967297").site("site_id").is_err());
        assert!(parse("site_id=-2147483649").site("site_id").is_err());
    }
}
