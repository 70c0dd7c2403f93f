"""Benchmark: what logging a served forecast costs a request, i.e. the latency of `PredictionLog.append`.

Appends ~2000 realistic rows (one committed transaction each) to a fresh log in a temp folder (WAL,
synchronous=NORMAL, background checkpoints, as the API uses it) and times each call, twice: as a tight burst (the
worst case: the background checkpoints cannot keep up and the WAL limit forces inline ones), paced at ~1000
appends/s (a saturated server: still too fast for the WAL to restart) and at ~100/s (a busy one: the background
checkpoints keep the WAL small and no append ever checkpoints). Two references are measured in the same run:
- baseline: appending the same row dict to an in-memory list (the least any logging can cost);
- naive sqlite: the same INSERT on a connection with SQLite's defaults (rollback journal, synchronous=FULL, an fsync
  per commit), which is what a first implementation would do.
The service logs a batch's forecasts in one group commit (`append_many`); its cost per row is timed in groups of 16
(`prediction_log_group_commit_16`: each sample is one group's time divided by 16).
Results (mean, p50, p99, p99.9, max in µs) go to benchmarks/results/prediction_log.json. --smoke: 200 appends (30 paced
at ~100/s), 10 naive ones.
Run: .venv/bin/python benchmarks/prediction_log.py [--appends 2000] [--smoke]
"""
import os, sqlite3, tempfile, time
from pathlib import Path
import numpy as np
from common import out_path, parser, save_results
from itff.labels import label_spec
try: from itff.predlog import SCHEMA, PredictionLog, _sql_value                    # their home after the module split …
except ImportError: from itff.monitor import SCHEMA, PredictionLog, _sql_value   # … and before (drop once exported)

ROW = dict(request_id="bench", source="api", bundle_id="BTCUSDT_1h_direction_lstm", bundle_sha="ab" * 32,
           symbol="BTCUSDT", timeframe="1h", target="direction", model_type="lstm",
           label=label_spec("direction", "1h").to_dict(),
           bar_time="2025-06-01 00:00", probability=0.61, mc_std=0.04, mutual_info=0.002, ood_score=1.3,
           in_distribution=True, decision=True, threshold=0.55)


def stats_us(times):
    t = np.asarray(times) * 1e6
    q = lambda x: round(float(np.percentile(t, x)), 1)
    return {"mean_us": round(float(t.mean()), 1), "p50_us": q(50), "p99_us": q(99), "p999_us": q(99.9),
            "max_us": round(float(t.max()), 1), "n": len(t)}


def timed(fn, n, pause=0.0):
    out = []
    for i in range(n):
        t0 = time.perf_counter(); fn(i); out.append(time.perf_counter() - t0)
        if pause: time.sleep(pause)
    return out


def log_appends(path, n, pause=0.0):
    "Latencies of `n` appends to a fresh log at `path`, and the WAL's size at the end."
    with PredictionLog(path) as log:
        log.append(ROW)                                                        # warm: statement cache, file created
        times = timed(lambda i: log.append({**ROW, "request_id": f"w-{i}"}), n, pause)
        return times, log.journal_mode, Path(f"{log.path}-wal").stat().st_size


def group_commits(path, n, size=16):
    "Per-row latencies of `n` rows appended in group commits of `size` rows (each group's time over its size)."
    with PredictionLog(path) as log:
        log.append(ROW)
        per_group = timed(lambda i: log.append_many([{**ROW, "request_id": f"g-{i}-{j}"} for j in range(size)]),
                          max(1, n // size))
        return [t / size for t in per_group]


def naive_sqlite(path, n):
    "The same rows through a default-configured connection: rollback journal, an fsync per commit."
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(SCHEMA)
    keys = ["logged_at", *ROW]
    sql = f"INSERT INTO forecasts ({', '.join(keys)}) VALUES ({', '.join('?' * len(keys))})"
    row = {"logged_at": "2025-06-01T00:00:00+00:00", **ROW}
    insert = lambda i: conn.execute(sql, [_sql_value(k, v) for k, v in {**row, "request_id": f"n-{i}"}.items()])
    times = timed(insert, n)
    conn.close()
    return times


def main(appends=2000, naive_appends=100, busy_appends=300, out=None):
    with tempfile.TemporaryDirectory() as d:
        store = []
        baseline = timed(lambda i: store.append({**ROW, "request_id": f"m-{i}"}), appends)
        wal, mode, wal_bytes = log_appends(Path(d)/"burst.db", appends)
        paced, _, paced_wal_bytes = log_appends(Path(d)/"paced1.db", appends // 2, pause=0.001)
        busy, _, busy_wal_bytes = log_appends(Path(d)/"paced10.db", busy_appends, pause=0.01)
        groups = group_commits(Path(d)/"groups.db", appends)
        naive = naive_sqlite(Path(d)/"naive.db", naive_appends)
        fs = os.statvfs(d)
    res = {"prediction_log_append": stats_us(wal), "prediction_log_append_paced_1ms": stats_us(paced),
           "prediction_log_append_paced_10ms": stats_us(busy),
           "prediction_log_group_commit_16": stats_us(groups),
           "baseline_in_memory_append": stats_us(baseline),
           "naive_sqlite_append": stats_us(naive),
           "overhead_p50_us": round(float(np.percentile(wal, 50) - np.percentile(baseline, 50)) * 1e6, 1),
           "speedup_p50_vs_naive_sqlite": round(float(np.percentile(naive, 50) / np.percentile(wal, 50)), 1),
           "setup": {"journal_mode": mode, "synchronous": "NORMAL", "wal_bytes_at_end": wal_bytes,
                     "paced_1ms_wal_bytes_at_end": paced_wal_bytes, "paced_10ms_wal_bytes_at_end": busy_wal_bytes,
                     "checkpoint": "background thread every 200 appends (PASSIVE); inline at 4000 WAL pages",
                     "temp_dir": tempfile.gettempdir(),
                     "fs_block_size": fs.f_bsize, "cpus": os.cpu_count(), "target_p99_us": 1000}}
    return save_results(res, out or out_path("prediction_log"))


if __name__ == "__main__":
    ap = parser(__doc__)
    ap.add_argument("--appends", type=int, default=2000)
    ap.add_argument("--naive-appends", type=int, default=100)
    a = ap.parse_args()
    sizes = (200, 10, 30) if a.smoke else (a.appends, a.naive_appends, 300)
    main(*sizes, out=out_path("prediction_log", a.smoke, a.out))
