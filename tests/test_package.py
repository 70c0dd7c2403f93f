"""What a user installing the wheel gets: the modules, the bundled data with its credits, the console scripts."""
import subprocess, sys, zipfile
from pathlib import Path
import pytest

ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(ROOT), "-w", str(out)], check=True, timeout=300)
    return zipfile.ZipFile(next(out.glob("itff-*.whl")))


def test_wheel_ships_bundled_data(wheel):
    names = set(wheel.namelist())
    for f in ("btcusdt_1h.csv.gz", "ethusdt_1h.csv.gz", "btcusdt_30m.csv.gz", "ethusdt_30m.csv.gz", "crypto_news_headlines.csv.gz", "README.md"):
        assert f"itff/data/{f}" in names, f"{f} missing from the wheel"
    assert (ROOT/"itff/data/btcusdt_1h.csv.gz").read_bytes() == wheel.read("itff/data/btcusdt_1h.csv.gz")
    assert "CryptoDataDownload" in wheel.read("itff/data/README.md").decode()


def test_wheel_declares_console_scripts(wheel):
    eps = next(n for n in wheel.namelist() if n.endswith("entry_points.txt"))
    text = wheel.read(eps).decode()
    for script in ("itff-fetch-data", "itff-fetch-sentiment", "itff-engineer-features", "itff-prepare-sequences", "itff-demo"):
        assert script in text


def test_wheel_declares_the_gpu_extra(wheel):
    "pip install 'itff[gpu]' brings JAX's CUDA 12 plugin through jax's own extra (so the plugin matches jax's version)."
    meta = wheel.read(next(n for n in wheel.namelist() if n.endswith("METADATA"))).decode()
    assert "Provides-Extra: gpu" in meta
    gpu = [line for line in meta.splitlines() if line.startswith("Requires-Dist:") and 'extra == "gpu"' in line]
    assert len(gpu) == 1 and gpu[0].split()[1].startswith("jax[cuda12]"), gpu


def test_serving_path_imports_only_what_serving_needs():
    "The service loads bundles and predicts: importing it must not pull in dataset building, training, evaluation or reports."
    code = "import sys, itff.api; print(' '.join(sorted(m for m in sys.modules if m.startswith('itff.'))))"
    loaded = set(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=120).stdout.split())
    assert {"itff.api", "itff.predictor", "itff.scaler", "itff.models", "itff.artifacts", "itff.datasets"} <= loaded   # datasets: the one candles → windows function
    training_side = {"itff.train", "itff.experiment", "itff.metrics", "itff.plots", "itff.backtest", "itff.reports", "itff.dashboard"}
    assert not loaded & training_side, f"serving imports {sorted(loaded & training_side)}"
