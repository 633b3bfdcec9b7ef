//! The declared datasets: the shipped ones (compiled into the binary, so
//! `adit` works from any directory) and an operator's own from a directory
//! (`--datasets-dir` / `ADIT_DATASETS_DIR`), each checked when loaded.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use adit_types::dataset::Dataset;

use crate::check::check;
use crate::declared::Declared;
use crate::{Error, Result};

/// The shipped declarations: file name and text.
pub const SHIPPED: &[(&str, &str)] = &[
    (
        "metrics_aggregated.toml",
        include_str!("../../datasets/metrics_aggregated.toml"),
    ),
    (
        "market_data.toml",
        include_str!("../../datasets/market_data.toml"),
    ),
    (
        "agent_analysis_results.toml",
        include_str!("../../datasets/agent_analysis_results.toml"),
    ),
    (
        "strategy_executions.toml",
        include_str!("../../datasets/strategy_executions.toml"),
    ),
    (
        "inventory.toml",
        include_str!("../../datasets/inventory.toml"),
    ),
];

/// Parses and checks one declaration; `source_name` (its file) names it
/// in errors.
pub fn parse_declaration(source_name: &Path, text: &str) -> Result<Dataset> {
    let d: Dataset = toml::from_str(text)
        .map_err(|e| Error::invalid(source_name, e.to_string().trim_end().to_string()))?;
    check(&d).map_err(|reason| Error::invalid(source_name, reason))?;
    Ok(d)
}

/// Every declared dataset, by name.
#[derive(Debug, Clone)]
pub struct Catalog {
    datasets: BTreeMap<String, Arc<Declared>>,
}

impl Catalog {
    /// The shipped datasets only.
    pub fn shipped() -> Result<Self> {
        let mut catalog = Self {
            datasets: BTreeMap::new(),
        };
        for (file, text) in SHIPPED {
            let path = Path::new("datasets").join(file);
            catalog.add(&path, parse_declaration(&path, text)?, true)?;
        }
        Ok(catalog)
    }

    /// The shipped datasets and, when `dir` is given, every `*.toml` in it
    /// (a file `<name>.toml` declares dataset `<name>`).
    pub fn load(dir: Option<&Path>) -> Result<Self> {
        let mut catalog = Self::shipped()?;
        let Some(dir) = dir else {
            return Ok(catalog);
        };
        let unreadable = |e: std::io::Error| Error::DatasetsDir {
            dir: dir.to_path_buf(),
            reason: e.to_string(),
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(unreadable)?
            .map(|e| e.map(|e| e.path()))
            .collect::<std::io::Result<_>>()
            .map_err(unreadable)?;
        files.retain(|p| p.extension().is_some_and(|x| x == "toml"));
        files.sort();
        for path in files {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| Error::invalid(&path, format!("cannot read: {e}")))?;
            let d = parse_declaration(&path, &text)?;
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            if stem != d.name {
                return Err(Error::invalid(
                    &path,
                    format!(
                        "declares dataset {:?}; name the file {}.toml",
                        d.name, d.name
                    ),
                ));
            }
            catalog.add(&path, d, false)?;
        }
        Ok(catalog)
    }

    fn add(&mut self, path: &Path, d: Dataset, shipped: bool) -> Result<()> {
        if let Some(other) = self.datasets.get(&d.name) {
            let whose = if other.shipped {
                "a shipped"
            } else {
                "another"
            };
            return Err(Error::invalid(
                path,
                format!("{whose} dataset is already named {:?}", d.name),
            ));
        }
        if let Some(other) = self
            .datasets
            .values()
            .find(|o| o.dataset().table() == d.table())
        {
            return Err(Error::invalid(
                path,
                format!(
                    "table {:?} is already dataset {:?}'s",
                    d.table(),
                    other.dataset().name
                ),
            ));
        }
        let name = d.name.clone();
        self.datasets
            .insert(name, Arc::new(Declared::new(d, shipped)));
        Ok(())
    }

    /// The dataset called `name`, or `unknown_dataset`.
    pub fn get(&self, name: &str) -> Result<&Arc<Declared>> {
        self.datasets
            .get(name)
            .ok_or_else(|| Error::UnknownDataset {
                name: name.to_string(),
            })
    }

    /// Every dataset, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Declared>> {
        self.datasets.values()
    }

    pub fn len(&self) -> usize {
        self.datasets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.datasets.is_empty()
    }
}

#[cfg(test)]
mod tests;
