//! Exactly-once for retried uploads, in one place. An `Idempotency-Key` is
//! scoped to the collector key that sent it and holds for
//! [`IDEMPOTENCY_LIFETIME`]:
//! - [`InFlight`]: within one process, a retry that arrives while the first
//!   upload is in flight waits for it;
//! - [`claim`]: the writer claims the key in the upload's own transaction,
//!   storing the answer; across processes the table's primary key settles
//!   races (the loser is answered `Duplicate` and writes nothing);
//! - [`lookup`]: a later retry reads the first answer back;
//! - [`purge`]: keys past their lifetime are deleted.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use adit_types::IDEMPOTENCY_LIFETIME;
use sha2::{Digest as _, Sha256};
use tokio::sync::watch;

use crate::{Result, Upload};

/// The lifetime as PostgreSQL's `make_interval(secs => …)` takes it.
fn lifetime_secs() -> f64 {
    IDEMPOTENCY_LIFETIME.as_secs_f64()
}

/// The fingerprint stored with a key: 128-bit XXH3 of the decoded body.
pub fn body_digest(body: &[u8]) -> [u8; 16] {
    xxhash_rust::xxh3::xxh3_128(body).to_be_bytes()
}

/// The fingerprint of a dataset upload: its dataset's name and its body,
/// so an Idempotency-Key reused for another dataset is a conflict rather
/// than a replay of the other dataset's answer.
pub fn dataset_body_digest(dataset: &str, body: &[u8]) -> [u8; 16] {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(b"dataset\0");
    h.update(dataset.as_bytes());
    h.update(b"\0");
    h.update(body);
    h.digest128().to_be_bytes()
}

type Slot = (i32, String);

/// Uploads with an Idempotency-Key currently being processed here.
#[derive(Debug, Default, Clone)]
pub struct InFlight {
    slots: Arc<Mutex<HashMap<Slot, watch::Receiver<()>>>>,
}

/// The result of trying to own an Idempotency-Key.
#[derive(Debug)]
pub enum Claim {
    /// Nobody else here is processing this key; hold the guard while you do.
    Owner(OwnerGuard),
    /// Another request is; wait for it to end, then look again.
    Wait(watch::Receiver<()>),
}

impl InFlight {
    pub fn claim(&self, key_id: i32, key: &str) -> Claim {
        let slot = (key_id, key.to_owned());
        let mut slots = self.slots.lock().expect("in-flight lock");
        if let Some(rx) = slots.get(&slot) {
            return Claim::Wait(rx.clone());
        }
        let (tx, rx) = watch::channel(());
        slots.insert(slot.clone(), rx);
        Claim::Owner(OwnerGuard {
            slots: self.slots.clone(),
            slot,
            _done: tx,
        })
    }
}

/// Releases the key when dropped (also when the request is abandoned);
/// dropping the sender wakes every waiter.
#[derive(Debug)]
pub struct OwnerGuard {
    slots: Arc<Mutex<HashMap<Slot, watch::Receiver<()>>>>,
    slot: Slot,
    _done: watch::Sender<()>,
}

impl Drop for OwnerGuard {
    fn drop(&mut self) {
        if let Ok(mut slots) = self.slots.lock() {
            slots.remove(&self.slot);
        }
    }
}

/// Waits until the owner of a key is done.
pub async fn wait(mut rx: watch::Receiver<()>) {
    // `changed` fails once the sender is gone, which is the signal.
    while rx.changed().await.is_ok() {}
}

/// The first answer stored for a key within its lifetime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// 16 bytes of XXH3-128, or 32 of SHA-256 for rows written before
    /// migration 0006.
    pub body_digest: Vec<u8>,
    pub response: String,
}

impl Stored {
    /// True when `body` is the body this answer was for.
    pub fn same_body(&self, body: &[u8]) -> bool {
        match self.body_digest.len() {
            32 => self.body_digest == Sha256::digest(body).as_slice(),
            _ => self.body_digest == body_digest(body),
        }
    }
}

/// The answer stored for `key` of collector key `key_id`, if still alive.
pub async fn lookup(
    client: &tokio_postgres::Client,
    key_id: i32,
    key: &str,
) -> Result<Option<Stored>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT body_digest, response FROM idempotency_keys \
             WHERE key_id = $1 AND idem_key = $2 \
               AND created_at > now() - make_interval(secs => $3)",
            &[&key_id, &key, &lifetime_secs()],
        )
        .await?;
    Ok(row.map(|r| Stored {
        body_digest: r.get(0),
        response: r.get(1),
    }))
}

/// Claims the Idempotency-Keys of the batch; returns the batch positions of
/// uploads whose key was already claimed by a committed upload in the last
/// [`IDEMPOTENCY_LIFETIME`] (a claim older than that is taken over). The
/// stored answer is the rendering the server sends.
pub(crate) async fn claim(
    tx: &tokio_postgres::Transaction<'_>,
    uploads: &[&Upload],
) -> Result<HashSet<usize>> {
    let mut key_ids = Vec::new();
    let mut keys = Vec::new();
    let mut hashes = Vec::new();
    let mut responses = Vec::new();
    let mut positions = Vec::new();
    for (i, u) in uploads.iter().enumerate() {
        if let Some(idem) = &u.idempotency {
            key_ids.push(u.key_id);
            keys.push(idem.key.as_str());
            hashes.push(&idem.body_digest[..]);
            responses.push(u.render());
            positions.push(i);
        }
    }
    if positions.is_empty() {
        return Ok(HashSet::new());
    }
    let claimed = tx
        .query(
            "INSERT INTO idempotency_keys (key_id, idem_key, body_digest, response) \
             SELECT * FROM unnest($1::int4[], $2::text[], $3::bytea[], $4::text[]) \
             ON CONFLICT (key_id, idem_key) DO UPDATE \
               SET body_digest = EXCLUDED.body_digest, response = EXCLUDED.response, \
                   created_at = now() \
               WHERE idempotency_keys.created_at < now() - make_interval(secs => $5) \
             RETURNING key_id, idem_key",
            &[&key_ids, &keys, &hashes, &responses, &lifetime_secs()],
        )
        .await?;
    let claimed: HashSet<(i32, String)> = claimed
        .iter()
        .map(|r| (r.get::<_, i32>(0), r.get::<_, String>(1)))
        .collect();
    Ok(positions
        .into_iter()
        .filter(|&i| {
            let u = uploads[i];
            let key = &u.idempotency.as_ref().expect("positions have keys").key;
            !claimed.contains(&(u.key_id, key.clone()))
        })
        .collect())
}

/// Deletes the keys past their lifetime; returns how many.
pub async fn purge(client: &tokio_postgres::Client) -> Result<u64, tokio_postgres::Error> {
    client
        .execute(
            "DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(secs => $1)",
            &[&lifetime_secs()],
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn second_claim_waits_until_the_owner_drops() {
        let inflight = InFlight::default();
        let Claim::Owner(guard) = inflight.claim(1, "k") else {
            panic!("first claim owns")
        };
        assert!(
            matches!(inflight.claim(2, "k"), Claim::Owner(_)),
            "keys are per collector key"
        );
        let Claim::Wait(rx) = inflight.claim(1, "k") else {
            panic!("second claim waits")
        };
        let waiter = tokio::spawn(wait(rx));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        drop(guard);
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(inflight.claim(1, "k"), Claim::Owner(_)));
    }
}
