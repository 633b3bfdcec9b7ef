//! The disk spool: a bounded, durable, oldest-first queue of upload batches.
//!
//! A batch is the gzip JSON body of one upload plus its `Idempotency-Key`,
//! which is chosen once, when the batch is pushed, and stored with it: every
//! retry, before or after a restart, sends the same key, so adit writes the
//! batch once however often its answer is lost.
//!
//! Rules:
//! - [`Spool::push`] returns only once the batch is durable: written to a
//!   temp file, fsynced, renamed into place and the directory fsynced. Only
//!   then does the batch count as collected.
//! - Batches are files `<sequence>.batch` (sequence zero-padded, so name
//!   order is push order); [`Spool::open`] reloads them in that order and
//!   deletes leftover temp files (a push cut short by a crash never counted).
//! - A size cap in bytes: when a push takes the spool past it, the oldest
//!   batches are dropped, each with a `warn!` and counted in
//!   [`Spool::dropped_batches`]. The newest batch is always kept, even if it
//!   alone is larger than the cap.
//! - Batches are lost only counted: dropped at the cap, refused for good by
//!   adit ([`Spool::reject_oldest`]) or found damaged on disk, each with its
//!   own counter and a log line.
//!
//! File format: a line `adit-spool 1`, a line with the key, a line with the
//! row count, then the gzip body.

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::{error, warn};

use crate::error::{Error, Result};

const MAGIC: &str = "adit-spool 1";
const BATCH_EXT: &str = "batch";
const TEMP_EXT: &str = "tmp";

/// One upload as it waits in the spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The `Idempotency-Key` this batch is always sent with (1–128
    /// printable ASCII characters, no newline).
    pub key: String,
    /// Rows (samples) in the body.
    pub rows: usize,
    /// The gzip JSON array of samples.
    pub body: Vec<u8>,
}

/// A batch's place in the spool.
#[derive(Debug, Clone)]
struct Entry {
    seq: u64,
    bytes: u64,
    /// When the batch was spooled (its file's mtime after a restart).
    spooled_at: SystemTime,
}

/// The on-disk queue. All operations are synchronous file I/O on small
/// files; a caller on an async runtime may run them in `spawn_blocking`.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    entries: VecDeque<Entry>,
    queued_bytes: u64,
    next_seq: u64,
    /// Keys are `<start>-<pid>-<sequence>`: `start` is this process's start
    /// in Unix nanoseconds (hex), so keys of a restarted collector, or of two
    /// collectors sharing a site key, do not repeat each other's.
    key_prefix: String,
    dropped_batches: u64,
    dropped_bytes: u64,
    corrupt_batches: u64,
    rejected_batches: u64,
}

impl Spool {
    /// Opens (creating it if needed) the spool in `dir`, capped at
    /// `max_bytes` of batch files, and reloads the batches already there.
    pub fn open(dir: impl Into<PathBuf>, max_bytes: u64) -> Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|e| spool_err(&dir, "create the directory", e))?;
        let mut entries = Vec::new();
        let listing = fs::read_dir(&dir).map_err(|e| spool_err(&dir, "list", e))?;
        for item in listing {
            let item = item.map_err(|e| spool_err(&dir, "list", e))?;
            let path = item.path();
            match path.extension().and_then(|e| e.to_str()) {
                Some(TEMP_EXT) => {
                    // A push cut short: it never returned, so it never counted.
                    fs::remove_file(&path).map_err(|e| spool_err(&path, "remove temp file", e))?;
                }
                Some(BATCH_EXT) => {
                    let seq = path
                        .file_stem()
                        .and_then(|s| s.to_str())
                        .and_then(|s| s.parse::<u64>().ok());
                    let Some(seq) = seq else {
                        warn!(path = %path.display(), "spool: ignoring a file with a foreign name");
                        continue;
                    };
                    let meta = item.metadata().map_err(|e| spool_err(&path, "stat", e))?;
                    let spooled_at = meta.modified().unwrap_or_else(|_| SystemTime::now());
                    entries.push(Entry {
                        seq,
                        bytes: meta.len(),
                        spooled_at,
                    });
                }
                _ => {}
            }
        }
        entries.sort_by_key(|e| e.seq);
        let next_seq = entries.last().map_or(0, |e| e.seq + 1);
        let queued_bytes = entries.iter().map(|e| e.bytes).sum();
        let start_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Ok(Self {
            dir,
            max_bytes,
            entries: entries.into(),
            queued_bytes,
            next_seq,
            key_prefix: format!("{start_ns:x}-{}", std::process::id()),
            dropped_batches: 0,
            dropped_bytes: 0,
            corrupt_batches: 0,
            rejected_batches: 0,
        })
    }

    /// Stores a new batch under a fresh key and returns the key once the
    /// batch is durable.
    pub fn push(&mut self, body: Vec<u8>, rows: usize) -> Result<String> {
        let key = format!("{}-{}", self.key_prefix, self.next_seq);
        self.push_batch(&Batch { key, rows, body })
    }

    /// Stores `batch` with the key it already has (a batch moved from
    /// elsewhere, or one sent again after its answer was lost).
    pub fn push_batch(&mut self, batch: &Batch) -> Result<String> {
        if adit_key_invalid(&batch.key) {
            return Err(Error::Spool {
                path: self.dir.clone(),
                action: "push",
                reason: format!("{:?} is not a valid Idempotency-Key", batch.key),
            });
        }
        let seq = self.next_seq;
        let path = self.batch_path(seq);
        let temp = path.with_extension(TEMP_EXT);
        let write = || -> std::io::Result<u64> {
            let mut file = File::create(&temp)?;
            write!(file, "{MAGIC}\n{}\n{}\n", batch.key, batch.rows)?;
            file.write_all(&batch.body)?;
            file.sync_all()?;
            let bytes = file.metadata()?.len();
            drop(file);
            fs::rename(&temp, &path)?;
            File::open(&self.dir)?.sync_all()?;
            Ok(bytes)
        };
        let bytes = match write() {
            Ok(bytes) => bytes,
            Err(e) => {
                let _ = fs::remove_file(&temp);
                return Err(spool_err(&path, "write", e));
            }
        };
        self.next_seq += 1;
        self.entries.push_back(Entry {
            seq,
            bytes,
            spooled_at: SystemTime::now(),
        });
        self.queued_bytes += bytes;
        self.enforce_cap()?;
        Ok(batch.key.clone())
    }

    /// The oldest batch, read from disk, or `None` if the spool is empty.
    /// A batch file that is not one (damaged on disk) would block the queue
    /// for ever: it is removed with an error log and counted in
    /// [`Spool::corrupt_batches`], and the next one is read.
    pub fn peek(&mut self) -> Result<Option<Batch>> {
        while let Some(entry) = self.entries.front() {
            let path = self.batch_path(entry.seq);
            let mut raw = Vec::new();
            File::open(&path)
                .and_then(|mut f| f.read_to_end(&mut raw))
                .map_err(|e| spool_err(&path, "read", e))?;
            if let Some(batch) = parse(&raw) {
                return Ok(Some(batch));
            }
            error!(path = %path.display(), bytes = raw.len(), "spool: damaged batch file removed");
            self.remove_oldest()?;
            self.corrupt_batches += 1;
        }
        Ok(None)
    }

    /// The oldest batch with its id, for a caller that sends it without
    /// holding the spool: [`Spool::remove`] then removes exactly that batch,
    /// even if the cap dropped it meanwhile. Damaged files are handled as
    /// in [`Spool::peek`].
    pub fn peek_entry(&mut self) -> Result<Option<(u64, Batch)>> {
        let batch = self.peek()?;
        Ok(batch.and_then(|b| self.entries.front().map(|e| (e.seq, b))))
    }

    /// Removes the batch `id` (from [`Spool::peek_entry`]) if it is still
    /// queued; `rejected` counts it in [`Spool::rejected_batches`].
    pub fn remove(&mut self, id: u64, rejected: bool) -> Result<()> {
        let Some(at) = self.entries.iter().position(|e| e.seq == id) else {
            return Ok(());
        };
        let entry = self.entries.remove(at).expect("position is in range");
        self.queued_bytes -= entry.bytes;
        if rejected {
            self.rejected_batches += 1;
        }
        let path = self.batch_path(entry.seq);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(spool_err(&path, "remove", e)),
        }
    }

    /// A new size cap; batches over it are dropped at once, oldest first,
    /// warned and counted.
    pub fn set_max_bytes(&mut self, max_bytes: u64) -> Result<()> {
        self.max_bytes = max_bytes;
        self.enforce_cap()
    }

    /// Drops batches spooled more than `max_age` ago, oldest first, each
    /// warned and counted in [`Spool::dropped_batches`]; returns how many.
    pub fn expire(&mut self, max_age: std::time::Duration) -> Result<u64> {
        let mut dropped = 0;
        let now = SystemTime::now();
        while let Some(front) = self.entries.front() {
            let age = now.duration_since(front.spooled_at).unwrap_or_default();
            if age <= max_age {
                break;
            }
            let bytes = front.bytes;
            self.remove_oldest()?;
            self.dropped_batches += 1;
            self.dropped_bytes += bytes;
            dropped += 1;
            warn!(
                dropped_bytes = bytes,
                age_s = age.as_secs(),
                max_age_s = max_age.as_secs(),
                dropped_total = self.dropped_batches,
                "spool: dropped a batch older than the age limit"
            );
        }
        Ok(dropped)
    }

    /// Removes the oldest batch (once it was sent, or can never be).
    pub fn remove_oldest(&mut self) -> Result<()> {
        let Some(entry) = self.entries.pop_front() else {
            return Ok(());
        };
        self.queued_bytes -= entry.bytes;
        let path = self.batch_path(entry.seq);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(spool_err(&path, "remove", e)),
        }
    }

    /// Removes the oldest batch because adit refused it for good (it can
    /// never succeed), counting it in [`Spool::rejected_batches`].
    pub fn reject_oldest(&mut self) -> Result<()> {
        if self.entries.is_empty() {
            return Ok(());
        }
        self.remove_oldest()?;
        self.rejected_batches += 1;
        Ok(())
    }

    /// Batches waiting.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes of batch files waiting.
    pub fn queued_bytes(&self) -> u64 {
        self.queued_bytes
    }

    /// Batches dropped at the size cap since this spool was opened.
    pub fn dropped_batches(&self) -> u64 {
        self.dropped_batches
    }

    /// Bytes dropped at the size cap since this spool was opened.
    pub fn dropped_bytes(&self) -> u64 {
        self.dropped_bytes
    }

    /// Damaged batch files removed since this spool was opened.
    pub fn corrupt_batches(&self) -> u64 {
        self.corrupt_batches
    }

    /// Batches adit refused for good since this spool was opened.
    pub fn rejected_batches(&self) -> u64 {
        self.rejected_batches
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn batch_path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:020}.{BATCH_EXT}"))
    }

    fn enforce_cap(&mut self) -> Result<()> {
        while self.queued_bytes > self.max_bytes && self.entries.len() > 1 {
            let bytes = self.entries.front().map_or(0, |e| e.bytes);
            self.remove_oldest()?;
            self.dropped_batches += 1;
            self.dropped_bytes += bytes;
            warn!(
                dropped_bytes = bytes,
                queued_bytes = self.queued_bytes,
                max_bytes = self.max_bytes,
                dropped_total = self.dropped_batches,
                "spool full: dropped the oldest batch"
            );
        }
        Ok(())
    }
}

/// Whether adit would refuse `key` as an `Idempotency-Key`.
fn adit_key_invalid(key: &str) -> bool {
    key.is_empty() || key.len() > 128 || !key.bytes().all(|b| (0x20..0x7f).contains(&b))
}

fn parse(raw: &[u8]) -> Option<Batch> {
    let mut rest = raw;
    let mut line = || {
        let end = rest.iter().position(|&b| b == b'\n')?;
        let text = std::str::from_utf8(&rest[..end]).ok()?;
        rest = &rest[end + 1..];
        Some(text.to_string())
    };
    if line()? != MAGIC {
        return None;
    }
    let key = line()?;
    let rows = line()?.parse().ok()?;
    Some(Batch {
        key,
        rows,
        body: rest.to_vec(),
    })
}

fn spool_err(path: &Path, action: &'static str, e: std::io::Error) -> Error {
    Error::Spool {
        path: path.to_path_buf(),
        action,
        reason: e.to_string(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A fresh directory under the system temp dir, removed on drop.
    pub(crate) struct TempDir(pub(crate) PathBuf);

    impl TempDir {
        pub(crate) fn new(tag: &str) -> Self {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            let dir = std::env::temp_dir()
                .join(format!("adit-spool-{tag}-{}-{nanos}", std::process::id()));
            fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn drain_all(spool: &mut Spool) -> Vec<Batch> {
        let mut out = Vec::new();
        while let Some(b) = spool.peek().unwrap() {
            out.push(b);
            spool.remove_oldest().unwrap();
        }
        out
    }

    #[test]
    fn a_restart_reloads_batches_in_order_with_their_keys() {
        let tmp = TempDir::new("restart");
        let mut spool = Spool::open(&tmp.0, 1 << 20).unwrap();
        let mut keys = Vec::new();
        for i in 0..12u8 {
            keys.push(spool.push(vec![i; 10 + i as usize], i as usize).unwrap());
        }
        let bytes = spool.queued_bytes();
        assert!(bytes > 0);
        drop(spool);

        let mut spool = Spool::open(&tmp.0, 1 << 20).unwrap();
        assert_eq!(spool.len(), 12);
        assert_eq!(spool.queued_bytes(), bytes);
        // A batch pushed after the restart goes behind the old ones, under a new key.
        let late = spool.push(b"late".to_vec(), 1).unwrap();
        assert!(!keys.contains(&late));
        let got = drain_all(&mut spool);
        assert_eq!(got.len(), 13);
        for (i, b) in got[..12].iter().enumerate() {
            assert_eq!(b.key, keys[i], "keys survive the restart, in push order");
            assert_eq!(b.rows, i);
            assert_eq!(b.body, vec![i as u8; 10 + i]);
        }
        assert_eq!(got[12].key, late);
        assert_eq!(spool.queued_bytes(), 0);
        assert!(spool.is_empty());
        // Removing really deletes: a reopen finds nothing.
        assert!(Spool::open(&tmp.0, 1 << 20).unwrap().is_empty());
    }

    #[test]
    fn the_cap_drops_the_oldest_and_counts_them() {
        let tmp = TempDir::new("cap");
        let mut probe = Spool::open(tmp.0.join("probe"), u64::MAX).unwrap();
        probe.push(vec![0; 1000], 1).unwrap();
        let one = probe.queued_bytes();
        // Room for three batches of this size, not four.
        let mut spool = Spool::open(tmp.0.join("capped"), one * 3 + one / 2).unwrap();
        let keys: Vec<String> = (0..5u8)
            .map(|i| spool.push(vec![i; 1000], 1).unwrap())
            .collect();
        assert_eq!(spool.len(), 3);
        assert_eq!(spool.dropped_batches(), 2);
        assert_eq!(spool.dropped_bytes(), one * 2);
        assert_eq!(spool.queued_bytes(), one * 3);
        let got = drain_all(&mut spool);
        let kept: Vec<&str> = got.iter().map(|b| b.key.as_str()).collect();
        assert_eq!(
            kept,
            vec![&keys[2], &keys[3], &keys[4]],
            "the oldest went first"
        );
        assert_eq!(got[0].body, vec![2; 1000]);
        // Dropped files are gone from disk too.
        assert!(Spool::open(tmp.0.join("capped"), u64::MAX)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn a_batch_larger_than_the_cap_is_kept_alone() {
        let tmp = TempDir::new("huge");
        let mut spool = Spool::open(&tmp.0, 100).unwrap();
        spool.push(vec![1; 10], 1).unwrap();
        let key = spool.push(vec![2; 500], 1).unwrap();
        assert_eq!(spool.len(), 1);
        assert_eq!(spool.dropped_batches(), 1);
        assert_eq!(spool.peek().unwrap().unwrap().key, key);
    }

    #[test]
    fn a_half_written_temp_file_is_ignored_and_deleted() {
        let tmp = TempDir::new("temp");
        let mut spool = Spool::open(&tmp.0, 1 << 20).unwrap();
        let key = spool.push(b"whole".to_vec(), 2).unwrap();
        drop(spool);
        // What a kill -9 in the middle of a push leaves behind.
        let half = tmp.0.join(format!("{:020}.{TEMP_EXT}", 1));
        fs::write(&half, b"adit-spool 1\n1700-1\n").unwrap();

        let mut spool = Spool::open(&tmp.0, 1 << 20).unwrap();
        assert!(!half.exists(), "the temp file is deleted at open");
        assert_eq!(spool.len(), 1);
        let got = drain_all(&mut spool);
        assert_eq!(got[0].key, key);
        assert_eq!(got[0].body, b"whole");
    }

    #[test]
    fn a_damaged_batch_file_is_removed_and_counted_not_blocking() {
        let tmp = TempDir::new("damaged");
        let mut spool = Spool::open(&tmp.0, 1 << 20).unwrap();
        spool.push(b"first".to_vec(), 1).unwrap();
        let second = spool.push(b"second".to_vec(), 1).unwrap();
        drop(spool);
        fs::write(tmp.0.join(format!("{:020}.{BATCH_EXT}", 0)), b"garbage").unwrap();
        let mut spool = Spool::open(&tmp.0, 1 << 20).unwrap();
        assert_eq!(spool.peek().unwrap().unwrap().key, second);
        assert_eq!(spool.corrupt_batches(), 1);
        assert_eq!(spool.len(), 1);
    }

    #[test]
    fn push_batch_keeps_the_given_key_and_refuses_a_bad_one() {
        let tmp = TempDir::new("key");
        let mut spool = Spool::open(&tmp.0, 1 << 20).unwrap();
        let batch = Batch {
            key: "site-7-batch-1".into(),
            rows: 3,
            body: b"xyz".to_vec(),
        };
        assert_eq!(spool.push_batch(&batch).unwrap(), batch.key);
        drop(spool);
        let mut spool = Spool::open(&tmp.0, 1 << 20).unwrap();
        assert_eq!(spool.peek().unwrap().unwrap(), batch);

        for bad in ["", "two\nlines", &"k".repeat(129)] {
            let err = spool
                .push_batch(&Batch {
                    key: bad.into(),
                    rows: 1,
                    body: vec![],
                })
                .unwrap_err();
            assert_eq!(err.code(), "spool");
        }
        assert_eq!(spool.len(), 1);
    }

    #[test]
    fn remove_takes_out_exactly_the_peeked_batch_even_after_the_cap_moved() {
        let tmp = TempDir::new("remove");
        let mut spool = Spool::open(&tmp.0, 1 << 20).unwrap();
        spool.push(vec![0; 100], 1).unwrap();
        let (id, first) = spool.peek_entry().unwrap().unwrap();
        let second = spool.push(vec![1; 100], 1).unwrap();
        // While the first batch is out being sent, a smaller cap drops it.
        let one = spool.queued_bytes() / 2;
        spool.set_max_bytes(one).unwrap();
        assert_eq!((spool.len(), spool.dropped_batches()), (1, 1));
        // Its removal after the send must not take the batch behind it.
        spool.remove(id, false).unwrap();
        assert_eq!(spool.len(), 1);
        assert_eq!(spool.peek().unwrap().unwrap().key, second);
        assert_ne!(first.key, second);
        let (id, _) = spool.peek_entry().unwrap().unwrap();
        spool.remove(id, true).unwrap();
        assert!(spool.is_empty());
        assert_eq!((spool.rejected_batches(), spool.queued_bytes()), (1, 0));
    }

    #[test]
    fn batches_past_the_age_limit_are_dropped_and_counted() {
        let tmp = TempDir::new("expire");
        let mut spool = Spool::open(&tmp.0, 1 << 20).unwrap();
        spool.push(vec![0; 10], 1).unwrap();
        spool.push(vec![1; 10], 1).unwrap();
        assert_eq!(
            spool.expire(std::time::Duration::from_secs(3600)).unwrap(),
            0
        );
        std::thread::sleep(std::time::Duration::from_millis(30));
        let fresh = spool.push(vec![2; 10], 1).unwrap();
        assert_eq!(
            spool.expire(std::time::Duration::from_millis(20)).unwrap(),
            2
        );
        assert_eq!(spool.dropped_batches(), 2);
        assert_eq!(spool.peek().unwrap().unwrap().key, fresh);
        // After a restart the files' times stand for when they were spooled.
        drop(spool);
        let mut spool = Spool::open(&tmp.0, 1 << 20).unwrap();
        assert_eq!(
            spool.expire(std::time::Duration::from_secs(3600)).unwrap(),
            0
        );
        assert_eq!(spool.len(), 1);
    }
}
