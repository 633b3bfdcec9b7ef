//! The crate graph the README draws: each stage depends on the adit crates
//! it names there and no others (so no cycle can form, and ingest stays a
//! pure stage).

use std::collections::BTreeSet;

/// The `adit-*` crates in the `[dependencies]` of `crate_dir/Cargo.toml`.
fn adit_dependencies(crate_dir: &str) -> BTreeSet<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(crate_dir)
        .join("Cargo.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut in_deps = false;
    let mut deps = BTreeSet::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
            continue;
        }
        if in_deps && line.starts_with("adit-") {
            let name = line.split(['.', ' ', '=']).next().unwrap_or_default();
            deps.insert(name.to_string());
        }
    }
    deps
}

#[test]
fn each_stage_depends_on_the_crates_the_readme_names() {
    let want: &[(&str, &[&str])] = &[
        ("types", &[]),
        ("dataset", &["adit-types"]),
        ("ingest", &["adit-types"]),
        // The dataset archive builds its files with the declarations'
        // schemas (`adit_dataset::Declared`).
        ("archive", &["adit-dataset", "adit-types"]),
        ("control", &["adit-types"]),
        ("rollup", &["adit-dataset", "adit-types"]),
        ("writer", &["adit-archive", "adit-dataset", "adit-types"]),
        (
            "server",
            &[
                "adit-archive",
                "adit-control",
                "adit-dataset",
                "adit-ingest",
                "adit-types",
                "adit-writer",
            ],
        ),
        // The declarations: where generated rows start, --verify's expected
        // rows and copy-file's COPY for a dataset.
        ("load-tests", &["adit-dataset", "adit-types"]),
        ("collector", &[]),
        ("minersim", &["adit-load"]),
    ];
    for (dir, names) in want {
        let want: BTreeSet<String> = names.iter().map(|s| s.to_string()).collect();
        assert_eq!(adit_dependencies(dir), want, "{dir}/Cargo.toml");
    }
}
