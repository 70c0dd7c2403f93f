"""Dask scale-out: 8 small training jobs on a local cluster of 1 worker vs 2 workers (2 cores), measured in one run,
and the Dask path's overhead against the same jobs in a plain loop inside one worker. JSON in benchmarks/results/."""
import argparse, resource, time
from pathlib import Path
from common import RESULTS, save_results
from itff.cluster import dask_client, run_tasks
from itff.experiment import ExperimentConfig
from itff.pipeline import train_task
from itff.train import synthetic_ohlcv


def jobs(n:int):
    "n small, independent trainings (each its own synthetic candles and seed)."
    out = {}
    for i in range(n):
        cfg = ExperimentConfig("BTCUSDT", "1h", "direction", "lstm", source="file", window=16, epochs=3, mc_samples=10, n_boot=50,
                               model_kw=dict(units=16), seed=i)
        out[f"job{i}"] = (cfg.to_dict(), synthetic_ohlcv(0.3, n=4000, seed=i))
    return out


def loop(batch:dict) -> int:
    "The same jobs, one after the other, inside one task: the no-Dask baseline."
    for cfg, candles in batch.values(): train_task(cfg, candles)
    return len(batch)


def peak_rss_mb() -> float: return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(n_workers:int, work) -> tuple[float, dict]:
    with dask_client(n_workers=n_workers, log=lambda s: None) as client:
        client.run(lambda: train_task(*next(iter(jobs(1).values()))))   # warm every worker (imports, JIT) outside the clock
        t0 = time.perf_counter(); work(client); seconds = time.perf_counter() - t0
        return seconds, client.run(peak_rss_mb)


def main(n:int=8, out=RESULTS/"cluster_speedup.json"):
    batch = jobs(n)
    on_dask = lambda c: [r for r, e in run_tasks(c, train_task, batch, progress=False, log=print).values() if e is None]
    one, mem1 = timed(1, on_dask)
    two, mem2 = timed(2, on_dask)
    plain, _ = timed(1, lambda c: c.submit(loop, batch, pure=False).result())
    return save_results({"benchmark": "itff-pipeline tasks on a local Dask cluster", "jobs": n, "job": "LSTM, 4,000 synthetic bars, 3 epochs",
                         "seconds_1_worker": round(one, 2), "seconds_2_workers": round(two, 2), "speedup_2_vs_1": round(one / two, 3),
                         "seconds_plain_loop_1_worker": round(plain, 2), "dask_overhead_vs_loop": round(one / plain - 1, 4),
                         "peak_rss_mb_per_worker_1": [round(v, 1) for v in mem1.values()], "peak_rss_mb_per_worker_2": [round(v, 1) for v in mem2.values()],
                         "goal_speedup": 1.7, "goal_overhead": 0.05, "speedup_met": one / two >= 1.7, "overhead_met": one / plain - 1 <= 0.05}, out)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__); p.add_argument("--jobs", type=int, default=8); p.add_argument("--out", default=str(RESULTS/"cluster_speedup.json"))
    a = p.parse_args(); main(a.jobs, Path(a.out))
