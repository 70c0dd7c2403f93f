"""The Dockerfile, replayed without a Docker engine: its RUN, ENV, WORKDIR, COPY, USER, ENTRYPOINT, CMD and HEALTHCHECK
lines run in a fresh virtual environment (paths under a scratch root, ports free on loopback), and both targets must
pass their own health checks. The api target syncs its bundle at start from a loopback artifact server."""
import hashlib, http.server, json, re, shlex, shutil, socket, subprocess, threading, time, venv
from functools import partial
from pathlib import Path

ROOT = Path(__file__).parents[1]


def parse_dockerfile(text:str) -> dict:
    "{stage: {'from': image or stage, 'steps': [(INSTRUCTION, argument)]}}, continuation lines joined, comments dropped."
    stages, cur = {}, None
    for line in re.sub(r"\\\n\s*", " ", text).splitlines():
        line = line.strip()
        if not line or line.startswith("#"): continue
        instr, _, arg = line.partition(" ")
        if instr.upper() == "FROM":
            image, _, name = arg.partition(" AS ")
            cur = stages[name.strip() or image.strip()] = {"from": image.strip(), "steps": []}
        else: cur["steps"].append((instr.upper(), arg.strip()))
    return stages


def chain(stages:dict, target:str) -> list:
    "The steps that build `target`: its ancestors' first."
    st = stages[target]
    return (chain(stages, st["from"]) if st["from"] in stages else []) + st["steps"]


def free_port():
    with socket.socket() as s: s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


class Replay:
    "A Dockerfile target replayed on this machine: '/' is `fs`, Python is a fresh venv, the network is loopback."
    def __init__(self, tmp:Path):
        self.fs, self.venv = tmp/"fs", tmp/"venv"
        venv.create(self.venv, with_pip=True)
        self.env = {"PATH": f"{self.venv/'bin'}:/usr/bin:/bin", "HOME": str(tmp/"home"), "LANG": "C.UTF-8"}
        self.cwd, self.user, self.cmd, self.entrypoint, self.health, self.ports = self.fs, None, None, [], None, []

    def path(self, s:str) -> str:
        "Absolute container paths mapped under the scratch root."
        return re.sub(r"(?<![\w.])/(app|srv)\b", lambda m: f"{self.fs}/{m.group(1)}", s)

    def step(self, instr:str, arg:str):
        if instr == "ENV":
            for k, v in (kv.split("=", 1) for kv in shlex.split(arg)):
                if k != "PIP_NO_CACHE_DIR": self.env[k] = self.path(v)     # the replay reuses this machine's pip cache
        elif instr == "WORKDIR": self.cwd = Path(self.path(arg)); self.cwd.mkdir(parents=True, exist_ok=True)
        elif instr == "COPY":
            *srcs, dst = shlex.split(arg)
            dst = Path(self.path(dst)) if dst.startswith("/") else self.cwd/dst
            for s in srcs:
                if (ROOT/s).is_dir(): shutil.copytree(ROOT/s, dst, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
                else:
                    target = dst/Path(s).name if str(dst).endswith("/") or len(srcs) > 1 or dst.is_dir() else dst
                    target.parent.mkdir(parents=True, exist_ok=True); shutil.copy2(ROOT/s, target)
        elif instr == "RUN":
            for part in arg.split(" && "): self.run_shell(part.strip())
        elif instr == "USER": self.user = arg
        elif instr == "ENTRYPOINT": self.entrypoint = [self.path(a) for a in json.loads(arg)]
        elif instr == "CMD": self.cmd = [self.path(a) for a in json.loads(arg)]
        elif instr == "HEALTHCHECK": self.health = arg.split(" CMD ", 1)[1]
        elif instr == "EXPOSE": self.ports.append(int(arg))
        else: raise AssertionError(f"the replay does not know {instr}")

    def run_shell(self, cmd:str):
        word = cmd.split()[0]
        if word in ("useradd", "chown"): return                  # users and ownership need a real image; USER is checked instead
        if word in ("apt-get", "rm"):                            # system packages: the image installs them, this machine must have them
            if cmd.split()[1] == "install":
                pkgs = [w for w in cmd.split()[2:] if not w.startswith("-")]
                missing = [p for p in pkgs if subprocess.run(["dpkg", "-s", p], capture_output=True).returncode]
                assert not missing, f"the image installs {missing}, which this machine lacks: the replay cannot stand in for them"
            return
        assert word in ("pip", "mkdir", "python"), f"unexpected RUN command: {cmd}"
        r = subprocess.run(self.path(cmd), shell=True, cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=1500)
        assert r.returncode == 0, f"{cmd}\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"

    def start(self, port:int, **env) -> subprocess.Popen:
        "ENTRYPOINT + CMD on `port` (instead of the exposed one), bound to loopback."
        args = [a.replace(str(self.ports[-1]), str(port)).replace("0.0.0.0", "127.0.0.1") for a in self.entrypoint + self.cmd]
        return subprocess.Popen(args, cwd=self.cwd, env={**self.env, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def healthy(self, port:int, proc, timeout:float=180) -> bool:
        "Run the HEALTHCHECK command until it passes (True) or the process dies or time runs out."
        probe = self.health.replace(str(self.ports[-1]), str(port))
        deadline = time.time() + timeout
        while time.time() < deadline:
            if proc.poll() is not None: return False
            if subprocess.run(probe, shell=True, env=self.env, capture_output=True).returncode == 0: return True
            time.sleep(1)
        return False


def stop(proc) -> str:
    proc.terminate()
    try: proc.wait(15)
    except subprocess.TimeoutExpired: proc.kill(); proc.wait()
    return proc.stdout.read()


def test_dockerfile_shape():
    stages = parse_dockerfile((ROOT/"Dockerfile").read_text())
    assert stages["base"]["from"] == "python:3.11-slim" and stages["api"]["from"] == stages["dashboard"]["from"] == "base"
    for target, port in (("api", 8000), ("dashboard", 8050)):
        steps = dict(chain(stages, target))
        assert steps["USER"] not in ("root", "0") and ("EXPOSE", str(port)) in chain(stages, target)
        assert "HEALTHCHECK" in dict(stages[target]["steps"]) and f"{port}/health" in steps["HEALTHCHECK"]
    assert "--workers" in dict(stages["api"]["steps"])["CMD"] and "itff.api:app" in dict(stages["api"]["steps"])["CMD"]
    ignored = (ROOT/".dockerignore").read_text().split()
    for must in ("data/", "models/", "reports/", ".venv", "**/__pycache__", "**/.ipynb_checkpoints", ".git"): assert must in ignored
    compose = (ROOT/"compose.yaml").read_text()
    assert "target: api" in compose and "target: dashboard" in compose and "redis://redis:6379" in compose


def test_env_example_lists_every_variable_the_code_reads():
    read = set(re.findall(r"ITFF_[A-Z_]+", " ".join(p.read_text() for p in (ROOT/"itff").glob("*.py")) + (ROOT/"deploy/docker-entrypoint.sh").read_text()))
    listed = dict(re.findall(r"^([A-Z_]+)=(.*)$", (ROOT/".env.example").read_text(), re.M))
    assert read <= set(listed), f"not in .env.example: {sorted(read - set(listed))}"
    assert "PROMETHEUS_MULTIPROC_DIR" in listed
    text = (ROOT/".env.example").read_text()
    for k in listed: assert re.search(rf"#[^\n]*\n{k}=", text), f"{k} has no comment"


def artifact_server(folder:Path):
    "An HTTP server on loopback serving `folder`."
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(http.server.SimpleHTTPRequestHandler, directory=str(folder)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def test_both_targets_install_start_and_pass_their_health_checks(tiny_home, tmp_path):
    stages = parse_dockerfile((ROOT/"Dockerfile").read_text())
    rep = Replay(tmp_path)
    for instr, arg in chain(stages, "base"): rep.step(instr, arg)
    # publish one bundle with a manifest (sha256 per file), as itff-hash-artifacts does
    bundle = "BTCUSDT_1h_level_up_lstm"
    files = sorted((tiny_home/"models/training"/bundle).iterdir())
    manifest = tmp_path/"manifest.json"
    manifest.write_text(json.dumps({"base_url": None, "artifacts": [{"source": f"models/training/{bundle}/{f.name}", "destination": f"models/training/{bundle}/{f.name}",
                                                                      "sha256": hashlib.sha256(f.read_bytes()).hexdigest()} for f in files]}))
    httpd = artifact_server(tiny_home)
    api = Replay.__new__(Replay); api.__dict__ = {**rep.__dict__, "env": dict(rep.env), "ports": list(rep.ports)}
    for instr, arg in stages["api"]["steps"]: api.step(instr, arg)
    port = free_port()
    proc = api.start(port, ITFF_ARTIFACT_BASE_URL=f"http://127.0.0.1:{httpd.server_port}", ITFF_ARTIFACT_MANIFEST=str(manifest))
    try:
        assert api.healthy(port, proc), stop(proc)
        import httpx
        deadline = time.time() + 120                                            # healthy is live; ready is loaded
        while httpx.get(f"http://127.0.0.1:{port}/ready").status_code != 200 and time.time() < deadline: time.sleep(0.5)
        health = httpx.get(f"http://127.0.0.1:{port}/health").json()
        assert [b["id"] for b in health["bundles"]] == [bundle]                 # synced at start, verified, loaded
        assert (rep.fs/"srv/itff/models/training"/bundle/"model.keras").read_bytes() == (tiny_home/"models/training"/bundle/"model.keras").read_bytes()
    finally: stop(proc); httpd.shutdown()
    dash = Replay.__new__(Replay); dash.__dict__ = {**rep.__dict__, "env": dict(rep.env), "ports": list(rep.ports)}
    for instr, arg in stages["dashboard"]["steps"]: dash.step(instr, arg)
    port = free_port(); proc = dash.start(port)
    try: assert dash.healthy(port, proc), stop(proc)
    finally: stop(proc)
