//! Rollup marks: every flush records, in its own transaction, the hours it
//! wrote rows into — and each next hour, whose first counter increase pairs
//! with the last reading before it — in `rollup_dirty_hours`. Marks of
//! hours still open are remembered after commit and not written again (the
//! rollup never computes an open hour), so steady ingest costs one mark per
//! site per hour; a late row always writes its mark, also when this writer
//! remembers that hour from before it closed.

use std::collections::{BTreeSet, HashSet};

use chrono::{DateTime, Utc};

use crate::{Result, Upload};

const MICROS_PER_HOUR: i64 = 3_600_000_000;

/// (site_id, start of the hour in Unix microseconds)
pub type Mark = (i32, i64);

/// Marks of open hours already committed by this worker.
#[derive(Debug, Default)]
pub struct DirtyMarks {
    committed_open: HashSet<Mark>,
}

impl DirtyMarks {
    /// The marks `uploads` need, sorted (so concurrent writers lock them in
    /// the same order), minus hours still open now that are already marked.
    pub fn wanted(&self, uploads: &[&Upload]) -> Vec<Mark> {
        self.wanted_at(uploads, Utc::now().timestamp_micros())
    }

    /// [`DirtyMarks::wanted`] at `now_micros`. A remembered mark counts only
    /// while its hour is open at `now_micros`: the cache is pruned only
    /// after a commit, so a writer idle across an hour's end still holds the
    /// closed hour's mark, which the rollup may have computed and deleted
    /// since — a late row of that hour must write it again.
    pub fn wanted_at(&self, uploads: &[&Upload], now_micros: i64) -> Vec<Mark> {
        let cached =
            |m: &Mark| m.1 + MICROS_PER_HOUR > now_micros && self.committed_open.contains(m);
        let mut marks = BTreeSet::new();
        for u in uploads {
            let mut last = None;
            for s in &u.samples {
                let hour = s.ts_micros.div_euclid(MICROS_PER_HOUR) * MICROS_PER_HOUR;
                if last == Some(hour) {
                    continue;
                }
                last = Some(hour);
                for h in [hour, hour + MICROS_PER_HOUR] {
                    if !cached(&(u.site_id, h)) {
                        marks.insert((u.site_id, h));
                    }
                }
            }
        }
        marks.into_iter().collect()
    }

    /// Remembers the committed marks of hours that are still open at
    /// `now_micros`, and forgets hours that have closed.
    pub fn committed(&mut self, marks: &[Mark], now_micros: i64) {
        self.committed_open
            .retain(|&(_, h)| h + MICROS_PER_HOUR > now_micros);
        self.committed_open.extend(
            marks
                .iter()
                .copied()
                .filter(|&(_, h)| h + MICROS_PER_HOUR > now_micros),
        );
    }
}

/// Writes `marks` in the flush transaction; a mark that exists gets a new
/// version, so a worker computing that hour right now will not delete it.
pub async fn write(tx: &tokio_postgres::Transaction<'_>, marks: &[Mark]) -> Result<()> {
    if marks.is_empty() {
        return Ok(());
    }
    let sites: Vec<i32> = marks.iter().map(|m| m.0).collect();
    let hours: Vec<DateTime<Utc>> = marks
        .iter()
        .map(|m| DateTime::from_timestamp_micros(m.1).expect("hour in range"))
        .collect();
    tx.execute(
        "INSERT INTO rollup_dirty_hours (site_id, bucket) \
         SELECT * FROM unnest($1::int4[], $2::timestamptz[]) \
         ON CONFLICT (site_id, bucket) DO UPDATE SET version = rollup_dirty_hours.version + 1",
        &[&sites, &hours],
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use adit_types::Sample;

    fn upload(site_id: i32, ts: &[i64]) -> Upload {
        Upload {
            site_id,
            samples: ts
                .iter()
                .map(|&t| Sample {
                    ts_micros: t,
                    ..Default::default()
                })
                .collect(),
            ..Upload::test_upload()
        }
    }

    #[test]
    fn marks_each_hour_and_the_next_once() {
        let h = MICROS_PER_HOUR;
        let a = upload(1, &[10 * h + 5, 10 * h + 9, 12 * h]);
        let b = upload(2, &[10 * h]);
        let marks = DirtyMarks::default().wanted(&[&a, &b]);
        assert_eq!(
            marks,
            vec![
                (1, 10 * h),
                (1, 11 * h),
                (1, 12 * h),
                (1, 13 * h),
                (2, 10 * h),
                (2, 11 * h)
            ]
        );
    }

    #[test]
    fn open_hours_are_marked_once_closed_hours_always() {
        let h = MICROS_PER_HOUR;
        let now = 10 * h + 30; // hour 10 is open
        let mut d = DirtyMarks::default();
        let current = upload(1, &[10 * h]);
        let marks = d.wanted_at(&[&current], now);
        d.committed(&marks, now);
        assert!(
            d.wanted_at(&[&current], now).is_empty(),
            "open hour already marked"
        );
        let late = upload(1, &[9 * h]);
        assert_eq!(
            d.wanted_at(&[&late], now),
            vec![(1, 9 * h)],
            "hour 9 closed: marked again; 10 cached"
        );
        d.committed(&[], 11 * h + 1); // hour 10 closed
        assert_eq!(d.wanted_at(&[&current], 11 * h + 1), vec![(1, 10 * h)]);
    }

    /// Issue 17 item 11: a writer that committed a mark of an open hour and
    /// then stayed idle past that hour's end must mark a late row of it (the
    /// rollup may have computed and deleted the mark meanwhile).
    #[test]
    fn a_writer_idle_across_the_hour_end_marks_late_rows() {
        let h = MICROS_PER_HOUR;
        let now = Utc::now().timestamp_micros();
        let previous = (now.div_euclid(h) - 1) * h;
        let mut d = DirtyMarks::default();
        let row = upload(1, &[previous + 5]);
        // Committed while the previous hour was still open ...
        d.committed(&d.wanted(&[&row]), previous + 30);
        // ... and no flush since: a late row of that hour arrives now.
        assert!(
            d.wanted(&[&row]).contains(&(1, previous)),
            "the closed hour is marked again"
        );
    }

    #[test]
    fn remembered_marks_count_only_while_their_hour_is_open() {
        let h = MICROS_PER_HOUR;
        let mut d = DirtyMarks::default();
        let row = upload(1, &[10 * h + 5]);
        let marks = d.wanted_at(&[&row], 10 * h + 30);
        d.committed(&marks, 10 * h + 30);
        assert!(d.wanted_at(&[&row], 11 * h - 1).is_empty(), "hour 10 open");
        // Idle until hour 10 has closed: its late row is marked again; hour
        // 11 (marked with it) is still open and remembered.
        assert_eq!(d.wanted_at(&[&row], 11 * h), vec![(1, 10 * h)]);
        assert_eq!(d.wanted_at(&[&row], 12 * h), vec![(1, 10 * h), (1, 11 * h)]);
    }
}
