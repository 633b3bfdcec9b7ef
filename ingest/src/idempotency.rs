//! Exactly-once for retried uploads. An `Idempotency-Key` is scoped to the
//! collector key that sent it. Within one process, a retry that arrives
//! while the first upload is in flight waits for it ([`InFlight`]); after
//! that, the first answer is read back from `idempotency_keys`, which the
//! writer fills in the upload's own transaction. Across processes the
//! table's primary key settles races (the writer reports `Duplicate`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::{Error, Result};

/// Longest Idempotency-Key accepted.
pub const MAX_KEY_LEN: usize = 128;

/// Checks the header value: 1–128 printable ASCII characters.
pub fn parse_key(raw: &[u8]) -> Result<String> {
    if raw.is_empty() || raw.len() > MAX_KEY_LEN || !raw.iter().all(|b| (0x20..0x7f).contains(b)) {
        return Err(Error::InvalidIdempotencyKey);
    }
    Ok(String::from_utf8(raw.to_vec()).expect("ASCII is UTF-8"))
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

/// The first answer stored for a key in the last 24 hours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// 16 bytes of XXH3-128, or 32 of SHA-256 for rows written before
    /// migration 0006.
    pub body_digest: Vec<u8>,
    pub response: String,
}

pub async fn lookup(
    client: &tokio_postgres::Client,
    key_id: i32,
    key: &str,
) -> Result<Option<Stored>> {
    let row = client
        .query_opt(
            "SELECT body_digest, response FROM idempotency_keys \
             WHERE key_id = $1 AND idem_key = $2 AND created_at > now() - interval '24 hours'",
            &[&key_id, &key],
        )
        .await?;
    Ok(row.map(|r| Stored {
        body_digest: r.get(0),
        response: r.get(1),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn key_format() {
        assert_eq!(parse_key(b"retry-1 ok").unwrap(), "retry-1 ok");
        assert!(parse_key(b"").is_err());
        assert!(parse_key(&[b'a'; 129]).is_err());
        assert!(parse_key(&[b'a'; 128]).is_ok());
        assert!(parse_key(b"tab\there").is_err());
        assert!(parse_key("é".as_bytes()).is_err());
    }

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
