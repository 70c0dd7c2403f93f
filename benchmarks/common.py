"""What every benchmark shares: the `--smoke` switch (tiny sizes, a few seconds: `make test` runs it, so a benchmark
that stops working fails CI), a small real bundle to time, and writing the result as JSON under benchmarks/results/
(a smoke run writes to a temporary folder instead, never over the real results)."""
import argparse, json, os, platform, sys, tempfile
from pathlib import Path

RESULTS = Path(__file__).parent/"results"
SMOKE = "--smoke" in sys.argv[1:]
if SMOKE:   # before NumPy, scikit-learn and JAX load (every benchmark imports this module first)
    os.environ.setdefault("OMP_NUM_THREADS", "1")   # spinning OpenMP threads make scikit-learn crawl on a busy machine
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(Path(tempfile.gettempdir())/"itff-bench-jax-cache"))
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")   # the smoke runs share compiled programs


def parser(doc:str) -> argparse.ArgumentParser:
    "An argument parser (described by the first line of `doc`) with the flags every benchmark has: --smoke and --out."
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, seconds: does it still work? (JSON: a temp dir)")
    ap.add_argument("--out", type=Path, help="result JSON (default: benchmarks/results/NAME.json; --smoke: a temp dir)")
    return ap


def out_path(name:str, smoke:bool=False, out=None) -> Path:
    "Where a result goes: `out` if given, else benchmarks/results/`name`.json, or the temp folder's itff-bench-smoke/."
    if out is not None: return Path(out)
    return (Path(tempfile.gettempdir())/"itff-bench-smoke" if smoke else RESULTS)/f"{name}.json"


def save_results(res: dict, out) -> dict:
    "Add the machine's Python and architecture, write `res` as JSON to `out`, print it."
    res = {**res, "python": platform.python_version(), "machine": platform.machine()}
    out = Path(out); out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2)); print(f"written to {out}")
    return res


def make_bundle(folder, model_type:str="lstm", window:int=48, bars:int=3000, mc_samples:int=30, **model_kw) -> Path:
    """A real bundle under `folder`/training/, made by `run_experiment` (one epoch on synthetic 1h candles): the
    benchmarks time what the API and the Predictor load, never a hand-written imitation that drifts from the format."""
    try: from itff.config import ExperimentConfig                      # its home after the module split …
    except ImportError: from itff.experiment import ExperimentConfig   # … and before (drop once it is exported)
    from itff.experiment import run_experiment
    from itff.pipeline import prepare_data
    from itff.train import synthetic_ohlcv
    cfg = ExperimentConfig("BTCUSDT", "1h", "direction", model_type, source="synthetic", window=window, epochs=1,
                           mc_samples=mc_samples, n_boot=10, model_kw=model_kw)
    ohlcv, ds = prepare_data(cfg, (cfg.label,), candles=synthetic_ohlcv(0.3, n=bars))
    m = run_experiment(cfg, Path(folder), Path(folder)/"reports", progress=False, log=lambda s: None, ohlcv=ohlcv,
                       ds=ds[cfg.label])
    return Path(m["bundle"])
