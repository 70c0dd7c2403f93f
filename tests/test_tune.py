"""itff-tune end to end on synthetic candles: a pure-noise study killed mid-run and resumed, its verdict, its PBO, the
tuning report and the tuned bundle's record of the study."""
import json, os, subprocess, time
import optuna
import pytest
from conftest import BIN
from itff.artifacts import verify_bundle
from itff.tune import planted_candles

STUDY = "BTCUSDT_1h_direction_tune"
SPACE = {"model_type": ["gbm"], "features": ["base"], "window": [8, 16, 32, 64], "class_weight": [None],
         "gbm.bags": [1], "gbm.num_leaves": [7, 15, 31], "gbm.learning_rate": [0.03], "gbm.min_data_in_leaf": [200],
         "gbm.feature_fraction": [0.8]}


def tune_args(csv, space, trials):
    return [str(BIN/"itff-tune"), "--source", str(csv), "--label", "direction", "--model", "gbm", "--window", "16",
            "--space", str(space), "--trials", str(trials), "--tune-folds", "2", "--folds", "2", "--startup", "3",
            "--n-boot", "50"]


def finished(study):
    return [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]


@pytest.fixture
def noise_study(tmp_path):
    "A noise candle file and a space file in an ITFF_HOME."
    csv, space = tmp_path/"noise.csv", tmp_path/"space.json"
    planted_candles(5000, strength=0.0, seed=3).reset_index().to_csv(csv, index=False)
    space.write_text(json.dumps(SPACE))
    return tmp_path, csv, space


def test_a_killed_study_resumes_and_says_noise_bought_nothing(noise_study):
    home, csv, space = noise_study
    env = {**os.environ, "ITFF_HOME": str(home)}
    storage = f"sqlite:///{home/'tuning'/'studies.db'}"
    run = subprocess.Popen(tune_args(csv, space, 7), cwd=home, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
    deadline, before = time.monotonic() + 240, []
    while time.monotonic() < deadline and run.poll() is None:
        time.sleep(1)
        try: before = finished(optuna.load_study(study_name=STUDY, storage=storage))
        except (KeyError, Exception): continue
        if len(before) >= 3: break
    assert run.poll() is None, "the study ended before it could be killed:\n" + run.stdout.read()[-3000:]
    run.kill(); run.wait()
    kept = {t.number: t.params for t in before}
    assert len(kept) >= 3

    r = subprocess.run(tune_args(csv, space, 7), cwd=home, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert f"{len(kept)} finished trials stored, resuming" in r.stdout or "finished trials stored, resuming" in r.stdout
    study = optuna.load_study(study_name=STUDY, storage=storage)
    assert len(finished(study)) >= 7                                          # the budget counts the stored trials
    assert {n: study.trials[n].params for n in kept} == kept                  # and they are the same trials

    out = json.loads((home/"reports"/"tuning"/STUDY/"tuning.json").read_text())
    assert "bought nothing" in out["words"], out["words"]                     # noise: the tuned model is no better
    tuned = next(row for row in out["comparison"] or [] if row["forecast"] == "tuned") if out["comparison"] else None
    assert tuned is None or tuned["p_vs_default_holm"] >= 0.05
    assert out["pbo"] is not None and out["pbo"]["pbo"] >= 0.25, out["pbo"]    # the in-sample winner does not hold
    distinct = {json.dumps(t.params, sort_keys=True) for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")}
    assert 0 <= out["dsr"]["dsr"] <= 1 and out["dsr"]["n_trials"] == len(distinct) >= 3   # a repeated config counts once
    html = (home/"reports"/"tuning"/STUDY/"report.html").read_text()
    assert STUDY in html and "overfits" in html and "What tuning bought" in html
    bundle = home/"models"/"training"/"BTCUSDT_1h_direction_gbm"
    verify_bundle(bundle)
    meta = json.loads((bundle/"meta.json").read_text())
    assert meta["tuning"]["study"] == STUDY and meta["tuning"]["chosen_trial"] == out["chosen_trial"]
    assert meta["config"]["window"] == out["chosen_params"]["window"]


def test_bad_space_files_are_refused_before_any_work(tmp_path):
    env = {**os.environ, "ITFF_HOME": str(tmp_path)}
    bad = tmp_path/"space.json"; bad.write_text('{"lstm.unitz": [8]}')
    r = subprocess.run([str(BIN/"itff-tune"), "--space", str(bad)], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.returncode == 2 and "lstm has no parameter 'unitz'" in r.stderr, r.stderr
    assert not (tmp_path/"tuning").exists()
