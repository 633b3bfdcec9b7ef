//! `adit keys`: create, list and revoke collector keys and admin tokens.

use anyhow::bail;
use tokio_postgres::Client;

use adit_ingest::auth;

/// Creates a key and prints it alone on the last line of stdout.
pub async fn create(client: &Client, site: Option<i32>, name: Option<&str>) -> anyhow::Result<()> {
    let (id, key) = auth::create_key(client, site, name).await?;
    match site {
        Some(site) => {
            eprintln!("Created collector key {id} for site {site}. It is shown once; store it now.")
        }
        None => eprintln!("Created admin token {id}. It is shown once; store it now."),
    }
    println!("{key}");
    Ok(())
}

/// One line per key, starting with its id.
pub async fn list(client: &Client) -> anyhow::Result<()> {
    for k in auth::list_keys(client).await? {
        let scope = match k.site_id {
            Some(site) => format!("site={site}"),
            None => "admin".to_string(),
        };
        let status = match k.revoked_at {
            Some(at) => format!("revoked={}", at.format("%Y-%m-%dT%H:%M:%SZ")),
            None => "active".to_string(),
        };
        println!(
            "{}\t{scope}\t{status}\tcreated={}\tname={}",
            k.id,
            k.created_at.format("%Y-%m-%dT%H:%M:%SZ"),
            k.name.as_deref().unwrap_or("")
        );
    }
    Ok(())
}

pub async fn set_rate(client: &Client, id: i32, uploads_per_s: Option<f32>) -> anyhow::Result<()> {
    if !auth::set_rate_limit(client, id, uploads_per_s).await? {
        bail!("no active key with id {id} (see `adit keys list`)");
    }
    match uploads_per_s {
        Some(r) => eprintln!("Key {id}: at most {r} uploads/s (0 = unlimited)."),
        None => eprintln!("Key {id}: the server's default rate limit."),
    }
    Ok(())
}

pub async fn revoke(client: &Client, id: i32) -> anyhow::Result<()> {
    if !auth::revoke_key(client, id).await? {
        bail!("no active key with id {id} (see `adit keys list`)");
    }
    eprintln!("Revoked key {id}; servers stop accepting it within their key cache TTL.");
    Ok(())
}
