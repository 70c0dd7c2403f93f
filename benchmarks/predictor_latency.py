"""Benchmark: single-request latency of `Predictor.predict_window` (30 MC samples, one jitted pass) against naive loops.

For each model type a real bundle (window 48, 21 features; `common.make_bundle`: `run_experiment`, one epoch on 8,000
synthetic candles, so the out-of-distribution gate keeps its full 4,000 reference windows) is written and loaded, then
one request (the last window of its candles) is timed repeatedly in the same process:
- fast: Predictor.predict_window with the gate on (scaling, one jitted MC pass of all samples run while the gate scores
  the window, calibration, decision); the target is p50 ≤ 0.5 ms for the LSTM;
- gate_sklearn: the same with the gate's distances from scikit-learn's `kneighbors` (what it used before, kept for
  more than `OODGate.few` windows); gate_off: without the gate (the floor);
- gate_score: `OODGate.score` of one window alone, its NumPy path (`nearest_distances`) against `kneighbors`, and the
  largest difference of their scores over the last 64 windows, one at a time and in batches;
- naive predict loop: 30 calls of `model.predict` (what a first API version does; note it does not even sample dropout);
- naive eager MC: 30 eager calls of `model(x, training=True)`.
The variants of a request are timed in turn (round-robin), so that a busy machine slows them alike. Results (p50/p99 in
ms, speedups) go to benchmarks/results/predictor_latency.json. --smoke: a tiny LSTM bundle (window 16, 5 MC samples),
20 requests, 2 naive ones.
Run: .venv/bin/python benchmarks/predictor_latency.py [--requests 500] [--models lstm,transformer] [--smoke]
"""
import os, tempfile, time
from contextlib import contextmanager
import numpy as np
from common import make_bundle, out_path, parser, save_results
from numpy.lib.stride_tricks import sliding_window_view
from itff.features import engineer_features
from itff.predictor import Predictor
from itff.train import synthetic_ohlcv

WINDOW, MC, BARS, TARGET_MS = 48, 30, 8000, 0.5
SMOKE = dict(window=16, bars=1500, mc_samples=5, units=8)   # a tiny LSTM bundle: seconds to make


def percentiles(times):
    t = np.asarray(times) * 1e3
    q = lambda x: round(float(np.percentile(t, x)), 4)
    return {"p50_ms": q(50), "p99_ms": q(99), "n": len(t)}


def timed(fn, n):
    out = []
    for _ in range(n):
        t0 = time.perf_counter(); fn(); out.append(time.perf_counter() - t0)
    return out


def timed_together(fns:dict, n:int) -> dict:
    "Percentiles of each of `fns` over `n` calls, called in turn (and each warmed up first)."
    for f in fns.values(): f()
    out = {k: [] for k in fns}
    for _ in range(n):
        for k, f in fns.items():
            t0 = time.perf_counter(); f(); out[k].append(time.perf_counter() - t0)
    return {k: percentiles(v) for k, v in out.items()}


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



@contextmanager
def sklearn_gate(gate):
    "Within it, `gate` scores every window with scikit-learn's `kneighbors` (its only path before `nearest_distances`)."
    gate.few = 0
    try: yield gate
    finally: del gate.few   # back to the class's


@contextmanager
def no_gate(pred):
    "Within it, `pred` has no out-of-distribution gate."
    ood, pred.ood = pred.ood, None
    try: yield pred
    finally: pred.ood = ood


def within(ctx, fn):
    "`fn`, run inside `ctx()` at each call."
    def run():
        with ctx(): return fn()
    return run


def gate_agreement(gate, X) -> float:
    "Largest |score difference| of the NumPy path and `kneighbors`, over single windows and batches up to `gate.few`."
    diffs = []
    for size in sorted({1, 2, gate.few}):
        for i in range(0, len(X) - size + 1, size):
            fast = gate.score(X[i:i + size])
            with sklearn_gate(gate): slow = gate.score(X[i:i + size])
            diffs.append(np.abs(fast - slow).max())
    return float(max(diffs))


def bench(model_type, requests, naive_requests, folder, **bundle_kw):
    "Latencies of the implementations on a fresh bundle of `model_type` (`bundle_kw` for `make_bundle`)."
    kw = {"window": WINDOW, "mc_samples": MC, "bars": BARS, **bundle_kw}
    pred = Predictor.load(path=make_bundle(folder, model_type, **kw))
    sc, gate = pred.bundle.scaler, pred.ood
    feats = engineer_features(synthetic_ohlcv(0.3, n=kw["bars"]))[pred.features].to_numpy()   # the bundle's candles
    recent = sliding_window_view(feats[-(pred.window + 63):], (pred.window, feats.shape[1]))[:, 0]   # the last 64
    x = recent[-1]   # the request: the last window
    req = timed_together({"fast": lambda: pred.predict_window(x),
                          "gate_sklearn": within(lambda: sklearn_gate(gate), lambda: pred.predict_window(x)),
                          "gate_off": within(lambda: no_gate(pred), lambda: pred.predict_window(x))}, requests)
    x1 = pred._scaled(x)[None]
    score = timed_together({"fast": lambda: gate.score(x1),
                            "sklearn_kneighbors": within(lambda: sklearn_gate(gate), lambda: gate.score(x1))}, requests)
    predict_loop, eager_mc = naive_paths(pred, x)
    for f in (predict_loop, eager_mc): f()   # warm the naive paths
    loop, eager = (percentiles(timed(f, naive_requests)) for f in (predict_loop, eager_mc))
    fast = req["fast"]
    return {"fast": fast, "p50_at_most_0.5ms": fast["p50_ms"] <= TARGET_MS,   # the LSTM's target
            "gate_sklearn": req["gate_sklearn"], "gate_off": req["gate_off"],
            "speedup_p50_vs_gate_sklearn": round(req["gate_sklearn"]["p50_ms"] / fast["p50_ms"], 2),
            "gate_score": {**score, "speedup_p50": round(score["sklearn_kneighbors"]["p50_ms"]
                                                         / score["fast"]["p50_ms"], 1),
                           "max_abs_score_diff": gate_agreement(gate, sc.transform(recent)),
                           "n_reference": len(gate.reference), "n_components": len(gate.components)},
            "naive_predict_loop": loop, "naive_eager_mc": eager,
            "speedup_p50_vs_predict_loop": round(loop["p50_ms"] / fast["p50_ms"], 1),
            "speedup_p50_vs_eager_mc": round(eager["p50_ms"] / fast["p50_ms"], 1),
            "params": int(pred.bundle.models[0].count_params()), "features": len(pred.features)}


def main(requests=500, naive_requests=20, models=("lstm", "transformer"), out=None, **bundle_kw):
    with tempfile.TemporaryDirectory() as d:
        res = {mt: bench(mt, requests, naive_requests, f"{d}/{mt}", **bundle_kw) for mt in models}
    res["setup"] = {"mc_samples": bundle_kw.get("mc_samples", MC), "window": bundle_kw.get("window", WINDOW),
                    "bars": bundle_kw.get("bars", BARS), "cpus": os.cpu_count(),
                    "load_average_1min": round(os.getloadavg()[0], 2),
                    "bundle": "run_experiment, 1 epoch on synthetic 1h candles",
                    "request": "the last feature window of the bundle's candles; variants timed in turn",
                    "targets": {"p50_ms": 2.0, "speedup": 5.0, "lstm_p50_ms_gate_on": TARGET_MS}}
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
