"""itff-pipeline on a real Dask cluster on loopback: a `dask scheduler` and two `dask worker` processes (one thread each)."""
import json, os, signal, socket, subprocess, sys, time
from pathlib import Path
import pytest
from conftest import run_cli
from itff.artifacts import verify_bundle
from itff.cluster import WORKER_ENV

BIN = Path(sys.executable).parent
COMBOS = ("BTCUSDT_1h_level_up_lstm", "ETHUSDT_1h_level_up_lstm")
ARGS = ("--symbols", "BTCUSDT,ETHUSDT", "--train-level", "--model-type", "lstm", "--epochs", "1")


def free_port():
    with socket.socket() as s: s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


@pytest.fixture
def cluster():
    "A scheduler and two single-threaded workers (no nanny: killing a worker's process kills the worker)."
    port, env = free_port(), {**os.environ, **WORKER_ENV}
    procs = [subprocess.Popen([str(BIN/"dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    address = f"tcp://127.0.0.1:{port}"
    workers = [subprocess.Popen([str(BIN/"dask"), "worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard", "--host", "127.0.0.1",
                                 "--memory-limit", "6GiB"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
    from distributed import Client
    client = Client(address, timeout="60s")
    client.wait_for_workers(2, timeout=120)
    yield address, client, workers
    client.close()
    for p in workers + procs:
        p.kill(); p.wait()


def scores(home, combo):
    return json.loads((home/"models/training"/f"{combo}_metrics.json").read_text())["scores"]


def test_pipeline_on_a_real_cluster_matches_a_local_run(cluster, tmp_path):
    address, client, _ = cluster
    remote, local = tmp_path/"remote", tmp_path/"local"
    r = run_cli("itff-pipeline", *ARGS, "--scheduler", address, cwd=tmp_path, env={"ITFF_HOME": str(remote)})
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert f"2 worker(s) on {address}" in r.stdout and "2 combination(s) done, 0 failed" in r.stdout
    for c in COMBOS:
        verify_bundle(remote/"models/training"/c)                                 # every file's sha256, installed by the client
        assert (remote/"reports"/c/"metrics.json").exists()
    assert not list(remote.rglob(".staging-*"))
    r = run_cli("itff-pipeline", *ARGS, "--workers", "2", cwd=tmp_path, env={"ITFF_HOME": str(local)})   # embedded local cluster
    assert r.returncode == 0, r.stderr[-3000:]
    for c in COMBOS:                                                               # same seed, same bundle, wherever it ran
        a, b = scores(remote, c), scores(local, c)
        for name in ("model", "model_raw", "gbm", "climatology"):
            for k in ("roc_auc", "brier", "bss", "ece"): assert a[name][k] == pytest.approx(b[name][k], abs=1e-9), (c, name, k)


def test_a_worker_killed_mid_task_is_survived(cluster, tmp_path):
    address, client, workers = cluster
    home = tmp_path/"home"
    exe = BIN/"itff-pipeline"
    run = subprocess.Popen([str(exe), *ARGS, "--scheduler", address], cwd=tmp_path, env={**os.environ, "ITFF_HOME": str(home)},
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and sum(len(v) for v in client.processing().values()) < 2: time.sleep(0.5)
    time.sleep(3)                                                                  # both tasks are running: kill one worker
    busy = [w for w, keys in client.processing().items() if keys]
    assert busy, "no task started"
    victim = next(p for p in workers if str(p.pid) in json.dumps(client.run(os.getpid, workers=[busy[0]])))
    victim.send_signal(signal.SIGKILL); victim.wait()
    out, err = run.communicate(timeout=900)
    assert run.returncode == 0, out[-2000:] + err[-3000:]
    for c in COMBOS: verify_bundle(home/"models/training"/c)
    assert len(client.scheduler_info()["workers"]) == 1


def test_a_failing_combination_is_reported_while_the_others_finish(cluster, tmp_path):
    address, _, _ = cluster
    home = tmp_path/"home"
    r = run_cli("itff-pipeline", "--symbols", "BTCUSDT,XRPUSDT", "--timeframes", "30m", "--train-level", "--model-type", "lstm", "--epochs", "1",
                "--scheduler", address, cwd=tmp_path, env={"ITFF_HOME": str(home)})
    assert r.returncode == 1, r.stdout[-2000:] + r.stderr[-2000:]                  # one combination failed
    assert "✗ XRPUSDT_30m_level_up_lstm: DataError: no bundled candles for XRPUSDT 30m" in r.stderr and " (at " in r.stderr
    verify_bundle(home/"models/training/BTCUSDT_30m_level_up_lstm")                # the other finished and was installed
    assert not (home/"models/training/XRPUSDT_30m_level_up_lstm").exists() and not list(home.rglob(".staging-*"))


def test_tuning_trials_run_as_tasks_on_the_workers(cluster, tmp_path):
    "itff-tune --scheduler: each trial is a task on a `dask worker` process, writing to the study's SQLite file."
    import optuna
    from itff.tune import planted_candles
    address, client, _ = cluster
    csv, space = tmp_path/"planted.csv", tmp_path/"space.json"
    planted_candles(4000).reset_index().to_csv(csv, index=False)
    space.write_text(json.dumps({"model_type": ["gbm"], "features": ["base"], "window": [16, 64], "class_weight": [None],
                                 "gbm.bags": [1]}))
    r = run_cli("itff-tune", "--source", csv, "--label", "direction", "--model", "gbm", "--space", space, "--trials", "3",
                "--tune-folds", "2", "--folds", "1", "--n-boot", "20", "--no-bundle", "--no-report", "--scheduler", address,
                cwd=tmp_path, env={"ITFF_HOME": str(tmp_path)})
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    study = optuna.load_study(study_name="BTCUSDT_1h_direction_tune", storage=f"sqlite:///{tmp_path/'tuning'/'studies.db'}")
    done = [t for t in study.trials if t.state.is_finished()]
    assert len(done) >= 3
    pids = set(client.run(os.getpid).values())
    assert {int(t.user_attrs["worker"].split(":")[1]) for t in done} <= pids      # every trial ran on a worker process
    assert (tmp_path/"reports"/"tuning"/study.study_name/"tuning.json").exists()
