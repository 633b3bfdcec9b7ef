//! Per-site upload counters: which sites upload, and how much. They let an
//! operator notice a site that stopped uploading (its counter stops
//! rising) and see which sites carry the load. One series pair per site
//! that uploaded since the process started.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// The only dataset today; every per-site series carries it so that
/// per-dataset sums keep working when more datasets arrive.
pub const TELEMETRY_DATASET: &str = "miner_telemetry";

/// Committed uploads and rows per site.
#[derive(Debug, Default)]
pub struct SiteCounters {
    by_site: Mutex<BTreeMap<i32, SiteCount>>,
    /// The same for declared datasets, by (dataset, site).
    by_dataset_site: Mutex<BTreeMap<(String, i32), SiteCount>>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SiteCount {
    pub uploads: u64,
    pub rows: u64,
}

impl SiteCounters {
    /// Counts one committed upload of `rows` accepted rows from `site_id`.
    pub fn committed(&self, site_id: i32, rows: u64) {
        let mut by_site = self.by_site.lock().unwrap_or_else(|p| p.into_inner());
        let c = by_site.entry(site_id).or_default();
        c.uploads += 1;
        c.rows += rows;
    }

    /// Counts one committed upload of dataset `dataset` from `site_id`.
    pub fn committed_dataset(&self, dataset: &str, site_id: i32, rows: u64) {
        let mut by = self
            .by_dataset_site
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let c = by.entry((dataset.to_string(), site_id)).or_default();
        c.uploads += 1;
        c.rows += rows;
    }

    /// Every (dataset, site)'s counts with its label set: telemetry's
    /// first, then the declared datasets' by name and site.
    pub fn labelled(&self) -> Vec<(String, SiteCount)> {
        let mut out: Vec<(String, SiteCount)> = self
            .snapshot()
            .into_iter()
            .map(|(site, c)| (Self::labels(site), c))
            .collect();
        let by = self
            .by_dataset_site
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        out.extend(
            by.iter()
                .map(|((d, site), c)| (format!("{{dataset=\"{d}\",site_id=\"{site}\"}}"), *c)),
        );
        out
    }

    /// Every site's counts, by site id.
    pub fn snapshot(&self) -> Vec<(i32, SiteCount)> {
        let by_site = self.by_site.lock().unwrap_or_else(|p| p.into_inner());
        by_site.iter().map(|(s, c)| (*s, *c)).collect()
    }

    /// The label set of one site's series.
    pub fn labels(site_id: i32) -> String {
        format!("{{dataset=\"{TELEMETRY_DATASET}\",site_id=\"{site_id}\"}}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_per_site_in_site_order() {
        let c = SiteCounters::default();
        c.committed(7, 100);
        c.committed(3, 5);
        c.committed(7, 0);
        assert_eq!(
            c.snapshot(),
            vec![
                (
                    3,
                    SiteCount {
                        uploads: 1,
                        rows: 5
                    }
                ),
                (
                    7,
                    SiteCount {
                        uploads: 2,
                        rows: 100
                    }
                ),
            ]
        );
        assert_eq!(
            SiteCounters::labels(7),
            r#"{dataset="miner_telemetry",site_id="7"}"#
        );
    }
}
