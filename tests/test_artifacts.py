"""Artifact hashing and syncing against a real HTTP server on loopback: good files, a wrong checksum, a broken connection."""
import functools, http.server, json, threading
from pathlib import Path
import numpy as np
import pytest
from conftest import run_cli, snapshot
from itff.artifacts import load_bundle, write_bundle
from itff.calibrate import Calibrator
from itff.datasets import Scaler
from itff.models import build_model


class Handler(http.server.SimpleHTTPRequestHandler):
    "Serves a folder; paths under /broken/ promise the full length but close the connection halfway."
    def log_message(self, *a): pass
    def do_GET(self):
        if not self.path.startswith("/broken/"): return super().do_GET()
        data = (Path(self.directory)/self.path[len("/broken/"):]).read_bytes()
        self.send_response(200); self.send_header("Content-Length", str(len(data))); self.end_headers()
        self.wfile.write(data[:len(data) // 2]); self.wfile.flush()
        self.close_connection = True


# the least a bundle's meta.json holds for `load_bundle` (`itff.artifacts.check_meta`)
META = {"id": "BTCUSDT_1h_direction_lstm", "window": 4, "horizon": 4, "timeframe": "1h",
        "label": {"name": "direction", "horizon": 4, "theta": 0.01, "definition": "close 4 bars ahead > close now"},
        "config": {"symbol": "BTCUSDT", "model_type": "lstm"}, "trained_through": "2025-01-01 00:00:00+00:00"}


@pytest.fixture
def served(tmp_path):
    "A bundle written under tmp/remote, served over HTTP on 127.0.0.1 (free port)."
    remote = tmp_path/"remote"
    write_bundle(remote/"models/training/BTCUSDT_1h_direction_lstm", [build_model("lstm", 4, 2, units=2, dense=2)],
                 Scaler(["a", "b"], np.zeros(2), np.ones(2), 3), Calibrator(), META, {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(remote)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield remote, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown(); server.server_close()


def test_hash_then_sync_over_http(served, tmp_path):
    remote, url = served
    r = run_cli("itff-hash-artifacts", "--root", remote)
    assert r.returncode == 0, r.stderr
    hashes = json.loads((remote/"deploy/artifact_hashes.json").read_text())["files"]
    assert len(hashes) == 6 and all(k.startswith("models/training/") for k in hashes)
    manifest = tmp_path/"manifest.json"
    manifest.write_text(json.dumps({"artifacts": [{"source": k, "destination": k, "sha256": None} for k in hashes]}))
    r = run_cli("itff-hash-artifacts", "--root", remote, "--manifest", manifest)   # fills the sha256 values
    assert "6 manifest entries updated" in r.stdout, r.stdout + r.stderr
    assert all(e["sha256"] == hashes[e["destination"]] for e in json.loads(manifest.read_text())["artifacts"])

    root = tmp_path/"deployed"
    r = run_cli("itff-sync-artifacts", "--manifest", manifest, "--base-url", url, "--root", root)
    assert r.returncode == 0 and "6 downloaded" in r.stdout, r.stdout + r.stderr
    b = load_bundle(root/"models/training/BTCUSDT_1h_direction_lstm")                # every checksum verified
    assert b.sha == load_bundle(remote/"models/training/BTCUSDT_1h_direction_lstm").sha

    r = run_cli("itff-sync-artifacts", "--manifest", manifest, "--root", root, env={"ITFF_ARTIFACT_BASE_URL": url})
    assert "0 downloaded, 6 skipped" in r.stdout
    target = root/"models/training/BTCUSDT_1h_direction_lstm/metrics.json"
    target.write_text("{}")
    r = run_cli("itff-sync-artifacts", "--manifest", manifest, "--base-url", url, "--root", root, "--overwrite")
    assert "6 downloaded" in r.stdout, r.stdout + r.stderr
    assert target.read_bytes() == (remote/"models/training/BTCUSDT_1h_direction_lstm/metrics.json").read_bytes()


def test_wrong_checksum_and_broken_connection_write_nothing(served, tmp_path):
    remote, url = served
    name = "models/training/BTCUSDT_1h_direction_lstm/model.keras"
    good = {"artifacts": [{"source": name, "destination": name}]}
    root = tmp_path/"deployed"; root.mkdir()
    for entry, message in [({"sha256": "0" * 64}, "sha256 mismatch"), ({"source": "broken/" + name}, "download failed")]:
        m = tmp_path/"m.json"
        m.write_text(json.dumps({"artifacts": [{**good["artifacts"][0], **entry}]}))
        before = snapshot(root)
        r = run_cli("itff-sync-artifacts", "--manifest", m, "--base-url", url, "--root", root)
        assert r.returncode == 1 and message in r.stderr, r.stdout + r.stderr
        assert snapshot(root) == before and not any(p.is_file() for p in root.rglob("*"))


def test_bad_manifest(tmp_path):
    m = tmp_path/"m.json"
    m.write_text('{"artifacts": [{"source": "a", "destination": "/etc/passwd"}]}')
    r = run_cli("itff-sync-artifacts", "--manifest", m, "--root", tmp_path/"x", "--base-url", "http://127.0.0.1:9")
    assert r.returncode == 2 and "must stay inside the root" in r.stderr
    assert not (tmp_path/"x").exists()


def test_repository_manifest_lists_whole_demo_bundles():
    "deploy/artifacts.manifest.json parses and names exactly the files a bundle has, for the four demo bundles."
    from itff.artifacts import model_files, read_manifest
    m = read_manifest(Path(__file__).parents[1]/"deploy/artifacts.manifest.json")
    per_bundle = {}
    for e in m["artifacts"]:
        folder, name = e["destination"].rsplit("/", 1)
        per_bundle.setdefault(folder, set()).add(name)
    want = set(model_files(1)) | {"scaler.json", "calibrator.json", "meta.json", "metrics.json", "hashes.json", "ood.npz"}   # ood.npz: hashes.json lists it
    assert sorted(per_bundle) == [f"models/training/BTCUSDT_1h_{lab}_{mt}" for lab in ("direction", "level_up") for mt in ("lstm", "transformer")]
    assert all(v == want for v in per_bundle.values())
