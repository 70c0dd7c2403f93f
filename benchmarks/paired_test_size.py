"""Benchmark: size and power of the paired tests on a sharp null with persistent noise, on real BTCUSDT 1h labels.

Two forecasts of equal skill, sigmoid(signal + 0.5·e), share a real persistent signal (standardised log trailing 24-bar
volatility) and each has its own stationary unit-variance AR(1) noise e with autocorrelation phi; every rejection of
`itff.metrics.paired_test` (EWC, one cosine per 8 weeks: K = 5 at n = 6,731 1h bars, 2 at 3,363), the alternatives it
was chosen over (`self_normalized_test`, `fixed_b_test` with Bartlett b = 1/2) and the 2-day block `paired_bootstrap`
is a false one. Power: against a forecast whose noise scale makes its expected Brier score worse by 0.002. --smoke: 20
repetitions, two phi, n = 3,363.
Run: .venv/bin/python benchmarks/paired_test_size.py [--reps 1000] [--n 6731] [--smoke]
"""
import time
import numpy as np
from common import out_path, parser, save_results
from scipy.optimize import brentq
from scipy.signal import lfilter
from scipy.special import expit, logit
from itff.data import load_ohlcv
from itff.labels import label_spec, make_label
from itff.metrics import fixed_b_test, paired_bootstrap, paired_test, self_normalized_test

PHIS = (0, 0.5, 0.9, 0.95, 0.99, 0.995, 0.999)


def real_labels(n):
    "The last `n` BTCUSDT 1h level_up labels and a real persistent logit signal on the same bars."
    ohlcv = load_ohlcv("BTCUSDT", "1h")
    lab, vol = make_label(ohlcv, label_spec("level_up", "1h")), np.log(ohlcv.close).diff().rolling(24).std()
    keep = lab.notna() & vol.notna()
    y, lv = lab[keep].to_numpy()[-n:], np.log(vol[keep].to_numpy()[-n:])
    return y, logit(y.mean()) + 0.8 * (lv - lv.mean()) / lv.std()


def ar1(phi, reps, size, rng):
    "`reps` stationary AR(1) paths of unit variance and lag-1 autocorrelation `phi`."
    e, start = rng.standard_normal((reps, size)), rng.standard_normal((reps, 1))
    return lfilter([np.sqrt(1 - phi ** 2)], [1, -phi], e, axis=1, zi=phi * start)[0]


def rate(flags):
    "Share of True, rounded."
    return round(float(np.mean(list(flags))), 4)


def main(reps=1000, boot_reps=200, n=6731, phis=PHIS, gap=0.002, out=None):
    "Rejection rates at 5% for every phi."
    t0 = time.perf_counter()
    y, signal = real_labels(n)
    z, w = np.polynomial.hermite_e.hermegauss(60); w = w / w.sum()
    brier = lambda s: float((w * (expit(signal[:, None] + s * z) - y[:, None]) ** 2).sum(1).mean())
    sa = 0.5; sb = brentq(lambda s: brier(s) - brier(sa) - gap, sa, 5)
    mse = lambda yy, p: np.mean((p - yy) ** 2)      # brier_score_loss without its input checks: same numbers
    rows = []
    for phi in phis:
        rng = np.random.default_rng([0, int(phi * 1000)])
        p_a, p_b, p_c = (expit(signal + s * ar1(phi, reps, n, rng)) for s in (sa, sa, sb))
        d0, d1 = (p_a - y) ** 2 - (p_b - y) ** 2, (p_a - y) ** 2 - (p_c - y) ** 2
        pt0 = [paired_test(y, p_a[i], p_b[i], "1h")["p_value"] < 0.05 for i in range(reps)]
        pt1 = [paired_test(y, p_a[i], p_c[i], "1h")["p_value"] < 0.05 for i in range(reps)]
        boot = [paired_bootstrap(y, p_a[i], p_b[i], mse, n_boot=300)["p_value"] < 0.05 for i in range(boot_reps)]
        rows.append({"phi": phi, "size_paired_test": rate(pt0), "power_paired_test": rate(pt1),
                     "size_self_normalized": rate(self_normalized_test(x)["p_value"] < 0.05 for x in d0),
                     "power_self_normalized": rate(self_normalized_test(x)["p_value"] < 0.05 for x in d1),
                     "size_fixed_b": rate(fixed_b_test(x)["reject"] for x in d0),
                     "power_fixed_b": rate(fixed_b_test(x)["reject"] for x in d1),
                     "size_block_bootstrap": rate(boot)})
        print(rows[-1], flush=True)
    res = {"benchmark": "paired test size/power on a sharp null with AR(1) noise, real BTCUSDT 1h level_up labels",
           "n": n, "cosines": paired_test(y, y, y, "1h")["k"], "reps": reps, "bootstrap_reps": boot_reps, "level": 0.05, "brier_gap": gap,
           "noise_sd": sa, "noise_sd_worse": round(sb, 4), "rows": rows, "seconds": round(time.perf_counter() - t0, 1)}
    return save_results(res, out)


if __name__ == "__main__":
    ap = parser(__doc__)
    ap.add_argument("--reps", type=int, default=1000)
    ap.add_argument("--n", type=int, default=6731)
    a = ap.parse_args()
    if a.smoke: main(20, 5, 3363, (0, 0.999), out=out_path("paired_test_size", True, a.out))
    else: main(a.reps, 200, a.n, out=out_path("paired_test_size", False, a.out))
