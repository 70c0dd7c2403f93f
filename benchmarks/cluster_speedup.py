"""Dask scale-out: 8 small training jobs on a local cluster of 1 worker vs 2 workers (2 cores), measured in one run,
and the Dask path's overhead against the same jobs in a plain loop inside one worker. JSON in benchmarks/results/.
--smoke: 1 tiny job, no warm-up outside the clock.
Run: .venv/bin/python benchmarks/cluster_speedup.py [--jobs 8] [--smoke]
"""
import resource, time
from common import out_path, parser, save_results
from itff.cluster import dask_client, run_tasks
try: from itff.config import ExperimentConfig                      # its home after the module split …
except ImportError: from itff.experiment import ExperimentConfig   # … and before (drop once exported)
from itff.pipeline import train_task
from itff.train import synthetic_ohlcv

JOB = dict(window=16, epochs=3, mc_samples=10, n_boot=50, units=16, bars=4000)   # LSTM, 4,000 synthetic bars, 3 epochs
SMOKE = dict(window=16, epochs=1, mc_samples=5, n_boot=10, units=8, bars=1500)


def jobs(n:int, window=16, epochs=3, mc_samples=10, n_boot=50, units=16, bars=4000):
    "n small, independent trainings (each its own synthetic candles and seed)."
    out = {}
    for i in range(n):
        cfg = ExperimentConfig("BTCUSDT", "1h", "direction", "lstm", source="synthetic", window=window, epochs=epochs,
                               mc_samples=mc_samples, n_boot=n_boot, model_kw=dict(units=units), seed=i)
        out[f"job{i}"] = (cfg.to_dict(), synthetic_ohlcv(0.3, n=bars, seed=i))
    return out


def loop(batch:dict) -> int:
    "The same jobs, one after the other, inside one task: the no-Dask baseline."
    for cfg, candles in batch.values(): train_task(cfg, candles)
    return len(batch)


def on_dask(client, batch:dict) -> list:
    "The jobs as Dask tasks; every one must succeed (a failure would make the timing meaningless)."
    done = run_tasks(client, train_task, batch, progress=False, log=print)
    failed = {k: e for k, (r, e) in done.items() if e is not None}
    if failed: raise RuntimeError(f"{len(failed)} of {len(batch)} jobs failed: {failed}")
    return [r for r, _ in done.values()]


def peak_rss_mb() -> float: return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(n_workers:int, work, warm:dict|None) -> tuple[float, dict]:
    "Seconds of `work(client)` on a new local cluster of `n_workers` (each first runs `warm` off the clock), peak RSS."
    with dask_client(n_workers=n_workers, log=lambda s: None) as client:
        if warm: client.run(lambda: train_task(*next(iter(warm.values()))))   # warm every worker (imports, JIT)
        t0 = time.perf_counter(); work(client); seconds = time.perf_counter() - t0
        return seconds, client.run(peak_rss_mb)


def main(n:int=8, job:dict=JOB, warm:bool=True, out=None):
    batch, w = jobs(n, **job), jobs(1, **job) if warm else None
    one, mem1 = timed(1, lambda c: on_dask(c, batch), w)
    two, mem2 = timed(2, lambda c: on_dask(c, batch), w)
    plain, _ = timed(1, lambda c: c.submit(loop, batch, pure=False).result(), w)
    rss, epochs = lambda mem: [round(v, 1) for v in mem.values()], job["epochs"]
    return save_results({"benchmark": "itff-pipeline tasks on a local Dask cluster", "jobs": n,
                         "job": f"LSTM, {job['bars']:,} synthetic bars, {epochs} epoch{'s' * (epochs > 1)}",
                         "seconds_1_worker": round(one, 2), "seconds_2_workers": round(two, 2),
                         "speedup_2_vs_1": round(one / two, 3), "seconds_plain_loop_1_worker": round(plain, 2),
                         "dask_overhead_vs_loop": round(one / plain - 1, 4),
                         "peak_rss_mb_per_worker_1": rss(mem1), "peak_rss_mb_per_worker_2": rss(mem2),
                         "goal_speedup": 1.7, "goal_overhead": 0.05, "speedup_met": one / two >= 1.7,
                         "overhead_met": one / plain - 1 <= 0.05}, out or out_path("cluster_speedup"))


if __name__ == "__main__":
    ap = parser(__doc__); ap.add_argument("--jobs", type=int, default=8)
    a = ap.parse_args()
    out = out_path("cluster_speedup", a.smoke, a.out)
    if a.smoke: main(1, SMOKE, warm=False, out=out)
    else: main(a.jobs, out=out)
