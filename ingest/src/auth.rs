//! Collector keys (`hsc_` + 40 base64url characters) and admin tokens
//! (`hsa_` + 40; tokens made before that prefix existed are `hsc_` too and
//! keep working), stored only as SHA-256 hashes in `collector_keys`, with
//! their first [`LISTED_PREFIX_CHARS`] characters so `adit keys list` can
//! show which key is which.
//!
//! Lookups go through [`KeyCache`]: keys that exist are kept `ttl` (a
//! revoked key stops working within that time) in a map only real keys can
//! enter, so a flood of random keys never evicts them; unknown keys are
//! remembered for a short time in a separate bounded map. Lookups of keys
//! the cache does not know take one of a few permits (half the pool), and
//! every wait for a connection is bounded: when the pool stays busy the
//! answer is 503 `database_busy` instead of an unbounded queue.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::TryRng as _;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use tokio_postgres::GenericClient;

use crate::{Error, Result};

/// Collector keys (and admin tokens made before [`ADMIN_PREFIX`]).
pub const KEY_PREFIX: &str = "hsc_";
/// Admin tokens made now.
pub const ADMIN_PREFIX: &str = "hsa_";
/// Random bytes per key: 30 bytes make exactly 40 base64url characters.
const KEY_RANDOM_BYTES: usize = 30;
/// Characters of a key stored and listed: its type prefix and 8 of its 40
/// random characters (48 bits; the other 192 stay secret).
pub const LISTED_PREFIX_CHARS: usize = 12;
/// How long a lookup waits for a pooled connection before answering 503.
pub const POOL_WAIT: Duration = Duration::from_secs(1);

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
    // The OS source, as before; it fails only on a broken OS (rand 0.8 panicked there too).
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
) -> Result<(i32, String)> {
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

pub async fn list_keys(client: &impl GenericClient) -> Result<Vec<KeyRow>> {
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

/// The id of the key `key` itself (found by its hash) and whether it is
/// already revoked; `None` when no key has that hash.
pub async fn find_key(client: &impl GenericClient, key: &str) -> Result<Option<(i32, bool)>> {
    let row = client
        .query_opt(
            "SELECT id, revoked_at IS NOT NULL FROM collector_keys WHERE key_hash = $1",
            &[&&hash_key(key)[..]],
        )
        .await?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}

/// A pooled connection, waiting at most `wait` for a busy pool to free
/// one (opening a new one keeps the pool's own, longer create timeout:
/// under load a connect takes seconds, which is not a queue).
pub async fn pooled(
    pool: &deadpool_postgres::Pool,
    wait: Duration,
) -> Result<deadpool_postgres::Object> {
    let timeouts = deadpool_postgres::Timeouts {
        wait: Some(wait),
        ..pool.timeouts()
    };
    match pool.timeout_get(&timeouts).await {
        Ok(client) => Ok(client),
        Err(deadpool_postgres::PoolError::Timeout(_)) => Err(Error::DatabaseBusy {
            waited_ms: wait.as_millis() as u64,
        }),
        Err(e) => Err(e.into()),
    }
}

/// Sizes and times of a [`KeyCache`].
#[derive(Debug, Clone)]
pub struct KeyCacheConfig {
    /// How long a found key is trusted before it is looked up again.
    pub ttl: Duration,
    /// How long an unknown key is remembered as unknown.
    pub negative_ttl: Duration,
    /// Real keys kept (all of them, in any ordinary deployment).
    pub max_keys: usize,
    /// Unknown keys remembered; past it the oldest are forgotten.
    pub max_unknown: usize,
    /// Concurrent lookups of keys the cache does not know; `None`: half
    /// the pool (at least one).
    pub unknown_lookups: Option<usize>,
    /// How long a lookup waits for a permit or a connection.
    pub pool_wait: Duration,
}

impl KeyCacheConfig {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            negative_ttl: ttl.min(Duration::from_secs(1)),
            max_keys: 100_000,
            max_unknown: 10_000,
            unknown_lookups: None,
            pool_wait: POOL_WAIT,
        }
    }
}

/// Cached key lookups.
#[derive(Debug)]
pub struct KeyCache {
    pool: deadpool_postgres::Pool,
    config: KeyCacheConfig,
    entries: RwLock<Entries>,
    /// Bounds the connections lookups of unknown keys may hold, so a flood
    /// of random keys leaves the pool to real work.
    unknown_permits: Semaphore,
    queries: AtomicU64,
}

impl KeyCache {
    pub fn new(pool: deadpool_postgres::Pool, ttl: Duration) -> Self {
        Self::with_config(pool, KeyCacheConfig::new(ttl))
    }

    pub fn with_config(pool: deadpool_postgres::Pool, config: KeyCacheConfig) -> Self {
        let permits = config
            .unknown_lookups
            .unwrap_or(pool.status().max_size / 2)
            .max(1);
        Self {
            entries: RwLock::new(Entries::new(config.max_keys, config.max_unknown)),
            unknown_permits: Semaphore::new(permits),
            pool,
            config,
            queries: AtomicU64::new(0),
        }
    }

    /// Database lookups made so far (cache misses).
    pub fn queries(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }

    /// The pool this cache looks keys up in.
    pub fn pool(&self) -> &deadpool_postgres::Pool {
        &self.pool
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
        let known = match self
            .entries
            .read()
            .expect("key cache lock")
            .get(&hash, now, &self.config)
        {
            Hit::Fresh(info) => return Ok(info),
            Hit::Stale => true,
            Hit::None => false,
        };
        // A key seen before is looked up again without a permit: there
        // are only as many of those as real keys.
        let _permit = if known {
            None
        } else {
            let permit =
                tokio::time::timeout(self.config.pool_wait, self.unknown_permits.acquire()).await;
            match permit {
                Ok(p) => Some(p.expect("the semaphore is never closed")),
                Err(_) => {
                    return Err(Error::DatabaseBusy {
                        waited_ms: self.config.pool_wait.as_millis() as u64,
                    })
                }
            }
        };
        let client = pooled(&self.pool, self.config.pool_wait).await?;
        self.queries.fetch_add(1, Ordering::Relaxed);
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
        self.entries.write().expect("key cache lock").insert(
            hash,
            info,
            Instant::now(),
            &self.config,
        );
        Ok(info)
    }
}

/// What the cache knows about a key.
#[derive(Debug, PartialEq)]
enum Hit {
    /// Looked up within its time to live: the answer.
    Fresh(Option<KeyInfo>),
    /// A real key whose entry has expired: look it up again.
    Stale,
    None,
}

/// The two maps: real keys, and keys found not to exist. Only a lookup
/// that finds a live key adds to the first, so unknown keys never evict
/// real ones.
#[derive(Debug)]
struct Entries {
    found: HashMap<[u8; 32], (KeyInfo, Instant)>,
    unknown: HashMap<[u8; 32], Instant>,
    max_found: usize,
    max_unknown: usize,
}

impl Entries {
    fn new(max_found: usize, max_unknown: usize) -> Self {
        Self {
            found: HashMap::new(),
            unknown: HashMap::new(),
            max_found: max_found.max(1),
            max_unknown: max_unknown.max(1),
        }
    }

    fn get(&self, hash: &[u8; 32], now: Instant, c: &KeyCacheConfig) -> Hit {
        if let Some((info, at)) = self.found.get(hash) {
            if now.duration_since(*at) < c.ttl {
                return Hit::Fresh(Some(*info));
            }
            return Hit::Stale;
        }
        match self.unknown.get(hash) {
            Some(at) if now.duration_since(*at) < c.negative_ttl => Hit::Fresh(None),
            _ => Hit::None,
        }
    }

    fn insert(&mut self, hash: [u8; 32], info: Option<KeyInfo>, now: Instant, c: &KeyCacheConfig) {
        match info {
            Some(info) => {
                self.unknown.remove(&hash);
                if self.found.len() >= self.max_found && !self.found.contains_key(&hash) {
                    self.found
                        .retain(|_, (_, at)| now.duration_since(*at) < c.ttl);
                    if self.found.len() >= self.max_found {
                        // Every entry is in use: the one looked up longest
                        // ago goes (a rare scan; only real keys are here).
                        let oldest = self.found.iter().min_by_key(|(_, (_, at))| *at);
                        if let Some((&h, _)) = oldest {
                            self.found.remove(&h);
                        }
                    }
                }
                self.found.insert(hash, (info, now));
            }
            None => {
                // Revoked (or never there): forget it as a real key.
                self.found.remove(&hash);
                if self.unknown.len() >= self.max_unknown {
                    self.unknown
                        .retain(|_, at| now.duration_since(*at) < c.negative_ttl);
                    if self.unknown.len() >= self.max_unknown {
                        self.unknown.clear();
                    }
                }
                self.unknown.insert(hash, now);
            }
        }
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
    fn admin_tokens_have_their_own_prefix_and_old_ones_stay_well_formed() {
        let t = generate_admin_token();
        assert!(t.starts_with("hsa_") && is_well_formed(&t), "{t}");
        assert!(generate_key().starts_with("hsc_"));
        assert_eq!(listed_prefix(&t).len(), LISTED_PREFIX_CHARS);
        assert!(t.starts_with(listed_prefix(&t)));
        assert!(!is_well_formed(&format!("hsb_{}", "a".repeat(40))));
    }

    fn info(id: i32) -> Option<KeyInfo> {
        Some(KeyInfo {
            id,
            site_id: Some(1),
            uploads_per_s: None,
        })
    }

    fn hash_of(i: u64) -> [u8; 32] {
        hash_key(&i.to_string())
    }

    /// A flood of unknown keys never evicts a real one, and stays bounded.
    #[test]
    fn unknown_keys_never_evict_real_ones() {
        let c = KeyCacheConfig {
            max_unknown: 1_000,
            ..KeyCacheConfig::new(Duration::from_secs(60))
        };
        let mut e = Entries::new(c.max_keys, c.max_unknown);
        let t0 = Instant::now();
        let real = hash_key("real");
        e.insert(real, info(7), t0, &c);
        for i in 0..250_000 {
            e.insert(hash_of(i), None, t0, &c);
            assert!(e.unknown.len() <= 1_000);
        }
        assert_eq!(e.get(&real, t0, &c), Hit::Fresh(info(7)));
        assert_eq!(e.get(&hash_of(249_999), t0, &c), Hit::Fresh(None));
        // Unknown keys are remembered only briefly; real ones for the ttl.
        let later = t0 + Duration::from_secs(2);
        assert_eq!(e.get(&hash_of(249_999), later, &c), Hit::None);
        assert_eq!(e.get(&real, later, &c), Hit::Fresh(info(7)));
        assert_eq!(e.get(&real, t0 + Duration::from_secs(61), &c), Hit::Stale);
        // A revoked key (now unknown) leaves the real keys.
        e.insert(real, None, later, &c);
        assert_eq!(e.get(&real, later, &c), Hit::Fresh(None));
    }

    /// Past `max_keys` real keys, the one looked up longest ago goes.
    #[test]
    fn the_real_key_map_is_bounded_and_keeps_the_recent_ones() {
        let c = KeyCacheConfig {
            max_keys: 3,
            ..KeyCacheConfig::new(Duration::from_secs(60))
        };
        let mut e = Entries::new(c.max_keys, c.max_unknown);
        let t0 = Instant::now();
        for i in 0..5u64 {
            e.insert(hash_of(i), info(i as i32), t0 + Duration::from_secs(i), &c);
        }
        assert_eq!(e.found.len(), 3);
        let now = t0 + Duration::from_secs(5);
        assert_eq!(e.get(&hash_of(0), now, &c), Hit::None);
        assert_eq!(e.get(&hash_of(4), now, &c), Hit::Fresh(info(4)));
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
