//! `adit load`: resolves or creates the collector keys, then hands over to
//! the load generator in `load-tests/`.

use anyhow::{bail, Context as _};

use adit_control::keys as auth;
use adit_load::LoadArgs;

use crate::{db, migrate};

pub async fn load(args: LoadArgs) -> anyhow::Result<()> {
    let client = match &args.database_url {
        Some(url) => {
            let mut client = db::connect(url).await?;
            migrate::migrate(&mut client).await?;
            Some(client)
        }
        None => None,
    };
    let mut sites = Vec::new();
    for (i, key) in args.keys.iter().enumerate() {
        let site = match &client {
            // The key's real site, so --verify looks in the right place.
            Some(c) => c
                .query_opt(
                    "SELECT site_id FROM collector_keys WHERE key_hash = $1 AND revoked_at IS NULL",
                    &[&&auth::hash_key(key)[..]],
                )
                .await?
                .and_then(|r| r.get::<_, Option<i32>>(0))
                .with_context(|| format!("key #{} is not an active collector key", i + 1))?,
            None => args.site_base + i as i32,
        };
        sites.push((site, key.clone()));
    }
    if let Some(n) = args.create_sites {
        let Some(c) = &client else {
            bail!("--create-sites needs DATABASE_URL")
        };
        let first: i32 = c
            .query_one(
                "SELECT coalesce(max(site_id) + 1, $1) FROM collector_keys",
                &[&args.site_base],
            )
            .await?
            .get(0);
        let first = first.max(args.site_base);
        for site in first..first + n as i32 {
            let (_, key) = auth::create_key(c, Some(site), Some("load-test")).await?;
            sites.push((site, key));
        }
        eprintln!(
            "Created {n} load-test keys for sites {first}..{}.",
            first + n as i32 - 1
        );
    }
    adit_load::run(args, sites).await
}
