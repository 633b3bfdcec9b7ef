//! `--verify`: the rows PostgreSQL gained for each site during the run must
//! be exactly the rows the server acknowledged — same count, same checksum
//! (sum of `accepted_shares`) — so nothing acknowledged is missing and
//! nothing is there twice.

use std::collections::HashMap;

use anyhow::Context as _;
use tokio_postgres::{Client, NoTls};

use crate::runner::Acked;

pub async fn connect(url: &str) -> anyhow::Result<Client> {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .context("--verify cannot connect to DATABASE_URL")?;
    tokio::spawn(conn);
    Ok(client)
}

/// Rows and checksum per site, now.
pub async fn snapshot(client: &Client, sites: &[i32]) -> anyhow::Result<HashMap<i32, Acked>> {
    let rows = client
        .query(
            "SELECT site_id, count(*), coalesce(sum(accepted_shares), 0)::int8 \
             FROM miner_telemetry WHERE site_id = ANY($1) GROUP BY site_id",
            &[&sites],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                r.get(0),
                Acked {
                    rows: r.get(1),
                    accepted_sum: r.get(2),
                },
            )
        })
        .collect())
}

/// Compares what each site gained with what was acknowledged; prints one
/// line per site and returns whether all match.
pub fn compare(
    sites: &[i32],
    before: &HashMap<i32, Acked>,
    after: &HashMap<i32, Acked>,
    acked: &HashMap<i32, Acked>,
) -> bool {
    let mut all_ok = true;
    for site in sites {
        let b = before.get(site).copied().unwrap_or_default();
        let a = after.get(site).copied().unwrap_or_default();
        let gained = Acked {
            rows: a.rows - b.rows,
            accepted_sum: a.accepted_sum - b.accepted_sum,
        };
        let want = acked.get(site).copied().unwrap_or_default();
        let ok = gained == want;
        all_ok &= ok;
        println!(
            "  verify site {site}: acked {} rows (checksum {}), database gained {} rows (checksum {}) {}",
            want.rows,
            want.accepted_sum,
            gained.rows,
            gained.accepted_sum,
            if ok { "OK" } else { "MISMATCH" }
        );
    }
    all_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duplicate_or_a_loss_is_a_mismatch() {
        let acked = HashMap::from([(
            1,
            Acked {
                rows: 10,
                accepted_sum: 100,
            },
        )]);
        let before = HashMap::from([(
            1,
            Acked {
                rows: 5,
                accepted_sum: 7,
            },
        )]);
        let exact = HashMap::from([(
            1,
            Acked {
                rows: 15,
                accepted_sum: 107,
            },
        )]);
        let doubled = HashMap::from([(
            1,
            Acked {
                rows: 25,
                accepted_sum: 207,
            },
        )]);
        let lost = HashMap::from([(
            1,
            Acked {
                rows: 14,
                accepted_sum: 100,
            },
        )]);
        assert!(compare(&[1], &before, &exact, &acked));
        assert!(!compare(&[1], &before, &doubled, &acked));
        assert!(!compare(&[1], &before, &lost, &acked));
    }
}
