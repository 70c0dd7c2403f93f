"""Benchmark: how often the overfitting alarms of itff.overfit fire on searches with no skill, and what PBO looks like.

(a) The deflated Sharpe ratio. A search backtests N zero-skill strategies (N = 10, 50, 200; independent, mean-zero
returns) on T = 2,000 bars and keeps the one with the best Sharpe ratio; `deflated_sharpe` scores it with n_trials = N
and sr_variance = the variance of the N per-bar Sharpe ratios (ddof = 1), as a user of `itff-tune` would. A false alarm
is DSR >= 0.95. Returns: i.i.d. normal, Student-t with 4 degrees of freedom, and stationary AR(1) with rho = 0.3
(dependent bars, which the DSR's i.i.d. variance formula ignores; rho = 0.6 too, for N = 50 only). Beside it, how often
the winner's undeflated PSR(0) reaches 0.95 (what a search that forgets its own size would claim), and the spread of
the DSR's z-statistic Phi^-1(DSR) over the searches (a test calibrated at 5% would need about 1).
(b) PBO (`cscv_pbo`, 16 blocks, the mean per bar as performance) over searches of 50 trials on 2,000 bars: pure noise
(i.i.d. and AR(1) rho = 0.3), and one trial with a real edge of 0.05 or 0.1 standard deviations per bar. On noise,
the share of PBO < 0.2 is how often `overfit_words` would wrongly say "the ranking holds".
--smoke: 20 searches per case, N = 10 and 50, 8 blocks (seconds).
Run: .venv/bin/python benchmarks/overfit_size.py [--reps 2000] [--pbo-reps 200] [--smoke]
"""
import time
import numpy as np
from common import out_path, parser, save_results
from scipy.signal import lfilter
from scipy.stats import norm
from tqdm import tqdm
from itff.overfit import cscv_pbo, deflated_sharpe, probabilistic_sharpe

T = 2000
KINDS = {"normal": None, "t4": None, "ar1 rho=0.3": 0.3, "ar1 rho=0.6": 0.6}


def returns(kind, rng, n_bars, n_trials):
    "Zero-skill returns, bars × trials: 'normal', 't4' (Student-t, 4 df) or 'ar1 rho=…' (stationary AR(1))."
    if kind == "t4": return rng.standard_t(4, (n_bars, n_trials))
    x = rng.standard_normal((n_bars, n_trials))
    if kind == "normal": return x
    rho = KINDS[kind]
    start = rng.standard_normal(n_trials) / np.sqrt(1 - rho ** 2)          # the stationary distribution
    return lfilter([1.0], [1.0, -rho], x, axis=0, zi=rho * start[None, :])[0]


def best_of_search(x):
    "DSR and undeflated PSR(0) of the trial with the best Sharpe ratio among the columns of `x`."
    srs = x.mean(0) / x.std(0, ddof=1)
    d = deflated_sharpe(x[:, srs.argmax()], x.shape[1], srs.var(ddof=1))
    return d["dsr"], probabilistic_sharpe(d["sharpe"], len(x), 0.0, d["skew"], d["kurtosis"])


def dsr_cases(sizes):
    "(return kind, N) pairs: every size for i.i.d., t4 and rho = 0.3; the middle size for rho = 0.6."
    return [(k, n) for k in ("normal", "t4", "ar1 rho=0.3") for n in sizes] + [("ar1 rho=0.6", sizes[len(sizes) // 2])]


def dsr_rows(reps, sizes, bar):
    "False-alarm rates of DSR >= 0.95 (and PSR(0) >= 0.95) per return kind and search size."
    rows = []
    for kind, n in dsr_cases(sizes):
        k = list(KINDS).index(kind)
        res = []
        for r in range(reps):
            res.append(best_of_search(returns(kind, np.random.default_rng([0, k, n, r]), T, n))); bar.update(1)
        dsr, psr = np.array(res).T
        p = float((dsr >= 0.95).mean())
        rows.append({"returns": kind, "n_trials": n, "false_alarm_dsr": round(p, 4),
                     "mc_se": round(float(np.sqrt(p * (1 - p) / reps)), 4),
                     "false_alarm_psr0": round(float((psr >= 0.95).mean()), 4),
                     "dsr_mean": round(float(dsr.mean()), 4),
                     "dsr_q50_q90_q99": np.quantile(dsr, [0.5, 0.9, 0.99]).round(4).tolist(),
                     "z_sd": round(float(norm.ppf(np.clip(dsr, 1e-15, 1 - 1e-15)).std()), 3)})
    return rows


def pbo_rows(reps, n_blocks, bar, n_trials=50):
    "PBO's mean and 10/50/90% quantiles for noise searches and searches with one real edge."
    cases = (("noise", "normal", 0.0), ("noise AR(1) rho=0.3", "ar1 rho=0.3", 0.0),
             ("one edge 0.05 sd", "normal", 0.05), ("one edge 0.1 sd", "normal", 0.1))
    rows = []
    for k, (name, kind, edge) in enumerate(cases):
        pbos, picked = [], []
        for r in range(reps):
            x = returns(kind, np.random.default_rng([1, k, r]), T, n_trials); x[:, 0] += edge
            res = cscv_pbo(x, n_blocks)
            pbos.append(res["pbo"]); picked.append(float((res["best_trial"] == 0).mean()))
            bar.update(1)
        q = np.quantile(pbos, [0.1, 0.5, 0.9]).round(4).tolist()
        rows.append({"case": name, "n_trials": n_trials, "n_blocks": n_blocks,
                     "pbo_mean": round(float(np.mean(pbos)), 4), "pbo_q10": q[0], "pbo_q50": q[1], "pbo_q90": q[2],
                     "share_pbo_ge_0.5": round(float(np.mean(np.array(pbos) >= 0.5)), 4),
                     "share_pbo_lt_0.2": round(float(np.mean(np.array(pbos) < 0.2)), 4),
                     "edge_picked_in_sample": None if not edge else round(float(np.mean(picked)), 4)})
    return rows


def notes(dsr, pbo):
    "What the rows say, in words, with the measured rates (so the sentence cannot drift from the numbers)."
    rates = lambda kind: ", ".join(f"{r['false_alarm_dsr']:.2%} (N={r['n_trials']})" for r in dsr
                                   if r["returns"] == kind)
    sd = lambda kind: "/".join(f"{r['z_sd']:.2f}" for r in dsr if r["returns"] == kind)
    noise = next(r for r in pbo if r["case"] == "noise")
    return (f"DSR >= 0.95 fired on {rates('normal')} of i.i.d. normal zero-skill searches and {rates('t4')} "
            "with Student-t(4) returns: far below the nominal 5%. The benchmark SR0 is the EXPECTED maximum of the "
            "N Sharpe ratios and the maximum's own spread is much narrower than one Sharpe ratio's, so the winner's "
            f"z-statistic Phi^-1(DSR) spreads by only {sd('normal')} instead of about 1: on independent bars the "
            "test is very conservative. Dependent bars erode that margin: with AR(1) rho = 0.3 returns each Sharpe "
            "ratio varies (1 + rho)/(1 - rho) = 1.86 times more than the PSR's i.i.d. formula assumes, the z spread "
            f"grows to {sd('ar1 rho=0.3')} and the false alarms to {rates('ar1 rho=0.3')}; at rho = 0.6 (4x the "
            f"variance) they reach {rates('ar1 rho=0.6')} with a z spread of {sd('ar1 rho=0.6')}. The size grows "
            "with dependence; stronger or longer-memory dependence than measured here is not covered, so on "
            "strongly autocorrelated per-bar returns compute the DSR on returns aggregated to roughly independent "
            "periods. false_alarm_psr0 (the winner's undeflated PSR(0) >= 0.95) shows what forgetting the search's "
            f"size costs. PBO on pure noise centres on 1/2 (mean {noise['pbo_mean']}), but one search's PBO is "
            f"spread widely (10-90%: {noise['pbo_q10']}-{noise['pbo_q90']}; its combinations share bars), and "
            f"{noise['share_pbo_lt_0.2']:.1%} of noise searches fall below 0.2, where overfit_words says the "
            "ranking holds.")


def main(reps=2000, pbo_reps=200, sizes=(10, 50, 200), n_blocks=16, out=None):
    "Run both parts and write the JSON."
    t0 = time.perf_counter()
    with tqdm(total=len(dsr_cases(sizes)) * reps + 4 * pbo_reps, desc="overfit size", mininterval=2) as bar:
        dsr = dsr_rows(reps, sizes, bar)
        pbo = pbo_rows(pbo_reps, n_blocks, bar)
    res = {"benchmark": "false alarms of DSR >= 0.95 on zero-skill searches, and PBO's distribution (itff.overfit)",
           "n_bars": T, "reps": reps, "pbo_reps": pbo_reps, "level": 0.95,
           "sr_variance": "measured across the search's trials (ddof=1)", "dsr": dsr, "pbo": pbo,
           "notes": notes(dsr, pbo),
           "seconds": round(time.perf_counter() - t0, 1)}
    return save_results(res, out)


if __name__ == "__main__":
    ap = parser(__doc__)
    ap.add_argument("--reps", type=int, default=2000, help="searches per (returns, N) for the DSR")
    ap.add_argument("--pbo-reps", type=int, default=200, help="searches per PBO case")
    a = ap.parse_args()
    if a.smoke: main(20, 20, (10, 50), 8, out=out_path("overfit_size", True, a.out))
    else: main(a.reps, a.pbo_reps, out=out_path("overfit_size", False, a.out))
