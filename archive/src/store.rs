//! The object store behind the archive, from one URL: `file:///path` (a
//! local directory, the default under `make run`) or `s3://bucket/prefix`
//! (AWS or any S3-compatible store; credentials, region and a custom
//! endpoint come from the usual AWS_* variables, e.g. AWS_ENDPOINT and
//! AWS_ALLOW_HTTP=true for a store on loopback).

use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::ObjectStore;

use crate::ArchiveError;

/// A store and the prefix under which the archive lives.
#[derive(Debug, Clone)]
pub struct Archive {
    pub store: Arc<dyn ObjectStore>,
    pub prefix: Path,
}

impl Archive {
    pub fn from_url(raw: &str) -> Result<Self, ArchiveError> {
        let bad = |reason: &str| ArchiveError::Url {
            url: raw.to_string(),
            reason: reason.to_string(),
        };
        let url = url::Url::parse(raw).map_err(|e| bad(&e.to_string()))?;
        match url.scheme() {
            "file" => {
                let dir = url
                    .to_file_path()
                    .map_err(|_| bad("not an absolute local path"))?;
                std::fs::create_dir_all(&dir).map_err(|e| bad(&e.to_string()))?;
                let store = LocalFileSystem::new_with_prefix(&dir)?.with_automatic_cleanup(true);
                Ok(Self {
                    store: Arc::new(store),
                    prefix: Path::default(),
                })
            }
            "s3" => {
                let bucket = url.host_str().ok_or_else(|| bad("no bucket"))?;
                // reqwest's rustls is built without a provider (ring only, no
                // aws-lc): make ring the process default before its client is
                // built. Err means one is installed already, which is fine.
                let _ = rustls::crypto::ring::default_provider().install_default();
                let store = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .build()?;
                let prefix = Path::from(url.path().trim_matches('/'));
                Ok(Self {
                    store: Arc::new(store),
                    prefix,
                })
            }
            _ => Err(bad("use file:///path or s3://bucket/prefix")),
        }
    }

    /// `<prefix>/miner_telemetry/site_id=<s>/date=<YYYY-MM-DD>/<name>`
    pub fn file_path(&self, site_id: i32, day: chrono::NaiveDate, name: &str) -> Path {
        let rel = format!(
            "miner_telemetry/site_id={site_id}/date={}/{name}",
            day.format("%Y-%m-%d")
        );
        if self.prefix.as_ref().is_empty() {
            Path::from(rel)
        } else {
            Path::from(format!("{}/{rel}", self.prefix))
        }
    }

    /// The archive's root for listing.
    pub fn table_root(&self) -> Path {
        if self.prefix.as_ref().is_empty() {
            Path::from("miner_telemetry")
        } else {
            Path::from(format!("{}/miner_telemetry", self.prefix))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hive_paths() {
        let dir = std::env::temp_dir().join(format!("adit-store-{}", std::process::id()));
        let a = Archive::from_url(&format!("file://{}", dir.display())).unwrap();
        let d = chrono::NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
        assert_eq!(
            a.file_path(3, d, "x.parquet").as_ref(),
            "miner_telemetry/site_id=3/date=2026-11-22/x.parquet"
        );
        assert!(Archive::from_url("ftp://x/y").is_err());
        let _ = std::fs::remove_dir_all(dir);
    }
}
