#!/usr/bin/env python3
"""Summarize criterion results as one JSON object.

Reads every <criterion dir>/**/new/estimates.json with the benchmark.json
beside it and prints, for each benchmark id ("gzip_decode/1k", ...):

    {"rows_per_s": ..., "bytes_per_s": ..., "mb_per_s": ..., "mean_ns": ...}

rows_per_s comes from Throughput::Elements, bytes_per_s (and mb_per_s,
10^6 bytes) from Throughput::Bytes/BytesDecimal; ElementsAndBytes gives
both. Rates are throughput / mean, the mean being criterion's point
estimate in nanoseconds per iteration.

The criterion dir is the first argument, else $CRITERION_HOME, else
$CARGO_TARGET_DIR/criterion, else target/criterion of this workspace.
Python 3 standard library only.
"""

import json
import os
import sys
from pathlib import Path


def criterion_dir(argv):
    if len(argv) > 1:
        return Path(argv[1])
    if os.environ.get("CRITERION_HOME"):
        return Path(os.environ["CRITERION_HOME"])
    if os.environ.get("CARGO_TARGET_DIR"):
        return Path(os.environ["CARGO_TARGET_DIR"]) / "criterion"
    return Path(__file__).resolve().parent.parent / "target" / "criterion"


def counts(throughput):
    """(rows, bytes) per iteration from criterion's throughput record."""
    if not throughput:
        return None, None
    kind, value = next(iter(throughput.items()))
    if kind == "Elements":
        return value, None
    if kind in ("Bytes", "BytesDecimal"):
        return None, value
    if kind == "Bits":
        return None, value / 8
    if kind == "ElementsAndBytes":
        return value["elements"], value["bytes"]
    return None, None


def summarize(root):
    out = {}
    for estimates_path in sorted(root.glob("**/new/estimates.json")):
        bench_path = estimates_path.with_name("benchmark.json")
        if not bench_path.is_file():
            continue
        bench = json.loads(bench_path.read_text())
        mean_ns = json.loads(estimates_path.read_text())["mean"]["point_estimate"]
        entry = {}
        rows, nbytes = counts(bench.get("throughput"))
        per_s = 1e9 / mean_ns
        if rows is not None:
            entry["rows_per_s"] = round(rows * per_s, 1)
        if nbytes is not None:
            entry["bytes_per_s"] = round(nbytes * per_s, 1)
            entry["mb_per_s"] = round(nbytes * per_s / 1e6, 2)
        entry["mean_ns"] = round(mean_ns, 1)
        out[bench["full_id"]] = entry
    return out


def main(argv):
    root = criterion_dir(argv)
    if not root.is_dir():
        print(f"summarize.py: no criterion results under {root}", file=sys.stderr)
        return 1
    summary = summarize(root)
    if not summary:
        print(f"summarize.py: no estimates under {root}", file=sys.stderr)
        return 1
    json.dump(summary, sys.stdout, indent=2, sort_keys=True)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
