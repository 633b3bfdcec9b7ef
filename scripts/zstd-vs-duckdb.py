#!/usr/bin/env python3
"""Sizes of adit's archive files against DuckDB's for the same rows.

Usage: cargo run --release -p adit-benches --example zstd_levels -- DIR
       python3 scripts/zstd-vs-duckdb.py DIR      (needs: pip install duckdb)

For every DIR/*.parquet, DuckDB rewrites the same rows, in the same order
(miner, time), with its own zstd settings; the ratio adit/DuckDB is printed.
SPEC §5: adit's files are to be no larger than DuckDB's.
"""
import glob
import os
import sys

import duckdb

d = sys.argv[1] if len(sys.argv) > 1 else "/tmp/zstd-levels"
out = os.path.join(d, "duckdb.tmp.parquet")
for f in sorted(glob.glob(os.path.join(d, "*.parquet"))):
    if f == out:
        continue
    con = duckdb.connect()
    con.execute(
        f"COPY (SELECT * FROM read_parquet('{f}') ORDER BY miner_id, ts) "
        f"TO '{out}' (FORMAT parquet, COMPRESSION zstd)"
    )
    a, b = os.path.getsize(f), os.path.getsize(out)
    print(f"{os.path.basename(f):<28} adit {a:>10,}  duckdb {b:>10,}  ratio {a / b:.3f}")
os.remove(out)
