//! The declared datasets the server takes uploads for, by name: loaded
//! once at start (the shipped ones and `--datasets-dir`), each with the
//! shared declaration every upload of it carries to the writer.

use std::collections::BTreeMap;
use std::sync::Arc;

use adit_dataset::{Catalog, Declared};
use adit_types::dataset::Dataset;

use crate::{Error, Result};

/// One dataset the server takes uploads for.
#[derive(Debug)]
pub struct DatasetEntry {
    declared: Arc<Declared>,
    /// The declaration, shared by every upload of the dataset.
    dataset: Arc<Dataset>,
}

impl DatasetEntry {
    pub fn name(&self) -> &str {
        self.declared.name()
    }

    pub fn declared(&self) -> &Declared {
        &self.declared
    }

    pub fn dataset(&self) -> &Arc<Dataset> {
        &self.dataset
    }
}

/// Every dataset the server takes uploads for.
#[derive(Debug, Default)]
pub struct Datasets {
    by_name: BTreeMap<String, DatasetEntry>,
}

impl Datasets {
    pub fn new(catalog: &Catalog) -> Self {
        let by_name = catalog
            .iter()
            .map(|d| {
                let entry = DatasetEntry {
                    declared: d.clone(),
                    dataset: Arc::new(d.dataset().clone()),
                };
                (d.name().to_string(), entry)
            })
            .collect();
        Self { by_name }
    }

    /// The dataset called `name`, or 404 `unknown_dataset`.
    pub fn get(&self, name: &str) -> Result<&DatasetEntry> {
        self.by_name.get(name).ok_or_else(|| {
            Error::Dataset(adit_dataset::Error::UnknownDataset {
                name: name.to_string(),
            })
        })
    }

    /// Dataset names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }
}

/// The dataset name of an upload path (`/api/datasets/{name}/upload`).
pub(crate) fn upload_path_name(path: &str) -> Option<&str> {
    let name = path
        .strip_prefix("/api/datasets/")?
        .strip_suffix("/upload")?;
    (!name.is_empty() && !name.contains('/')).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_paths_name_one_dataset() {
        assert_eq!(
            upload_path_name("/api/datasets/market_data/upload"),
            Some("market_data")
        );
        assert_eq!(upload_path_name("/api/datasets//upload"), None);
        assert_eq!(upload_path_name("/api/datasets/a/b/upload"), None);
        assert_eq!(upload_path_name("/api/datasets/a"), None);
        let d = Datasets::new(&Catalog::shipped().unwrap());
        assert_eq!(d.get("market_data").unwrap().name(), "market_data");
        let e = d.get("nope").unwrap_err();
        assert_eq!(e.status(), hyper::StatusCode::NOT_FOUND);
        assert_eq!(e.code(), "unknown_dataset");
    }
}
