"""Benchmark: the risk-controlled threshold out of time on real candles, exchangeable rule vs n_eff rule.

For each origin (every quarter after two years of history): a logistic regression on four causal volatility features
fitted on the two years before it, Platt-calibrated and certified (δ = 0.1) on the next 3,363 bars after an embargo,
then the precision of each certified threshold on every later quarter. Reports, per rule and target, the share of
(origin, later quarter) pairs whose precision fell below the target. --smoke: BTCUSDT only, one origin, two targets.
Run: .venv/bin/python benchmarks/risk_control.py [--smoke]
"""
import numpy as np, pandas as pd
from common import out_path, parser, save_results
from sklearn.linear_model import LogisticRegression
from itff.calibrate import fit_calibrator
from itff.data import load_ohlcv
from itff.decisions import risk_controlled_threshold
from itff.features import engineer_features
from itff.labels import label_spec, make_label

COLS, FIT, GAP, N_CAL, STEP = ["vol_12", "vol_1d", "vol_2d", "atr_14"], 17_520, 52, 3363, 2190


def pairs(symbol, targets, origins):
    "(rule, target, origin, quarter, precision, signals) rows for one symbol."
    ohlcv = load_ohlcv(symbol, "1h")
    frame = engineer_features(ohlcv)[COLS].assign(y=make_label(ohlcv, label_spec("level_up", "1h"))).dropna()
    X, y = np.log(frame[COLS].to_numpy()), frame.y.to_numpy()
    starts = list(range(FIT, len(frame) - N_CAL - GAP - STEP, STEP))[:origins]
    rows = []
    for s in starts:
        raw = LogisticRegression(max_iter=1000).fit(X[s - FIT:s], y[s - FIT:s]).predict_proba(X)[:, 1]
        cal_rows = slice(s + GAP, s + GAP + N_CAL)
        p = fit_calibrator("platt", raw[cal_rows], y[cal_rows])(raw)
        later = frame.index[cal_rows.stop + GAP:]; q = later.to_period("Q").astype(str)
        for tg in targets:
            for rule, lag in (("exchangeable", 0), ("n_eff", None)):
                rc = risk_controlled_threshold(y[cal_rows], p[cal_rows], tg, 0.1, max_lag=lag)
                act = p[cal_rows.stop + GAP:] >= rc["threshold"]
                g = pd.Series(y[cal_rows.stop + GAP:][act]).groupby(np.asarray(q)[act])
                for quarter, prec in g.mean().items():
                    rows.append({"symbol": symbol, "rule": rule, "target": tg, "origin": str(frame.index[s].date()),
                                 "quarter": quarter, "precision": prec, "signals": int(g.size()[quarter]),
                                 "design_effect": rc["design_effect"]})
    return rows


def main(symbols=("BTCUSDT", "ETHUSDT"), targets=(0.45, 0.5, 0.55, 0.6), origins=None, out=None):
    "Run every origin of every symbol and summarise the share of later quarters below target."
    df = pd.DataFrame([r for s in symbols for r in pairs(s, targets, origins)])
    df["below"] = df.precision < df.target
    summary = df.groupby(["rule", "target"]).agg(pairs=("below", "size"), below_target=("below", "mean"),
                                                 median_precision=("precision", "median")).reset_index()
    res = {"benchmark": "risk-controlled threshold out of time (level_up 1h, delta 0.1)", "symbols": list(symbols),
           "origins": int(df.origin.nunique()), "summary": summary.round(3).to_dict(orient="records")}
    return save_results(res, out)


if __name__ == "__main__":
    a = parser(__doc__).parse_args()
    if a.smoke: main(("BTCUSDT",), (0.5, 0.55), 1, out_path("risk_control", True, a.out))
    else: main(out=out_path("risk_control", False, a.out))
