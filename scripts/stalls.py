#!/usr/bin/env python3
"""Where the slow acknowledgements of `make bench`'s half-rate run came from.

Usage: python3 scripts/stalls.py [TRACE] [SERVE_LOG] [--over MS]
       (defaults: target/bench/half-trace.csv, target/bench/serve.log, 150)

TRACE is `adit load --trace` output (one line per upload: start_s,
start_unix, latency_ms, status, retries). SERVE_LOG is the server's log
with the writer's debug lines ("Flushed a batch. worker=.. rows=..
elapsed_ms=..", which `make bench` turns on). For every burst of uploads
slower than --over, it prints the burst and the flushes that ended while
it lasted: flushes of both writers ending together after an unusually
long time point at PostgreSQL (a commit waiting on the disk), a flush of
many rows after one slow flush is the queue catching up.
"""
import csv
import datetime
import re
import statistics
import sys

args = [a for a in sys.argv[1:] if not a.startswith("--")]
over = 150.0
if "--over" in sys.argv:
    over = float(sys.argv[sys.argv.index("--over") + 1])
    args = [a for a in args if a != sys.argv[sys.argv.index("--over") + 1]]
trace = args[0] if args else "target/bench/half-trace.csv"
log = args[1] if len(args) > 1 else "target/bench/serve.log"

ups = []
with open(trace) as f:
    for row in csv.DictReader(f):
        ups.append((float(row["start_unix"]), float(row["latency_ms"])))
if not ups:
    sys.exit(f"{trace}: no uploads")
first, last = ups[0][0], ups[-1][0] + max(l for _, l in ups) / 1000

flush_re = re.compile(
    r"^(\S+?)Z?\s.*Flushed a batch\..*?worker\W+(\d+).*?rows\W+(\d+).*?elapsed_ms\W+(\d+)"
)
flushes = []
with open(log, errors="replace") as f:
    for line in f:
        if "Flushed a batch" not in line:
            continue
        m = flush_re.match(re.sub(r"\x1b\[[0-9;]*m", "", line))
        if not m:
            continue
        t = datetime.datetime.fromisoformat(m.group(1).rstrip("Z")).replace(
            tzinfo=datetime.timezone.utc).timestamp()
        if first <= t <= last:
            flushes.append((t, int(m.group(2)), int(m.group(3)), int(m.group(4))))


def clock(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%H:%M:%S.%f")[:-3]


lat = sorted(l for _, l in ups)
print(f"{len(ups)} uploads from {clock(first)}: p50 {lat[len(lat) // 2]:.0f} ms, "
      f"p99 {lat[int(len(lat) * 0.99)]:.0f} ms, max {lat[-1]:.0f} ms; "
      f"{sum(l > over for l in lat)} over {over:.0f} ms")
if flushes:
    print(f"{len(flushes)} flushes: median {statistics.median(f[2] for f in flushes):.0f} rows "
          f"in {statistics.median(f[3] for f in flushes):.0f} ms")
else:
    print(f"no writer flush lines in {log} for that time (RUST_LOG=adit_writer::worker=debug)")

# Bursts: slow uploads whose waits overlap.
bursts = []
for start, l in ups:
    if l <= over:
        continue
    end = start + l / 1000
    if bursts and start <= bursts[-1][1]:
        b = bursts[-1]
        bursts[-1] = (b[0], max(b[1], end), b[2] + 1, max(b[3], l))
    else:
        bursts.append((start, end, 1, l))
for b0, b1, n, worst in bursts:
    print(f"\n{clock(b0)} - {clock(b1)}: {n} uploads over {over:.0f} ms, worst {worst:.0f} ms")
    for t, w, rows, ms in flushes:
        if b0 <= t <= b1 + 0.05:
            print(f"  flush ended {clock(t)}  writer {w}  {rows:>6} rows  {ms:>4} ms")
