"""Benchmark: single-request latency of `Predictor.predict_window` (30 MC samples, one jitted pass) against naive loops.

For each model type (real size: window 48, 21 features) a bundle is written and loaded, then one request is timed
repeatedly with three implementations in the same process:
- fast: Predictor.predict_window (scaling, one jitted MC pass of all samples, calibration);
- naive predict loop: 30 calls of `model.predict` (what a first API version does; note it does not even sample dropout);
- naive eager MC: 30 eager calls of `model(x, training=True)`.
Results (p50/p99 in ms, speedups) go to benchmarks/results/predictor_latency.json.
Run: .venv/bin/python benchmarks/predictor_latency.py [--requests 500]
"""
import argparse, os, platform, tempfile, time
from pathlib import Path
import numpy as np
from common import RESULTS, save_results
from itff.artifacts import write_bundle
from itff.calibrate import Calibrator
from itff.datasets import Scaler
from itff.models import build_model
from itff.predictor import Predictor

WINDOW, N_FEATURES, MC = 48, 21, 30


def percentiles(times):
    t = np.asarray(times) * 1e3
    return {"p50_ms": round(float(np.percentile(t, 50)), 3), "p99_ms": round(float(np.percentile(t, 99)), 3), "n": len(t)}


def timed(fn, n):
    out = []
    for _ in range(n):
        t0 = time.perf_counter(); fn(); out.append(time.perf_counter() - t0)
    return out


def bench(model_type, requests, naive_requests, folder):
    model = build_model(model_type, WINDOW, N_FEATURES, seed=0)
    scaler = Scaler([f"f{i}" for i in range(N_FEATURES)], np.zeros(N_FEATURES), np.ones(N_FEATURES), 1)
    path = write_bundle(Path(folder)/model_type, [model], scaler, Calibrator("temperature", {"T": 1.2}),
                        {"id": model_type, "window": WINDOW, "timeframe": "1h", "horizon": 4, "threshold": 0.5,
                         "label": {"definition": "benchmark"}, "train": {"mc_samples": MC, "seed": 0}}, {})
    pred = Predictor.load(path=path)
    x = np.random.default_rng(0).normal(size=(WINDOW, N_FEATURES))
    m = pred.bundle.models[0]
    def predict_loop():
        xs = pred.bundle.scaler.transform(x)[None]
        p = np.array([m.predict(xs, verbose=0)[0, 0] for _ in range(MC)])
        return pred.bundle.calibrator(np.array([p.mean()]))
    def eager_mc():
        xs = pred.bundle.scaler.transform(x)[None]
        p = np.array([float(np.asarray(m(xs, training=True))[0, 0]) for _ in range(MC)])
        return pred.bundle.calibrator(np.array([p.mean()]))
    for f in (lambda: pred.predict_window(x), predict_loop, eager_mc): f()   # warm every path
    fast = percentiles(timed(lambda: pred.predict_window(x), requests))
    loop = percentiles(timed(predict_loop, naive_requests))
    eager = percentiles(timed(eager_mc, naive_requests))
    return {"fast": fast, "naive_predict_loop": loop, "naive_eager_mc": eager,
            "speedup_p50_vs_predict_loop": round(loop["p50_ms"] / fast["p50_ms"], 1),
            "speedup_p50_vs_eager_mc": round(eager["p50_ms"] / fast["p50_ms"], 1),
            "params": int(m.count_params())}


def main(requests=500, naive_requests=20, out=RESULTS/"predictor_latency.json"):
    with tempfile.TemporaryDirectory() as d:
        res = {mt: bench(mt, requests, naive_requests, d) for mt in ("lstm", "transformer")}
    res["setup"] = {"mc_samples": MC, "window": WINDOW, "features": N_FEATURES, "cpus": os.cpu_count(),
                    "python": platform.python_version(), "targets": {"p50_ms": 2.0, "speedup": 5.0}}
    return save_results(res, out)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--naive-requests", type=int, default=20)
    a = ap.parse_args()
    main(a.requests, a.naive_requests)
