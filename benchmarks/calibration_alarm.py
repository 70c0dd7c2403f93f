"""Benchmark: size and power of the live calibration alarm (`itff.monitor.calibration_alarm`) on dependent bars.

Each repetition draws one path of a stationary process matched to BTCUSDT 1h `level_up` (horizon 4): a latent AR(1)
base rate on the logit scale (persistence 0.999, so 500-bar base rates wander with a standard deviation of about 0.14,
as BTC's do) plus bar-to-bar forecast information, and outcomes decided by 4 overlapping future shocks (lag-1
autocorrelation about 0.5, as BTC's labels). The forecast is calibrated by construction. Validation: 3,363 bars;
embargo: 100 bars; live: the next 500 bars, and the next 1,500 (the monitor's default window). The alarm is run as `live_scores` runs it (calibration test and ECE rule,
block 48, 300 resamples) on the calibrated live forecasts (false alarms) and on miscalibrated ones: log-odds shifted
by 0.5 or 0.75, slope 1.5 (too confident) or 0.6 (too timid) around the process's mean log-odds (detection). Also the
old Brier rule (live Brier lower bound above validation's upper bound), for comparison.
--smoke: 4 repetitions.
Run: .venv/bin/python benchmarks/calibration_alarm.py [--reps 200] [--smoke]
"""
import time
import numpy as np
from scipy.signal import lfilter
from scipy.special import ndtr
from sklearn.metrics import brier_score_loss
from common import out_path, parser, save_results
from itff.metrics import bootstrap_ci, ece, reference_scores, reliability_table
from itff.monitor import calibration_alarm, calibration_test, design_effect, ece_noise_floor

N_REF, EMBARGO, LIVES, MU = 3363, 100, (500, 1500), -1.2
SCENARIOS = {"calibrated": (0.0, 1.0), "shift 0.5": (0.5, 1.0), "shift 0.75": (0.75, 1.0),
             "slope 1.5": (0.0, 1.5), "slope 0.6": (0.0, 0.6)}


def calibrated_process(n, rng, h=4, phi=0.999, sd=0.9, mu=MU, tau=0.6):
    "Calibrated forecasts `p` and outcomes `y` of `n` bars: AR(1) logit base rate, `h`-bar overlapping horizons."
    m = lfilter([1], [1, -phi], sd * np.sqrt(1 - phi**2) * rng.normal(size=n), zi=[phi * sd * rng.normal()])[0]
    p = 1 / (1 + np.exp(-(mu + m + tau * rng.normal(size=n))))
    z = np.convolve(rng.normal(size=n + h - 1), np.ones(h), "valid") / np.sqrt(h)    # the future: shared by h bars
    return (ndtr(z) < p).astype(float), p


def live_alarm(y, q, ref):
    "The alarm as `live_scores` computes it (block 48, 300 resamples), and the old Brier rule."
    s = {"n": len(y), "ece_ci": list(bootstrap_ci(ece, y, q, 48, 300)), "calibration_test": calibration_test(y, q),
         "ece_noise_floor": ece_noise_floor(reliability_table(y, q), design_effect(y))}
    a = calibration_alarm(s, ref)
    brier_lo = bootstrap_ci(brier_score_loss, y, q, 48, 300)[0]
    return (a["alarm"], any(r.startswith("calibration test") for r in a["alarm_reasons"]),
            any(r.startswith("live ECE") for r in a["alarm_reasons"]), brier_lo > ref["brier_ci"][1])


def main(reps=200, seed=0, out=None, lives=LIVES):
    "Run `reps` repetitions of every scenario on each live window; rates of the alarm, of its rules, of the old rule."
    rng, t0 = np.random.default_rng(seed), time.perf_counter()
    hits = {n: {k: np.zeros(4) for k in SCENARIOS} for n in lives}
    rates500 = []
    for _ in range(reps):
        y, p = calibrated_process(N_REF + EMBARGO + max(lives), rng)
        ref = reference_scores(y[:N_REF], p[:N_REF])
        for n in lives:
            yl, pl = y[N_REF + EMBARGO:][:n], p[N_REF + EMBARGO:][:n]
            if n == 500: rates500.append(yl.mean())
            for k, (shift, slope) in SCENARIOS.items():
                q = 1 / (1 + np.exp(-(MU + slope * (np.log(pl / (1 - pl)) - MU) + shift)))
                hits[n][k] += live_alarm(yl, q, ref)
    rate = lambda n, i: {k: round(float(hits[n][k][i] / reps), 4) for k in SCENARIOS}
    res = {"benchmark": "calibration alarm: size and power on dependent bars", "reps": reps, "seed": seed,
           "n_reference": N_REF, "level": 0.01,
           "sd_of_500_bar_base_rate": round(float(np.std(rates500)), 4) if rates500 else None,
           "windows": {str(n): {"n_live": n, "alarm_rate": rate(n, 0), "calibration_test_rate": rate(n, 1),
                                "ece_rule_rate": rate(n, 2), "old_brier_rule_rate": rate(n, 3)} for n in lives},
           "seconds": round(time.perf_counter() - t0, 1)}
    return save_results(res, out or out_path("calibration_alarm"))


if __name__ == "__main__":
    ap = parser(__doc__)
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    main(4 if a.smoke else a.reps, a.seed, out_path("calibration_alarm", a.smoke, a.out))
