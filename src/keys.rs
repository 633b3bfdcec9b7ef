//! `adit keys`: create, list and revoke collector keys and admin tokens.

use std::str::FromStr;

use anyhow::bail;
use tokio_postgres::Client;

use adit_control::keys as auth;

/// Which key `adit keys revoke` means: its numeric id, or the key itself
/// (found by its hash, so someone holding only the key can revoke it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRef {
    Id(i32),
    Key(String),
}

impl FromStr for KeyRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Ok(id) = s.parse::<i32>() {
            return Ok(Self::Id(id));
        }
        if auth::is_well_formed(s) {
            return Ok(Self::Key(s.to_string()));
        }
        Err(format!(
            "expected a key id (the first column of `adit keys list`) or the key itself \
             ({}… or {}… and 40 characters)",
            auth::KEY_PREFIX,
            auth::ADMIN_PREFIX
        ))
    }
}

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

/// One line per key, starting with its id; `key=` shows the key's first
/// characters (empty for keys made before they were stored).
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
        let prefix = k.key_prefix.map(|p| format!("{p}…")).unwrap_or_default();
        println!(
            "{}\t{scope}\tkey={prefix}\t{status}\tcreated={}\tname={}",
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

pub async fn revoke(client: &Client, which: KeyRef) -> anyhow::Result<()> {
    let id = match which {
        KeyRef::Id(id) => id,
        KeyRef::Key(key) => match auth::find_key(client, &key).await? {
            Some((id, false)) => id,
            Some((id, true)) => bail!("key {id} is already revoked"),
            None => bail!("no key matches the key given (was it made on another database?)"),
        },
    };
    if !auth::revoke_key(client, id).await? {
        bail!("no active key with id {id} (see `adit keys list`)");
    }
    eprintln!("Revoked key {id}; servers stop accepting it within their key cache TTL.");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoke_takes_an_id_or_the_key_itself() {
        assert_eq!("12".parse::<KeyRef>(), Ok(KeyRef::Id(12)));
        let key = auth::generate_key();
        assert_eq!(key.parse::<KeyRef>(), Ok(KeyRef::Key(key.clone())));
        let token = auth::generate_admin_token();
        assert_eq!(token.parse::<KeyRef>(), Ok(KeyRef::Key(token.clone())));
        let err = "hsc_short".parse::<KeyRef>().unwrap_err();
        assert!(err.contains("key id"), "{err}");
    }
}
