"""Benchmark: `make_windows` (one strided copy) against a per-window Python loop, on the real BTCUSDT 1h features.

Both run in the same process on the same data; the result is the ratio, written as JSON. --smoke: the last 2,000
candles, one repeat.
Run: .venv/bin/python benchmarks/windows.py [--window 48] [--repeat 5] [--smoke]
"""
import time, tracemalloc
import numpy as np
from common import out_path, parser, save_results
from itff.data import load_ohlcv
from itff.datasets import make_windows
from itff.features import engineer_features, feature_warmup


def naive_windows(values, ends, window):
    "The obvious loop: one slice and copy per window, stacked at the end."
    return np.stack([values[e - window + 1:e + 1].astype("float32") for e in ends])


def best_time(fn, repeat):
    "Best wall time of `repeat` runs, and peak traced memory of one run (MiB)."
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter(); fn(); times.append(time.perf_counter() - t0)
    tracemalloc.start(); fn(); peak = tracemalloc.get_traced_memory()[1]; tracemalloc.stop()
    return min(times), peak / 2**20


def main(window=48, repeat=5, bars=None, out=None):
    "Time both on the last `bars` candles (default: all of them)."
    feats = engineer_features(load_ohlcv("BTCUSDT", "1h").iloc[-(bars or 0):])
    values = np.nan_to_num(feats.to_numpy("float32"))
    ends = np.arange(feature_warmup("1h") + window, len(values))
    assert np.array_equal(make_windows(values, ends, window), naive_windows(values, ends, window))
    fast, fast_mem = best_time(lambda: make_windows(values, ends, window), repeat)
    slow, slow_mem = best_time(lambda: naive_windows(values, ends, window), repeat)
    res = {"benchmark": "make_windows vs per-window loop", "windows": len(ends), "window": window,
           "features": values.shape[1],
           "make_windows_s": round(fast, 4), "naive_loop_s": round(slow, 4), "speedup": round(slow / fast, 2),
           "make_windows_peak_mib": round(fast_mem, 1), "naive_loop_peak_mib": round(slow_mem, 1),
           "memory_ratio": round(slow_mem / fast_mem, 2)}
    return save_results(res, out or out_path("windows"))


if __name__ == "__main__":
    ap = parser(__doc__)
    ap.add_argument("--window", type=int, default=48)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    main(a.window, 1 if a.smoke else a.repeat, 2000 if a.smoke else None, out_path("windows", a.smoke, a.out))
