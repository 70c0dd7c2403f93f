"""Benchmark: single-request latency of `Predictor.predict_window` (30 MC samples, one jitted pass) against naive loops.

For each model type a real bundle (window 48, 21 features; `common.make_bundle`: `run_experiment`, one epoch on
synthetic candles) is written and loaded, then one request is timed repeatedly with three implementations in the same
process:
- fast: Predictor.predict_window (scaling, one jitted MC pass of all samples, OOD gate, calibration, decision);
- naive predict loop: 30 calls of `model.predict` (what a first API version does; note it does not even sample dropout);
- naive eager MC: 30 eager calls of `model(x, training=True)`.
Results (p50/p99 in ms, speedups) go to benchmarks/results/predictor_latency.json. --smoke: a tiny LSTM bundle (window
16, 5 MC samples), 20 requests, 2 naive ones.
Run: .venv/bin/python benchmarks/predictor_latency.py [--requests 500] [--models lstm,transformer] [--smoke]
"""
import os, tempfile, time
import numpy as np
from common import make_bundle, out_path, parser, save_results
from itff.predictor import Predictor

WINDOW, MC = 48, 30
SMOKE = dict(window=16, bars=1500, mc_samples=5, units=8)   # a tiny LSTM bundle: seconds to make


def percentiles(times):
    t = np.asarray(times) * 1e3
    q = lambda x: round(float(np.percentile(t, x)), 3)
    return {"p50_ms": q(50), "p99_ms": q(99), "n": len(t)}


def timed(fn, n):
    out = []
    for _ in range(n):
        t0 = time.perf_counter(); fn(); out.append(time.perf_counter() - t0)
    return out


def naive_paths(pred, x):
    "The two naive implementations of one request: `model.predict` once per MC sample, and eager MC-dropout calls."
    m, scaler, cal, n = pred.bundle.models[0], pred.bundle.scaler, pred.bundle.calibrator, pred.mc_samples
    def predict_loop():
        xs = scaler.transform(x)[None]
        return cal(np.array([np.mean([m.predict(xs, verbose=0)[0, 0] for _ in range(n)])]))
    def eager_mc():
        xs = scaler.transform(x)[None]
        return cal(np.array([np.mean([float(np.asarray(m(xs, training=True))[0, 0]) for _ in range(n)])]))
    return predict_loop, eager_mc


def bench(model_type, requests, naive_requests, folder, **bundle_kw):
    "Latencies of the three implementations on a fresh bundle of `model_type` (`bundle_kw` for `make_bundle`)."
    pred = Predictor.load(path=make_bundle(folder, model_type, **{"window": WINDOW, "mc_samples": MC, **bundle_kw}))
    x = np.random.default_rng(0).normal(size=(pred.window, len(pred.features)))
    fast = lambda: pred.predict_window(x)
    predict_loop, eager_mc = naive_paths(pred, x)
    for f in (fast, predict_loop, eager_mc): f()   # warm every path
    fast_t = percentiles(timed(fast, requests))
    loop, eager = (percentiles(timed(f, naive_requests)) for f in (predict_loop, eager_mc))
    return {"fast": fast_t, "naive_predict_loop": loop, "naive_eager_mc": eager,
            "speedup_p50_vs_predict_loop": round(loop["p50_ms"] / fast_t["p50_ms"], 1),
            "speedup_p50_vs_eager_mc": round(eager["p50_ms"] / fast_t["p50_ms"], 1),
            "params": int(pred.bundle.models[0].count_params()), "features": len(pred.features)}


def main(requests=500, naive_requests=20, models=("lstm", "transformer"), out=None, **bundle_kw):
    with tempfile.TemporaryDirectory() as d:
        res = {mt: bench(mt, requests, naive_requests, f"{d}/{mt}", **bundle_kw) for mt in models}
    res["setup"] = {"mc_samples": bundle_kw.get("mc_samples", MC), "window": bundle_kw.get("window", WINDOW),
                    "cpus": os.cpu_count(), "bundle": "run_experiment, 1 epoch on synthetic 1h candles",
                    "targets": {"p50_ms": 2.0, "speedup": 5.0}}
    return save_results(res, out or out_path("predictor_latency"))


if __name__ == "__main__":
    ap = parser(__doc__)
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--naive-requests", type=int, default=20)
    ap.add_argument("--models", default="lstm,transformer", help="comma-separated model types (--smoke: lstm)")
    a = ap.parse_args()
    out = out_path("predictor_latency", a.smoke, a.out)
    if a.smoke: main(20, 2, ("lstm",), out, **SMOKE)
    else: main(a.requests, a.naive_requests, tuple(a.models.split(",")), out)
