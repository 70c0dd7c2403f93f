"""Benchmark: does the live calibration alarm fire on a feed whose volatility is five times the market's?

A real bundle (default: trained here on BTCUSDT 1h level_up with `itff-train`'s defaults; or `--bundle PATH`) scores
the bundled BTCUSDT candles from its test start on, first as they are and then with every log move five times larger
(`itff.ood.shift_volatility`: beyond anything in training; the service's out-of-distribution gate flags most of it).
Windows of the last N resolved forecasts ending at 200 evenly spaced bars (N = 500 and 1,500, the monitor's default)
get the calibration test that `itff-monitor` runs (`itff.monitor.calibration_test`, level 0.01) and its inputs rule
(more than 10% of the window flagged out of distribution by the bundle's gate): the share of windows on which each,
and either, alarms. On the unshifted months the same shares are reported beside them (the model's real test months:
not a controlled null, their base rate drifted). --smoke: a one-epoch bundle on synthetic candles, 20 windows.
Run: .venv/bin/python benchmarks/alarm_volatility_feed.py [--bundle models/training/BTCUSDT_1h_level_up_lstm]
"""
import tempfile, time
from pathlib import Path
import numpy as np
import pandas as pd
from common import SMOKE, make_bundle, out_path, parser, save_results
from itff.artifacts import load_bundle
from itff.data import load_ohlcv
from itff.evaluation import read_predictions
from itff.monitor import calibration_test
from itff.ood import shift_volatility
from itff.rescore import evaluate_bundle
from itff.train import synthetic_ohlcv


def scored(bundle, candles, start, work, name):
    "The bundle's per-bar forecasts and outcomes on `candles` from `start` on, through `itff-evaluate --bundle`."
    path = Path(work)/f"{name}.csv"; candles.reset_index().to_csv(path, index=False)
    evaluate_bundle(bundle, str(path), start, Path(work)/"reports", n_boot=10, log=lambda s: None, name=name)
    p = read_predictions(Path(work)/"reports"/name/"predictions.csv")
    return p.y.to_numpy("float64"), p.p_model.to_numpy("float64"), 1 - p.in_distribution.to_numpy("float64")


def window_rates(y, p, flagged, n, windows, max_flagged=0.1):
    "Over `windows` windows of the last `n` forecasts: share alarmed by the calibration test, the inputs rule, either."
    ends = np.linspace(n, len(y), windows).astype(int)
    cal = np.array([calibration_test(y[e - n:e], p[e - n:e])["p_value"] < 0.01 for e in ends])
    inputs = np.array([flagged[e - n:e].mean() > max_flagged for e in ends])
    r = lambda a: round(float(a.mean()), 4)
    return {"calibration_test": r(cal), "inputs_rule": r(inputs), "either": r(cal | inputs)}


def main(bundle=None, windows=200, lives=(500, 1500), out=None):
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        if bundle is None: bundle = make_bundle(work, bars=4000) if SMOKE else None
        if bundle is None: raise SystemExit("give --bundle (a BTCUSDT 1h bundle), e.g. models/training/BTCUSDT_1h_level_up_lstm")
        meta = load_bundle(bundle).meta
        start = pd.Timestamp(meta["parts"]["test"]["first"])
        candles = synthetic_ohlcv(0.3, n=4000) if SMOKE else load_ohlcv("BTCUSDT", "1h", "bundled")
        first = start + pd.Timedelta(days=3)             # windows and features fully inside the shift
        calm = scored(bundle, candles, first, work, "calm")
        wild = scored(bundle, shift_volatility(candles, 5.0, start), first, work, "wild")
    lives = [n for n in lives if n <= len(wild[0])] or [len(wild[0]) // 2]
    res = {"benchmark": "live calibration alarm on a x5 volatility feed (real bundle, real candles)",
           "bundle": str(bundle), "scored_from": str(first), "bars": len(wild[0]), "windows": windows, "level": 0.01,
           "mean_forecast_x5": round(float(wild[1].mean()), 4), "outcome_rate_x5": round(float(wild[0].mean()), 4),
           "alarm_rate_x5_feed": {str(n): window_rates(*wild, n, windows) for n in lives},
           "alarm_rate_real_months": {str(n): window_rates(*calm, n, windows) for n in lives},
           "seconds": round(time.perf_counter() - t0, 1)}
    return save_results(res, out)


if __name__ == "__main__":
    ap = parser(__doc__)
    ap.add_argument("--bundle", type=Path)
    a = ap.parse_args()
    main(a.bundle, 20 if a.smoke else 200, out=out_path("alarm_volatility_feed", a.smoke, a.out))
