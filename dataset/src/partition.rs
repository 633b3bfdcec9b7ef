//! A dataset table's partitions: a UTC day, an ISO week (from Monday) or a
//! calendar month, named `<table>_pYYYYMMDD` after the day it starts. The
//! writer creates them on demand with the SQL function
//! `adit_ensure_dataset_partition` (migrations/0011), which computes the
//! same bounds and name; [`Partition::of`] lets it cache which exist.

use adit_types::dataset::{Dataset, PartitionInterval, Retention};
use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMicrosecondType;
use arrow_array::RecordBatch;
use chrono::{DateTime, Datelike, Days, Months, NaiveDate, NaiveTime, Utc};

/// One partition of a dataset table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Partition {
    /// First instant in it, Unix microseconds.
    pub start_micros: i64,
    /// First instant after it.
    pub end_micros: i64,
}

impl Partition {
    /// The partition holding `ts_micros` (Unix microseconds), or `None`
    /// for a time outside chrono's range.
    pub fn of(interval: PartitionInterval, ts_micros: i64) -> Option<Self> {
        let day = DateTime::<Utc>::from_timestamp_micros(ts_micros)?.date_naive();
        let (start, end) = match interval {
            PartitionInterval::Day => (day, day.checked_add_days(Days::new(1))?),
            PartitionInterval::Week => {
                let monday = day
                    .checked_sub_days(Days::new(u64::from(day.weekday().num_days_from_monday())))?;
                (monday, monday.checked_add_days(Days::new(7))?)
            }
            PartitionInterval::Month => {
                let first = day.with_day(1)?;
                (first, first.checked_add_months(Months::new(1))?)
            }
        };
        Some(Self {
            start_micros: micros(start),
            end_micros: micros(end),
        })
    }

    /// The partition of `table` called `name` (`<table>_pYYYYMMDD`, the
    /// day it starts), or `None` for a name adit did not give it.
    pub fn from_name(interval: PartitionInterval, table: &str, name: &str) -> Option<Self> {
        let suffix = name.strip_prefix(table)?.strip_prefix("_p")?;
        let start = NaiveDate::parse_from_str(suffix, "%Y%m%d").ok()?;
        let p = Self::of(interval, micros(start))?;
        (p.start_micros == micros(start)).then_some(p)
    }

    /// True when every row it can hold is older than `retention` at
    /// `now_micros`: retention drops it whole.
    pub fn is_expired(&self, now_micros: i64, retention: Retention) -> bool {
        self.end_micros <= now_micros - retention.micros()
    }

    /// `<table>_pYYYYMMDD`, the name the SQL function gives it.
    pub fn name(&self, table: &str) -> String {
        let start = DateTime::<Utc>::from_timestamp_micros(self.start_micros)
            .expect("a partition start is in range");
        format!("{table}_p{}", start.format("%Y%m%d"))
    }
}

/// The partitions the rows of `batch` (a batch decoded for `d`) fall in,
/// in time order: those the writer must have before its COPY.
pub fn partitions(d: &Dataset, batch: &RecordBatch) -> Vec<Partition> {
    let at = d.column_index(&d.time_column).expect("checked on load");
    let times = batch.column(at).as_primitive::<TimestampMicrosecondType>();
    let mut out: Vec<Partition> = Vec::new();
    for &t in times.values().iter() {
        // Rows mostly arrive in time order: skip the partition just seen.
        if out
            .last()
            .is_some_and(|p| (p.start_micros..p.end_micros).contains(&t))
        {
            continue;
        }
        out.extend(Partition::of(d.partition, t));
    }
    out.sort_unstable();
    out.dedup();
    out
}

fn micros(day: NaiveDate) -> i64 {
    day.and_time(NaiveTime::MIN).and_utc().timestamp_micros()
}

/// Creates (if missing) the partition of table `$1` (text) holding `$3`
/// (a `timestamptz`) for the interval `$2` (`day`, `week`, `month`), and
/// returns its name.
pub const ENSURE_PARTITION_SQL: &str =
    "SELECT adit_ensure_dataset_partition($1::text::regclass, $2, $3)";

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_micros()
    }

    #[test]
    fn bounds_and_names_per_interval() {
        let t = at("2025-07-02T10:30:00Z"); // a Wednesday
        let day = Partition::of(PartitionInterval::Day, t).unwrap();
        assert_eq!(day.start_micros, at("2025-07-02T00:00:00Z"));
        assert_eq!(day.end_micros, at("2025-07-03T00:00:00Z"));
        assert_eq!(day.name("market_data"), "market_data_p20250702");
        let week = Partition::of(PartitionInterval::Week, t).unwrap();
        assert_eq!(week.start_micros, at("2025-06-30T00:00:00Z"));
        assert_eq!(week.end_micros, at("2025-07-07T00:00:00Z"));
        let month = Partition::of(PartitionInterval::Month, at("2024-12-31T23:59:59Z")).unwrap();
        assert_eq!(month.start_micros, at("2024-12-01T00:00:00Z"));
        assert_eq!(month.end_micros, at("2025-01-01T00:00:00Z"));
        assert_eq!(
            Partition::from_name(PartitionInterval::Week, "m", "m_p20250630"),
            Some(week)
        );
        assert_eq!(
            Partition::from_name(PartitionInterval::Week, "m", "m_p20250701"),
            None
        );
        assert_eq!(
            Partition::from_name(PartitionInterval::Day, "m", "mm_p20250701"),
            None
        );
        assert_eq!(
            Partition::from_name(PartitionInterval::Month, "m", "m_p2025"),
            None
        );
        let keep = Retention { days: 7 };
        assert!(!week.is_expired(at("2025-07-13T23:59:59Z"), keep));
        assert!(week.is_expired(at("2025-07-14T00:00:00Z"), keep));
        // The last microsecond of a day is still in it.
        let edge = Partition::of(PartitionInterval::Day, at("2025-07-03T00:00:00Z") - 1).unwrap();
        assert_eq!(edge, day);
    }
}
