//! Collector keys (`hsc_` + 40 base64url characters) and admin tokens
//! (`hsa_` + 40; tokens made before that prefix existed are `hsc_` too and
//! keep working), stored only as SHA-256 hashes in `collector_keys`, with
//! their first [`LISTED_PREFIX_CHARS`] characters so `adit keys list` can
//! show which key is which. `adit keys` administers them through this
//! module; the server looks them up through its key cache.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::TryRng as _;
use sha2::{Digest, Sha256};
use tokio_postgres::GenericClient;

/// Collector keys (and admin tokens made before [`ADMIN_PREFIX`]).
pub const KEY_PREFIX: &str = "hsc_";
/// Admin tokens made now.
pub const ADMIN_PREFIX: &str = "hsa_";
/// Random bytes per key: 30 bytes make exactly 40 base64url characters.
const KEY_RANDOM_BYTES: usize = 30;
/// Characters of a key stored and listed: its type prefix and 8 of its 40
/// random characters (48 bits; the other 192 stay secret).
pub const LISTED_PREFIX_CHARS: usize = 12;

/// A new random collector key.
pub fn generate_key() -> String {
    generate(KEY_PREFIX)
}

/// A new random admin token.
pub fn generate_admin_token() -> String {
    generate(ADMIN_PREFIX)
}

fn generate(prefix: &str) -> String {
    let mut bytes = [0u8; KEY_RANDOM_BYTES];
    // The OS source; it fails only on a broken OS.
    rand::rngs::SysRng
        .try_fill_bytes(&mut bytes)
        .expect("the OS random source");
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// True for strings shaped like a key or token (cheap pre-check before
/// hashing).
pub fn is_well_formed(key: &str) -> bool {
    key.len() == KEY_PREFIX.len() + 40
        && (key.starts_with(KEY_PREFIX) || key.starts_with(ADMIN_PREFIX))
        && key[KEY_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub fn hash_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The non-secret start of a key that `adit keys list` shows.
pub fn listed_prefix(key: &str) -> &str {
    key.get(..LISTED_PREFIX_CHARS).unwrap_or(key)
}

/// A key as `adit keys list` shows it.
#[derive(Debug, Clone)]
pub struct KeyRow {
    pub id: i32,
    pub site_id: Option<i32>,
    pub name: Option<String>,
    /// The key's first characters; `None` for keys made before migration 0009.
    pub key_prefix: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Stores a new key for `site_id` (or an admin token when `None`);
/// returns its id and the key, which is shown once and never stored.
pub async fn create_key(
    client: &impl GenericClient,
    site_id: Option<i32>,
    name: Option<&str>,
) -> Result<(i32, String), tokio_postgres::Error> {
    let key = match site_id {
        Some(_) => generate_key(),
        None => generate_admin_token(),
    };
    let row = client
        .query_one(
            "INSERT INTO collector_keys (key_hash, site_id, is_admin, name, key_prefix) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
            &[
                &&hash_key(&key)[..],
                &site_id,
                &site_id.is_none(),
                &name,
                &listed_prefix(&key),
            ],
        )
        .await?;
    Ok((row.get(0), key))
}

pub async fn list_keys(client: &impl GenericClient) -> Result<Vec<KeyRow>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT id, site_id, name, key_prefix, created_at, revoked_at \
             FROM collector_keys ORDER BY id",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| KeyRow {
            id: r.get(0),
            site_id: r.get(1),
            name: r.get(2),
            key_prefix: r.get(3),
            created_at: r.get(4),
            revoked_at: r.get(5),
        })
        .collect())
}

/// Sets a key's upload rate limit (None: the server default; 0: none);
/// false when no live key has that id.
pub async fn set_rate_limit(
    client: &impl GenericClient,
    id: i32,
    uploads_per_s: Option<f32>,
) -> Result<bool, tokio_postgres::Error> {
    let n = client
        .execute(
            "UPDATE collector_keys SET uploads_per_s = $2 WHERE id = $1 AND revoked_at IS NULL",
            &[&id, &uploads_per_s],
        )
        .await?;
    Ok(n == 1)
}

/// Revokes a key; false when no live key has that id.
pub async fn revoke_key(
    client: &impl GenericClient,
    id: i32,
) -> Result<bool, tokio_postgres::Error> {
    let n = client
        .execute(
            "UPDATE collector_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
            &[&id],
        )
        .await?;
    Ok(n == 1)
}

/// The id of the key `key` itself (found by its hash) and whether it is
/// already revoked; `None` when no key has that hash.
pub async fn find_key(
    client: &impl GenericClient,
    key: &str,
) -> Result<Option<(i32, bool)>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT id, revoked_at IS NOT NULL FROM collector_keys WHERE key_hash = $1",
            &[&&hash_key(key)[..]],
        )
        .await?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
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
    fn admin_tokens_have_their_own_prefix_and_old_ones_stay_well_formed() {
        let t = generate_admin_token();
        assert!(t.starts_with("hsa_") && is_well_formed(&t), "{t}");
        assert!(generate_key().starts_with("hsc_"));
        assert_eq!(listed_prefix(&t).len(), LISTED_PREFIX_CHARS);
        assert!(t.starts_with(listed_prefix(&t)));
        assert!(!is_well_formed(&format!("hsb_{}", "a".repeat(40))));
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
