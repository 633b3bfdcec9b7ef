//! Collector keys and admin tokens: `hsc_` + 40 base64url characters,
//! stored only as SHA-256 hashes in `collector_keys`. Lookups go through a
//! small cache whose entries (found or not) live `ttl`, so a revoked key
//! stops working within that time and a flood of bad keys costs one query
//! per distinct key per `ttl`.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio_postgres::GenericClient;

use crate::Result;

pub const KEY_PREFIX: &str = "hsc_";
/// Random bytes per key: 30 bytes make exactly 40 base64url characters.
const KEY_RANDOM_BYTES: usize = 30;
/// Entries the cache holds before it starts over (bounds memory under a
/// flood of invalid keys).
const CACHE_MAX_ENTRIES: usize = 100_000;

/// A new random key.
pub fn generate_key() -> String {
    let mut bytes = [0u8; KEY_RANDOM_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// True for strings shaped like a key (cheap pre-check before hashing).
pub fn is_well_formed(key: &str) -> bool {
    key.len() == KEY_PREFIX.len() + 40
        && key.starts_with(KEY_PREFIX)
        && key[KEY_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub fn hash_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// What a valid key may do.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KeyInfo {
    pub id: i32,
    /// The site a collector key writes for; `None` for admin tokens.
    pub site_id: Option<i32>,
    /// This key's upload rate limit; `None`: the server's default.
    pub uploads_per_s: Option<f32>,
}

impl KeyInfo {
    pub fn is_admin(&self) -> bool {
        self.site_id.is_none()
    }
}

/// A key as `adit keys list` shows it.
#[derive(Debug, Clone)]
pub struct KeyRow {
    pub id: i32,
    pub site_id: Option<i32>,
    pub name: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Stores a new key for `site_id` (or an admin token when `None`);
/// returns its id and the key, which is shown once and never stored.
pub async fn create_key(
    client: &impl GenericClient,
    site_id: Option<i32>,
    name: Option<&str>,
) -> Result<(i32, String)> {
    let key = generate_key();
    let row = client
        .query_one(
            "INSERT INTO collector_keys (key_hash, site_id, is_admin, name) \
             VALUES ($1, $2, $3, $4) RETURNING id",
            &[&&hash_key(&key)[..], &site_id, &site_id.is_none(), &name],
        )
        .await?;
    Ok((row.get(0), key))
}

pub async fn list_keys(client: &impl GenericClient) -> Result<Vec<KeyRow>> {
    let rows = client
        .query(
            "SELECT id, site_id, name, created_at, revoked_at FROM collector_keys ORDER BY id",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| KeyRow {
            id: r.get(0),
            site_id: r.get(1),
            name: r.get(2),
            created_at: r.get(3),
            revoked_at: r.get(4),
        })
        .collect())
}

/// Sets a key's upload rate limit (None: the server default; 0: none);
/// false when no live key has that id.
pub async fn set_rate_limit(
    client: &impl GenericClient,
    id: i32,
    uploads_per_s: Option<f32>,
) -> Result<bool> {
    let n = client
        .execute(
            "UPDATE collector_keys SET uploads_per_s = $2 WHERE id = $1 AND revoked_at IS NULL",
            &[&id, &uploads_per_s],
        )
        .await?;
    Ok(n == 1)
}

/// Revokes a key; false when no live key has that id.
pub async fn revoke_key(client: &impl GenericClient, id: i32) -> Result<bool> {
    let n = client
        .execute(
            "UPDATE collector_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
            &[&id],
        )
        .await?;
    Ok(n == 1)
}

/// Cached key lookups.
#[derive(Debug)]
pub struct KeyCache {
    pool: deadpool_postgres::Pool,
    ttl: Duration,
    entries: RwLock<HashMap<[u8; 32], Cached>>,
}

/// A lookup result (found or not) and when it was made.
type Cached = (Option<KeyInfo>, Instant);

impl KeyCache {
    pub fn new(pool: deadpool_postgres::Pool, ttl: Duration) -> Self {
        Self {
            pool,
            ttl,
            entries: RwLock::new(HashMap::new()),
        }
    }

    /// The live key behind `key`, if any. The key itself is never compared
    /// or logged: only its SHA-256 is looked up (in the cache, then by the
    /// unique index), so lookup timing reveals nothing usable about a key.
    pub async fn lookup(&self, key: &str) -> Result<Option<KeyInfo>> {
        if !is_well_formed(key) {
            return Ok(None);
        }
        let hash = hash_key(key);
        let now = Instant::now();
        if let Some((info, at)) = self.entries.read().expect("key cache lock").get(&hash) {
            if now.duration_since(*at) < self.ttl {
                return Ok(*info);
            }
        }
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "SELECT id, site_id, uploads_per_s FROM collector_keys \
                 WHERE key_hash = $1 AND revoked_at IS NULL",
                &[&&hash[..]],
            )
            .await?;
        let info = row.map(|r| KeyInfo {
            id: r.get(0),
            site_id: r.get(1),
            uploads_per_s: r.get(2),
        });
        let mut entries = self.entries.write().expect("key cache lock");
        if entries.len() >= CACHE_MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(hash, (info, now));
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_well_formed_and_distinct() {
        let a = generate_key();
        let b = generate_key();
        assert!(is_well_formed(&a), "{a}");
        assert_eq!(a.len(), 44);
        assert_ne!(a, b);
        assert_ne!(hash_key(&a), hash_key(&b));
    }

    #[test]
    fn malformed_keys_are_spotted_without_a_lookup() {
        assert!(!is_well_formed(""));
        assert!(!is_well_formed("hsc_short"));
        assert!(!is_well_formed(&format!("xyz_{}", "a".repeat(40))));
        assert!(!is_well_formed(&format!("hsc_{}", "a/".repeat(20))));
        assert!(is_well_formed(&format!("hsc_{}", "a-_B".repeat(10))));
    }
}
