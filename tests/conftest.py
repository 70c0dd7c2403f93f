"""Shared fixtures: an isolated ITFF_HOME, synthetic candles up to 'now', and the installed console scripts."""
import os, shutil, subprocess, sys
from pathlib import Path
import numpy as np
import pandas as pd
import pytest

BIN = Path(sys.executable).parent


def synthetic_candles(end, periods=2000, freq="1h", seed=0):
    "A random-walk OHLCV frame whose last bar opens at `end` (floored to `freq`)."
    rng = np.random.default_rng(seed)
    idx = pd.date_range(end=pd.Timestamp(end).floor(freq), periods=periods, freq=freq, tz="UTC", name="timestamp")
    close = 30000 * np.exp(np.cumsum(rng.normal(0, 0.004, periods)))
    open_ = np.r_[close[0], close[:-1]]
    wick = np.abs(rng.normal(0, 0.002, (2, periods))) * close
    return pd.DataFrame({"open": open_, "high": np.maximum(open_, close) + wick[0], "low": np.minimum(open_, close) - wick[1],
                         "close": close, "volume": rng.uniform(10, 100, periods)}, index=idx.as_unit("ns"))


@pytest.fixture
def home(tmp_path, monkeypatch):
    "An empty ITFF_HOME; every runtime file of the test goes there."
    for k in ("ITFF_DATA_DIR", "ITFF_MODELS_DIR", "ITFF_REPORTS_DIR"): monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("ITFF_HOME", str(tmp_path))
    return tmp_path


def run_cli(name, *args, cwd=None, env=None):
    "Run an installed console script; returns the CompletedProcess."
    exe = shutil.which(name, path=str(BIN)) or str(BIN/name)
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, cwd=cwd, env={**os.environ, **(env or {})}, timeout=300)


def snapshot(folder):
    "Every file under `folder` with its bytes, to prove a failing command wrote nothing."
    return {p.relative_to(folder): p.read_bytes() for p in Path(folder).rglob("*") if p.is_file()}


def train_tiny(home, symbol="BTCUSDT", seed=0, labels=("direction", "level_up")):
    "Train tiny LSTM bundles for `symbol` on a synthetic AR(1) candle file under `home` with the real itff-pipeline."
    from itff.train import synthetic_ohlcv
    candles = Path(home)/f"{symbol.lower()}_candles.csv"
    synthetic_ohlcv(0.3, n=3000, seed=seed).reset_index().to_csv(candles, index=False)
    r = run_cli("itff-pipeline", "--symbol", symbol, "--source", candles, "--labels", ",".join(labels), "--model-type", "lstm",
                "--epochs", "2", "--window", "16", "--mc-samples", "8", cwd=home, env={"ITFF_HOME": str(home)})
    assert r.returncode == 0, r.stdout + r.stderr
    return candles


@pytest.fixture(scope="session")
def tiny_home(tmp_path_factory):
    "An ITFF_HOME with tiny bundles: BTCUSDT 1h direction and level_up, ETHUSDT 1h direction (LSTM). Copy it before changing it."
    home = tmp_path_factory.mktemp("tiny_home")
    train_tiny(home, "BTCUSDT", 0)
    train_tiny(home, "ETHUSDT", 1, ("direction",))
    return home


def rehashed_copy(bundle, dest, edit):
    ("A copy of `bundle` at `dest` whose meta.json is `edit(meta)`, its hashes.json recomputed so every checksum holds: "
     "a bundle whose content alone is wrong.")
    import json
    from itff.core import sha256_file
    shutil.copytree(bundle, dest)
    (dest/"meta.json").write_text(json.dumps(edit(json.loads((dest/"meta.json").read_text()))))
    h = json.loads((dest/"hashes.json").read_text()); h["files"]["meta.json"] = sha256_file(dest/"meta.json")
    (dest/"hashes.json").write_text(json.dumps(h))
    return dest
