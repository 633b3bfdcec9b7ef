//! The latest state per miner and the events telemetry raises, kept in
//! memory as committed rows go by (the writer's commit hook, after COMMIT,
//! off the COPY path) and written out every flush interval: a miner that
//! reports every second still costs one row write per interval.
//!
//! Events: `miner_offline` (`online` false), `high_temperature`
//! (`temperature_max` over the threshold), `hashrate_drop` (hashrate under
//! a share of `hashrate_expected_ghs`, while online). A condition that
//! starts opens its event; one that clears resolves it; one that flips
//! several times between two flushes ends as its last sample says.
//!
//! Bounded: a site tracks at most `live_max_miners_per_site` miners (rows
//! of the others are stored as usual but raise no live state or events; a
//! warning and [`LiveStats::untracked_samples`] say so), and a miner that
//! sends nothing for `live_evict_after` leaves the live state, its open
//! telemetry events resolved by `evicted` (kept open, nothing would ever
//! resolve them: the live state no longer knows them). The flush and the
//! eviction take the lock the writer's commit hook needs only in short
//! chunks, never for a walk over every miner, except when a flush fails:
//! it puts its miners and event changes back under one hold.

mod entry;
mod rows;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use adit_types::{Sample, Text};
use indexmap::IndexMap;
use tokio_postgres::Client;
use tracing::{info, warn};

use crate::events::{Changes, EventType, Resolver};
use crate::{ControlConfig, Result};
use entry::Entry;
use rows::Rows;

/// Most miners looked at per hold of the lock while flushing or evicting.
const LOCK_CHUNK: usize = 4096;
/// Longest time between two eviction passes (shorter when the eviction
/// time is short: a quarter of it).
const EVICT_CHECK_MAX_S: u32 = 60;
/// Shortest time between two warnings about untracked miners.
const UNTRACKED_WARN_EVERY_S: u32 = 60;

/// Counters of the live state, for `/metrics`.
#[derive(Debug, Default)]
pub struct LiveStats {
    /// Miners tracked now (a gauge).
    pub miners: AtomicU64,
    /// Samples of miners past a site's cap: stored, not tracked live.
    pub untracked_samples: AtomicU64,
    /// Miners that left the live state after being silent.
    pub evicted_miners: AtomicU64,
}

type Miners = IndexMap<Text, Entry, ahash::RandomState>;

#[derive(Debug, Default)]
struct Inner {
    /// The miners of each site. A site's map hashes with ahash: seeded per
    /// process like std's SipHash (a collector cannot aim collisions at
    /// it) and several times faster on short keys; it is an IndexMap, so
    /// an eviction pass can walk it in chunks by position.
    sites: HashMap<i32, Miners>,
    /// Miners changed since the last flush (each once: see `Entry::dirty`).
    dirty: Vec<(i32, Text)>,
    /// Conditions with an unresolved event at start, per (site, miner).
    open_at_start: HashMap<(i32, String), u8>,
    /// When `open_at_start` was loaded (seconds), if it was.
    loaded_at_s: Option<u32>,
    changes: Changes,
    /// Untracked samples per site since the last warning.
    untracked: HashMap<i32, u64>,
    next_warn_s: u32,
    next_evict_s: u32,
}

/// Thresholds and the state behind the live table and telemetry events.
#[derive(Debug)]
pub struct LiveState {
    inner: Mutex<Inner>,
    stats: LiveStats,
    started: Instant,
    high_temperature_c: f64,
    hashrate_drop_share: f64,
    max_miners_per_site: usize,
    evict_after_s: u32,
    enabled: bool,
}

fn secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

impl LiveState {
    pub fn new(cfg: &ControlConfig) -> Self {
        Self {
            inner: Mutex::default(),
            stats: LiveStats::default(),
            started: Instant::now(),
            high_temperature_c: cfg.high_temperature_c,
            hashrate_drop_share: cfg.hashrate_drop_share,
            max_miners_per_site: cfg.live_max_miners_per_site,
            evict_after_s: secs(cfg.live_evict_after),
            enabled: cfg.live_enabled,
        }
    }

    /// The counters `/metrics` shows.
    pub fn stats(&self) -> &LiveStats {
        &self.stats
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now_s(&self) -> u32 {
        secs(self.started.elapsed())
    }

    /// Which conditions a sample shows, a bit per [`EventType::TELEMETRY`].
    fn conditions(&self, s: &Sample) -> u8 {
        let offline = s.online == Some(false);
        let hot = s
            .temperature_max
            .is_some_and(|t| f64::from(t) > self.high_temperature_c);
        let drop = !offline
            && matches!((s.hashrate_ghs, s.hashrate_expected_ghs),
                (Some(h), Some(e)) if e > 0.0 && h < e * self.hashrate_drop_share);
        u8::from(offline) | u8::from(hot) << 1 | u8::from(drop) << 2
    }

    fn message(ty: EventType, s: &Sample, cfg: &Self) -> String {
        match ty {
            EventType::MinerOffline => format!("miner {} reports offline", s.miner_id),
            EventType::HighTemperature => format!(
                "miner {} temperature_max {:.1} °C is over {} °C",
                s.miner_id,
                s.temperature_max.unwrap_or_default(),
                cfg.high_temperature_c
            ),
            _ => format!(
                "miner {} hashrate {:.0} GH/s is under {:.0}% of the expected {:.0} GH/s",
                s.miner_id,
                s.hashrate_ghs.unwrap_or_default(),
                cfg.hashrate_drop_share * 100.0,
                s.hashrate_expected_ghs.unwrap_or_default()
            ),
        }
    }

    /// Opens the events of the conditions a miner's sample started (bits
    /// set in `now`, not in `before`) and resolves those it cleared.
    fn follow_conditions(
        &self,
        changes: &mut Changes,
        site_id: i32,
        s: &Sample,
        before: u8,
        now: u8,
    ) {
        if now == before {
            return;
        }
        for (bit, ty) in EventType::TELEMETRY.into_iter().enumerate() {
            let (was, is) = (before >> bit & 1 == 1, now >> bit & 1 == 1);
            if is && !was {
                let msg = Self::message(ty, s, self);
                changes.open(site_id, &s.miner_id, ty, msg);
            } else if was && !is {
                changes.resolve(site_id, &s.miner_id, ty, Resolver::Auto);
            }
        }
    }

    /// Takes in the committed samples of one upload.
    pub fn observe(&self, site_id: i32, samples: &[Sample]) {
        if !self.enabled || samples.is_empty() {
            return;
        }
        let now_s = self.now_s();
        let (mut added, mut untracked) = (0u64, 0u64);
        let mut guard = self.lock();
        let inner = &mut *guard;
        let miners = inner.sites.entry(site_id).or_default();
        for s in samples {
            let i = match miners.get_index_of(s.miner_id.as_str()) {
                Some(i) => i,
                None if miners.len() >= self.max_miners_per_site => {
                    untracked += 1;
                    continue;
                }
                None => {
                    added += 1;
                    miners.insert_full(s.miner_id.clone(), Entry::default()).0
                }
            };
            let e = &mut miners[i];
            e.seen_s = now_s;
            if e.ts_micros > s.ts_micros {
                continue; // a late row: the live state already has newer
            }
            let now = self.conditions(s);
            let before = match e.conditions {
                Some(c) => c,
                None => inner
                    .open_at_start
                    .remove(&(site_id, s.miner_id.to_string()))
                    .unwrap_or(0),
            };
            self.follow_conditions(&mut inner.changes, site_id, s, before, now);
            e.take(s, now);
            if !e.dirty {
                e.dirty = true;
                inner.dirty.push((site_id, s.miner_id.clone()));
            }
        }
        if untracked > 0 {
            *inner.untracked.entry(site_id).or_default() += untracked;
        }
        drop(guard);
        self.stats.miners.fetch_add(added, Ordering::Relaxed);
        self.stats
            .untracked_samples
            .fetch_add(untracked, Ordering::Relaxed);
    }

    /// Learns which telemetry events are unresolved (at start), so that a
    /// miner's first healthy sample resolves them.
    pub async fn load_open_events(&self, client: &Client) -> Result<usize> {
        let rows = client
            .query(
                "SELECT site_id, subject, event_type FROM events \
                 WHERE status <> 'resolved' \
                   AND event_type IN ('miner_offline', 'high_temperature', 'hashrate_drop')",
                &[],
            )
            .await?;
        let now_s = self.now_s();
        let mut inner = self.lock();
        for r in &rows {
            let ty: String = r.get(2);
            let Some(bit) = EventType::TELEMETRY.iter().position(|t| t.name() == ty) else {
                continue;
            };
            *inner.open_at_start.entry((r.get(0), r.get(1))).or_default() |= 1 << bit;
        }
        inner.loaded_at_s = Some(now_s);
        Ok(rows.len())
    }

    /// Writes changed miners to `miner_live` and applies event changes, in
    /// one transaction; returns the number of miners written. On failure
    /// the changes are kept for the next flush. Evicts silent miners first
    /// when a pass is due.
    pub async fn flush(&self, client: &Client) -> Result<usize> {
        self.evict_if_due();
        let now_s = self.now_s();
        let (keys, changes, untracked) = {
            let mut inner = self.lock();
            let untracked = if now_s >= inner.next_warn_s && !inner.untracked.is_empty() {
                inner.next_warn_s = now_s.saturating_add(UNTRACKED_WARN_EVERY_S);
                std::mem::take(&mut inner.untracked)
            } else {
                HashMap::new()
            };
            (
                std::mem::take(&mut inner.dirty),
                std::mem::take(&mut inner.changes),
                untracked,
            )
        };
        for (site_id, samples) in untracked {
            warn!(
                site_id,
                samples,
                cap = self.max_miners_per_site,
                "Samples of miners past the site's live-state cap were stored but not tracked live."
            );
        }
        let rows = self.collect(&keys);
        let n = rows.len();
        if let Err(e) = write(client, &rows, &changes).await {
            warn!(error = %e, miners = n, "Live state flush failed; will retry.");
            self.put_back(&rows, changes);
            return Err(e);
        }
        Ok(n)
    }

    /// After a failed flush: its miners are changed again (unless a newer
    /// sample did so already) and its event changes go back ahead of the
    /// ones that came since, under one hold of the lock.
    fn put_back(&self, rows: &Rows, changes: Changes) {
        let mut guard = self.lock();
        let inner = &mut *guard;
        for (site, miner) in rows.keys() {
            if let Some(e) = inner.sites.get_mut(&site).and_then(|m| m.get_mut(miner)) {
                if !e.dirty {
                    e.dirty = true;
                    inner.dirty.push((site, Text::from(miner)));
                }
            }
        }
        let later = std::mem::take(&mut inner.changes);
        inner.changes = changes.then(later);
    }

    /// The rows of the changed miners, taking the lock a chunk at a time.
    fn collect(&self, keys: &[(i32, Text)]) -> Rows {
        let mut rows = Rows::default();
        for chunk in keys.chunks(LOCK_CHUNK) {
            let mut inner = self.lock();
            for (site, miner) in chunk {
                let Some(e) = inner
                    .sites
                    .get_mut(site)
                    .and_then(|m| m.get_mut(miner.as_str()))
                else {
                    continue;
                };
                if e.dirty {
                    e.dirty = false;
                    rows.push(*site, miner, e);
                }
            }
        }
        rows
    }

    /// Removes miners silent for the eviction time (and forgets the events
    /// open at start of miners never heard from since), resolving their
    /// open events; at most once per check interval.
    fn evict_if_due(&self) {
        let now_s = self.now_s();
        let Some(sites) = self.sites_to_check(now_s) else {
            return;
        };
        let mut evicted = 0u64;
        for site in sites {
            evicted += self.evict_silent(site, now_s);
        }
        let forgotten = self.forget_unseen(now_s);
        if evicted > 0 || forgotten > 0 {
            self.stats.miners.fetch_sub(evicted, Ordering::Relaxed);
            self.stats
                .evicted_miners
                .fetch_add(evicted, Ordering::Relaxed);
            info!(
                miners = evicted,
                never_seen = forgotten,
                silent_s = self.evict_after_s,
                "Silent miners left the live state; their open events are resolved (evicted)."
            );
        }
    }

    /// The sites an eviction pass looks at, if one is due (the next one is
    /// then scheduled: a quarter of the eviction time, at most a minute).
    fn sites_to_check(&self, now_s: u32) -> Option<Vec<i32>> {
        let mut inner = self.lock();
        if now_s < inner.next_evict_s {
            return None;
        }
        inner.next_evict_s = now_s.saturating_add((self.evict_after_s / 4).min(EVICT_CHECK_MAX_S));
        Some(inner.sites.keys().copied().collect())
    }

    /// Removes the site's miners silent for the eviction time, looking at
    /// [`LOCK_CHUNK`] of them per hold of the lock, and resolves their open
    /// events (`evicted`); returns how many left.
    fn evict_silent(&self, site: i32, now_s: u32) -> u64 {
        let mut evicted = 0u64;
        let mut i = 0;
        loop {
            let mut guard = self.lock();
            let inner = &mut *guard;
            let Some(miners) = inner.sites.get_mut(&site) else {
                return evicted;
            };
            // Only this pass removes entries, so positions before `i`
            // stay looked at between chunks (new miners go at the end).
            let mut looked = 0;
            while i < miners.len() && looked < LOCK_CHUNK {
                looked += 1;
                let e = &miners[i];
                if e.dirty || now_s.saturating_sub(e.seen_s) < self.evict_after_s {
                    i += 1;
                    continue;
                }
                let Some((miner, e)) = miners.swap_remove_index(i) else {
                    break;
                };
                evicted += 1;
                let open = e.conditions.unwrap_or(0);
                for (bit, ty) in EventType::TELEMETRY.into_iter().enumerate() {
                    if open >> bit & 1 == 1 {
                        inner.changes.resolve(site, &miner, ty, Resolver::Evicted);
                    }
                }
            }
            let done = i >= miners.len();
            if miners.is_empty() {
                inner.sites.remove(&site);
            }
            if done {
                return evicted;
            }
        }
    }

    /// Once the eviction time has passed since the open events were loaded,
    /// resolves (`evicted`) those of miners never heard from since, ahead of
    /// the changes waiting; returns how many such miners there were.
    fn forget_unseen(&self, now_s: u32) -> usize {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let due = inner
            .loaded_at_s
            .is_some_and(|t| now_s.saturating_sub(t) >= self.evict_after_s);
        if !due || inner.open_at_start.is_empty() {
            return 0;
        }
        let open = std::mem::take(&mut inner.open_at_start);
        let mut before = Changes::default();
        for ((site, miner), bits) in &open {
            let miner = Text::from(miner.as_str());
            for (bit, ty) in EventType::TELEMETRY.into_iter().enumerate() {
                if bits >> bit & 1 == 1 {
                    before.resolve(*site, &miner, ty, Resolver::Evicted);
                }
            }
        }
        let later = std::mem::take(&mut inner.changes);
        inner.changes = before.then(later);
        open.len()
    }
}

/// One transaction: the live rows, then the event changes.
async fn write(client: &Client, rows: &Rows, changes: &Changes) -> Result<()> {
    if rows.is_empty() && changes.is_empty() {
        return Ok(());
    }
    client.batch_execute("BEGIN").await?;
    let result = async {
        if !rows.is_empty() {
            rows.upsert(client).await?;
        }
        changes.apply(client).await
    }
    .await;
    match result {
        Ok(()) => Ok(client.batch_execute("COMMIT").await?),
        Err(e) => {
            let _ = client.batch_execute("ROLLBACK").await;
            Err(e)
        }
    }
}

impl adit_types::CommitObserver for LiveState {
    fn committed(&self, site_id: i32, samples: &[Sample]) {
        self.observe(site_id, samples);
    }
}
