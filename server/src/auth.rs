//! Who is asking: the credential headers of a request and the cached
//! lookups of the keys in them.
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

use adit_control::keys::{hash_key, is_well_formed};
use hyper::header::HeaderMap;
use tokio::sync::Semaphore;

use crate::{Error, Result, State};

/// How long a lookup waits for a pooled connection before answering 503.
pub const POOL_WAIT: Duration = Duration::from_secs(1);

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

/// The `Authorization: Bearer` value, if the header has that scheme.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(hyper::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// The collector key of `X-Collector-Key` (and only there) and its site.
/// An admin token there (or as a bearer here) is 403
/// `admin_token_not_collector_key`; everything else wrong is 401
/// `invalid_key` saying what is wrong.
pub(crate) async fn collector_key(headers: &HeaderMap, state: &State) -> Result<(KeyInfo, i32)> {
    let Some(value) = headers.get("x-collector-key") else {
        if let Some(token) = bearer(headers) {
            if let Some(key) = state.keys.lookup(token).await? {
                if key.is_admin() {
                    return Err(Error::AdminTokenAsCollectorKey);
                }
            }
            return Err(Error::InvalidKey {
                reason: "this endpoint reads the collector key from X-Collector-Key, \
                         not from Authorization",
            });
        }
        return Err(Error::InvalidKey {
            reason: "missing X-Collector-Key header",
        });
    };
    let key = value.to_str().unwrap_or("").trim();
    if key.is_empty() {
        return Err(Error::InvalidKey {
            reason: "the X-Collector-Key header is empty",
        });
    }
    if !is_well_formed(key) {
        return Err(Error::InvalidKey {
            reason: "X-Collector-Key is not shaped like a key (hsc_ and 40 characters)",
        });
    }
    let info = state.keys.lookup(key).await?.ok_or(Error::InvalidKey {
        reason: "X-Collector-Key matches no active key (unknown or revoked)",
    })?;
    match info.site_id {
        Some(site_id) => Ok((info, site_id)),
        None => Err(Error::AdminTokenAsCollectorKey),
    }
}

/// The key of `Authorization: Bearer` (and only there): an admin token,
/// or a collector key the control plane then refuses with 403. Without a
/// bearer, a collector key in X-Collector-Key is still named as such (the
/// control plane's 403 saying an admin token belongs here), but nothing in
/// that header ever authenticates an admin request: an admin token there
/// is a 401.
pub(crate) async fn admin_token(headers: &HeaderMap, state: &State) -> Result<KeyInfo> {
    let Some(token) = bearer(headers) else {
        let sent = headers
            .get("x-collector-key")
            .and_then(|v| v.to_str().ok())
            .map(str::trim);
        if let Some(sent) = sent {
            if let Some(key) = state.keys.lookup(sent).await? {
                if !key.is_admin() {
                    return Ok(key);
                }
            }
            return Err(Error::InvalidKey {
                reason: "this endpoint takes an admin token in Authorization: Bearer; \
                         X-Collector-Key is not read as one",
            });
        }
        return Err(Error::InvalidKey {
            reason: "missing Authorization: Bearer <admin token>",
        });
    };
    if !is_well_formed(token) {
        return Err(Error::InvalidKey {
            reason: "the bearer token is not shaped like a token (hsa_ and 40 characters)",
        });
    }
    state.keys.lookup(token).await?.ok_or(Error::InvalidKey {
        reason: "the bearer token matches no active key (unknown or revoked)",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
