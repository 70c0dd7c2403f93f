"""The deployment files checked against what they deploy: render.yaml (Render Blueprint) and .railway/railway.ts
(Railway Infrastructure as Code) against the Dockerfile's targets, ports, health checks and entrypoint, the routes the
two services really serve, and .env.example (every variable the services read is declared; no secret has a value in any
of these files); the GitHub workflows and the README badge against `make test` and the repository URL."""
import ast, json, re, shlex, tomllib
from pathlib import Path

import pytest, yaml

ROOT = Path(__file__).parents[1]
SECRET = re.compile(r"TOKEN|SECRET|PASSWORD|PASSPHRASE|USERNAME|API_KEY|CREDENTIAL")   # credentials: never a value
PLATFORM_VARS = {"PORT"}          # read by the platform's router and health checker, not by ITFF
MODELS_DIR = "/srv/itff/models"   # where the images look for bundles (ITFF_HOME=/srv/itff)
SERVICES = ("api", "dashboard")   # each service is the Dockerfile target of the same name
METADATA = {"EXPOSE", "HEALTHCHECK", "CMD", "LABEL"}   # instructions that change no file in the image


# ---- the Dockerfile ------------------------------------------------------------------------------------------------
def dockerfile() -> dict:
    "{stage: {'from': image or stage, 'steps': [(INSTRUCTION, argument)]}} in file order (continuations joined)."
    stages, cur = {}, None
    for line in re.sub(r"\\\n\s*", " ", (ROOT/"Dockerfile").read_text()).splitlines():
        line = line.strip()
        if not line or line.startswith("#"): continue
        instr, _, arg = line.partition(" ")
        if instr.upper() == "FROM":
            m = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", arg.strip(), re.I)
            cur = stages[m.group(2) or m.group(1)] = {"from": m.group(1), "steps": []}
        elif cur is not None: cur["steps"].append((instr.upper(), arg.strip()))
    return stages


def chain(stages:dict, name:str) -> list:
    "The steps that make stage `name`, its ancestors' first."
    st = stages[name]
    return (chain(stages, st["from"]) if st["from"] in stages else []) + st["steps"]


def last(stages:dict, name:str, instr:str) -> str:
    "The argument of the last `instr` in effect for stage `name`."
    args = [a for i, a in chain(stages, name) if i == instr]
    assert args, f"stage {name!r} has no {instr}"
    return args[-1]


def exec_form(arg:str) -> list:
    "A CMD/ENTRYPOINT in JSON (exec) form as an argv list."
    argv = json.loads(arg)
    assert isinstance(argv, list) and all(isinstance(a, str) for a in argv), arg
    return argv


def healthcheck(stages:dict, name:str) -> tuple[int, str]:
    "(port, path) the stage's HEALTHCHECK probes."
    m = re.search(r"https?://(?:127\.0\.0\.1|localhost):(\d+)(/[^'\"\s]*)", last(stages, name, "HEALTHCHECK"))
    assert m, f"the {name} HEALTHCHECK probes no loopback URL"
    return int(m.group(1)), m.group(2)


def target_argv(stages:dict, name:str) -> list:
    "What the container of target `name` runs: ENTRYPOINT + CMD."
    return exec_form(last(stages, name, "ENTRYPOINT")) + exec_form(last(stages, name, "CMD"))


def without_workers(argv:list) -> list:
    "argv without `--workers N` (the platforms run fewer workers than the image for memory; nothing else may differ)."
    out, skip = [], False
    for a in argv:
        if skip: skip = False; continue
        if a == "--workers": skip = True; continue
        if a.startswith("--workers="): continue
        out.append(a)
    return out


def option(argv:list, flag:str) -> str:
    i = argv.index(flag)
    return argv[i + 1]


# ---- what the services read ----------------------------------------------------------------------------------------
def env_example() -> dict:
    "KEY → value of every assignment in .env.example."
    out = {}
    for line in (ROOT/".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            k, sep, v = line.partition("=")
            assert sep, f".env.example: {line!r} is not KEY=value"
            out[k.strip()] = v.strip()
    return out


def itff_modules(entry:str) -> set:
    "The itff modules `entry` imports, transitively, imports inside functions included (read from the source)."
    seen, todo = set(), [entry]
    while todo:
        name = todo.pop()
        path = ROOT/"itff"/f"{name}.py"
        if name in seen or not path.exists(): continue
        seen.add(name)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                mod = node.module or ""
                if node.level == 1: todo += [mod.split(".")[0]] if mod else [a.name for a in node.names]
                elif mod.startswith("itff."): todo.append(mod.split(".")[1])
                elif mod == "itff": todo += [a.name for a in node.names]
            elif isinstance(node, ast.Import):
                todo += [a.name.split(".")[1] for a in node.names if a.name.startswith("itff.")]
    return seen


READS = re.compile(r"""["'](ITFF_[A-Z0-9_]+)["']"""                                     # any quoted ITFF_ name
                   r"""|(?:environ\.get|environ\.setdefault|getenv)\(\s*["']([A-Z][A-Z0-9_]*)["']"""
                   r"""|environ\[\s*["']([A-Z][A-Z0-9_]*)["']\s*\](?!\s*=[^=])""")     # environ[...] but not a write


def variables_read(service:str) -> set:
    "Environment variables the service's code (itff.<service> and what it imports) and the image's entrypoint read."
    names = set()
    for mod in itff_modules(service):
        names |= {next(g for g in m if g) for m in READS.findall((ROOT/"itff"/f"{mod}.py").read_text())}
    names |= set(re.findall(r"\$\{?([A-Z_][A-Z0-9_]*)", (ROOT/"deploy/docker-entrypoint.sh").read_text()))
    return names


# ---- the platform files --------------------------------------------------------------------------------------------
def render() -> dict:
    return yaml.safe_load((ROOT/"render.yaml").read_text())


def render_service(name:str) -> dict:
    found = [s for s in render()["services"] if s["name"] == name]
    assert len(found) == 1, f"render.yaml: {len(found)} services named {name!r}"
    return found[0]


def render_env(svc:dict) -> dict:
    "KEY → its envVars entry."
    env = {}
    for e in svc.get("envVars", []):
        assert "key" in e, f"render.yaml {svc['name']}: envVars entry without a key (fromGroup is not used here): {e}"
        assert e["key"] not in env, f"render.yaml {svc['name']}: {e['key']} declared twice"
        env[e["key"]] = e
    return env


def _block(code:str, i:int) -> str:
    "The text between the brace at `i` and its match."
    depth = 0
    for j in range(i, len(code)):
        depth += {"{": 1, "}": -1}.get(code[j], 0)
        if depth == 0: return code[i + 1:j]
    raise AssertionError(".railway/railway.ts: unbalanced braces")


def railway() -> dict:
    """{'services': {name: {'start', 'healthcheck', 'env': {KEY: expression}, 'volumes': {path: volume}}},
    'redis': {variable: name}} from .railway/railway.ts (written in the plain style this reader expects)."""
    code = re.sub(r"(?m)^\s*//.*$", "", (ROOT/".railway/railway.ts").read_text())
    redis = dict(re.findall(r"const\s+(\w+)\s*=\s*redis\(\s*\"([\w-]+)\"\s*\)", code))
    services = {}
    for m in re.finditer(r"service\(\s*\"([\w-]+)\"\s*,\s*\{", code):
        body = _block(code, m.end() - 1)
        start, health = (re.search(rf"\b{k}:\s*\"([^\"]*)\"", body) for k in ("start", "healthcheck"))
        env_m, vol_m = (re.search(rf"\b{k}:\s*\{{([^{{}}]*)\}}", body) for k in ("env", "volumeMounts"))
        env = {}
        for line in (env_m.group(1) if env_m else "").splitlines():
            if line.strip():
                kv = re.fullmatch(r"\s*(\w+)\s*:\s*(.+?)\s*,?\s*", line)
                assert kv, f".railway/railway.ts {m.group(1)}: cannot read env line {line!r}"
                env[kv.group(1)] = kv.group(2)
        vols = dict(re.findall(r"\"([^\"]+)\"\s*:\s*(\w+)", vol_m.group(1))) if vol_m else {}
        services[m.group(1)] = {"start": start and start.group(1), "healthcheck": health and health.group(1),
                                "env": env, "volumes": vols}
    return {"services": services, "redis": redis}


def literal(expr:str) -> bool: return expr[:1] in "\"'`"


def unquote(expr:str) -> str:
    assert literal(expr), expr
    return expr[1:-1]


def platform_view(platform:str, name:str) -> dict:
    "The same facts from either file: argv the container runs, PORT, health check path, env keys."
    stages = dockerfile()
    final = list(stages)[-1]          # both platforms build the Dockerfile's last stage: neither takes a target
    if platform == "render":
        svc = render_service(name); env = render_env(svc)
        cmd = shlex.split(svc["dockerCommand"]) if svc.get("dockerCommand") else exec_form(last(stages, final, "CMD"))
        return {"argv": exec_form(last(stages, final, "ENTRYPOINT")) + cmd,   # dockerCommand replaces CMD only
                "port": str(env.get("PORT", {}).get("value")), "health": svc.get("healthCheckPath"), "env": set(env)}
    svc = railway()["services"][name]
    argv = shlex.split(svc["start"]) if svc["start"] else target_argv(stages, final)   # start replaces ENTRYPOINT too
    port = svc["env"].get("PORT")
    return {"argv": argv, "port": unquote(port) if port else None, "health": svc["healthcheck"], "env": set(svc["env"])}


PLATFORMS = ("render", "railway")


# ---- the Dockerfile's targets ----------------------------------------------------------------------------------------
def test_render_services_are_docker_builds_of_this_dockerfile():
    bp = render()
    web = [s for s in bp["services"] if s["type"] == "web"]
    assert sorted(s["name"] for s in web) == sorted(SERVICES)
    for s in web:
        assert s["runtime"] == "docker"
        assert (ROOT/s.get("dockerContext", ".")/s.get("dockerfilePath", "./Dockerfile")).resolve() == ROOT/"Dockerfile"


def test_railway_services_are_the_two_targets():
    assert sorted(railway()["services"]) == sorted(SERVICES)


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_runs_its_targets_image(name):
    "Platforms build the last stage; a service for another target may only use it if the images are the same files."
    stages = dockerfile()
    assert name in stages, f"the Dockerfile has no target {name!r}"
    final = list(stages)[-1]
    if name != final:
        for st in (name, final):
            extra = {i for i, _ in stages[st]["steps"]} - METADATA
            assert not extra, f"stage {st!r} adds {sorted(extra)}: the {name} service would not run its target's files"
        assert stages[name]["from"] == stages[final]["from"]


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("name", SERVICES)
def test_command_port_and_health_check_match_the_target(platform, name):
    stages = dockerfile()
    view, want = platform_view(platform, name), target_argv(stages, name)
    assert without_workers(view["argv"]) == without_workers(want), f"{platform} {name}: {view['argv']} vs {want}"
    expose = [int(p.split("/")[0]) for i, a in chain(stages, name) if i == "EXPOSE" for p in a.split()]
    hc_port, hc_path = healthcheck(stages, name)
    assert expose == [int(option(want, "--port"))] == [hc_port] == [int(view["port"])]
    assert option(view["argv"], "--host") == "0.0.0.0"
    assert view["health"] == hc_path


def test_the_entrypoint_syncs_models_when_asked():
    "Both platforms fetch the bundles at start through this script (no disk on free plans): it must do so."
    script = (ROOT/"deploy/docker-entrypoint.sh").read_text()
    assert exec_form(last(dockerfile(), "api", "ENTRYPOINT")) == ["/app/deploy/docker-entrypoint.sh"]
    assert '[ -n "$ITFF_ARTIFACT_BASE_URL" ]' in script and "itff-sync-artifacts" in script and 'exec "$@"' in script


def test_api_serves_its_health_check_path():
    from itff.api import app
    paths = {getattr(r, "path", None) for r in app.routes}
    for platform in PLATFORMS: assert platform_view(platform, "api")["health"] in paths


def test_dashboard_serves_its_health_check_path(monkeypatch):
    "The Voila app's own handlers (Voila's are stubbed out): /health must be among them, outside the auth guard."
    import voila.app
    from itff.dashboard import voila_app
    monkeypatch.setattr(voila.app.Voila, "init_handlers", lambda self: [("/voila/render/(.*)", object)])
    app = voila_app()(); app.server_url = "/"
    handlers = dict((h[0], h[1]) for h in app.init_handlers())
    for platform in PLATFORMS:
        path = platform_view(platform, "dashboard")["health"]
        assert path in handlers and "get" in vars(handlers[path])


# ---- environment variables and secrets -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", SERVICES)
def test_env_example_declares_every_variable_the_service_reads(name):
    read, declared = variables_read(name), set(env_example())
    assert {"ITFF_HOME", "ITFF_ARTIFACT_BASE_URL"} <= read      # the scan finds something to check
    assert read <= declared, f"read by {name} but missing from .env.example: {sorted(read - declared)}"


def test_env_example_gives_no_secret_a_value():
    env = env_example()
    secrets = {k for k in env if SECRET.search(k)}
    assert {"ITFF_API_TOKEN", "ITFF_WEBHOOK_SECRET", "ITFF_DASH_PASSWORD"} <= secrets
    assert {k: env[k] for k in secrets if env[k]} == {}


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("name", SERVICES)
def test_platform_declares_known_variables_and_every_credential_the_service_reads(platform, name):
    keys = platform_view(platform, name)["env"]
    assert keys - set(env_example()) - PLATFORM_VARS == set(), f"{platform} {name}: variables ITFF does not know"
    credentials = {k for k in variables_read(name) if SECRET.search(k)}
    assert credentials, f"{name} reads no credential: the scan is broken"
    assert credentials <= keys, f"{platform} {name}: credentials not declared: {sorted(credentials - keys)}"


@pytest.mark.parametrize("name", SERVICES)
def test_render_secrets_are_sync_false_without_a_value(name):
    for key, e in render_env(render_service(name)).items():
        if SECRET.search(key):
            assert e.get("sync") is False, f"render.yaml {name}: {key} must be `sync: false`"
            assert not {"value", "generateValue", "fromService", "fromDatabase"} & set(e), f"render.yaml {name}: {key}"


@pytest.mark.parametrize("name", SERVICES)
def test_railway_secrets_come_from_shared_variables(name):
    for key, expr in railway()["services"][name]["env"].items():
        if SECRET.search(key): assert expr == f"ctx.shared.{key}", f".railway/railway.ts {name}: {key} = {expr}"


def test_no_secret_value_in_the_platform_files():
    "Whatever form a value takes, no credential-like key is followed by a literal anywhere in either file."
    for f in ("render.yaml", ".railway/railway.ts"):
        for line in (ROOT/f).read_text().splitlines():
            m = re.match(r"\s*(?:- key:\s*)?([A-Z][A-Z0-9_]*)\s*:\s*(\S.*)", line)
            assert not (m and SECRET.search(m.group(1)) and literal(m.group(2).strip())), f"{f}: {line.strip()}"
    for e in (e for s in render()["services"] for e in s.get("envVars", [])):
        if SECRET.search(e.get("key", "")): assert "value" not in e and "generateValue" not in e, e


# ---- Redis and the models --------------------------------------------------------------------------------------------
def test_rate_limit_storage_is_the_blueprints_own_redis():
    e = render_env(render_service("api"))["ITFF_API_RATE_LIMIT_STORAGE"]["fromService"]
    kv = {s["name"] for s in render()["services"] if s["type"] in ("keyvalue", "redis")}
    assert e["type"] in ("keyvalue", "redis") and e["name"] in kv and e["property"] == "connectionString"
    rw = railway()
    m = re.fullmatch(r"(\w+)\.env\.REDIS_URL", rw["services"]["api"]["env"]["ITFF_API_RATE_LIMIT_STORAGE"])
    assert m and m.group(1) in rw["redis"]


@pytest.mark.parametrize("name", SERVICES)
def test_every_service_gets_the_models(name):
    "A persistent disk at the models folder (not on a free plan: none there), or a sync at start from the artifact URL."
    svc = render_service(name)
    disk = svc.get("disk")
    if disk: assert disk["mountPath"] == MODELS_DIR and svc.get("plan", "free") != "free"
    else: assert render_env(svc)["ITFF_ARTIFACT_BASE_URL"].get("sync") is False
    rw = railway()["services"][name]
    assert MODELS_DIR in rw["volumes"] or rw["env"].get("ITFF_ARTIFACT_BASE_URL") == "ctx.shared.ITFF_ARTIFACT_BASE_URL"


# ---- GitHub Actions and the badge ------------------------------------------------------------------------------------
def workflow(name:str) -> dict:
    wf = yaml.safe_load((ROOT/".github/workflows"/name).read_text())
    wf["on"] = wf.pop(True, wf.get("on"))     # YAML 1.1 reads the key `on` as true
    return wf


def steps(wf:dict) -> list: return [s for job in wf["jobs"].values() for s in job["steps"]]


def test_test_workflow_runs_make_test_on_every_push_and_pull_request():
    wf = workflow("test.yml")
    assert {"push", "pull_request"} <= set(wf["on"])
    assert all(job["runs-on"] == "ubuntu-latest" for job in wf["jobs"].values())
    py = [s["with"] for s in steps(wf) if s.get("uses", "").startswith("actions/setup-python@")]
    assert py == [{"python-version": "3.11", "cache": "pip", "cache-dependency-path": "pyproject.toml"}]
    runs = [s.get("run", "").strip() for s in steps(wf)]
    assert "make test" in runs and "sudo make system-deps" in runs
    assert runs.index("sudo make system-deps") < runs.index("make test")


def test_docs_workflow_publishes_nbdev_docs_from_main():
    wf = workflow("deploy.yml")
    assert wf["on"]["push"]["branches"] == ["main"]
    assert any("nbdev-docs" in s.get("run", "") for s in steps(wf))
    pub = [s["with"] for s in steps(wf) if s.get("uses", "").startswith("peaceiris/actions-gh-pages@")]
    docs = tomllib.loads((ROOT/"pyproject.toml").read_text())["tool"]["nbdev"]["doc_path"]
    assert len(pub) == 1 and Path(pub[0]["publish_dir"]) == Path(docs)


def test_lint_runs_actionlint():
    recipe = re.search(r"(?m)^lint:.*\n((?:\t.*\n)+)", (ROOT/"Makefile").read_text()).group(1)
    assert "$(BIN)/actionlint" in recipe


def test_readme_badge_points_at_the_test_workflow():
    repo = tomllib.loads((ROOT/"pyproject.toml").read_text())["project"]["urls"]["Repository"].rstrip("/")
    head = (ROOT/"README.md").read_text()[:2000]
    assert f"({repo}/actions/workflows/test.yml/badge.svg)" in head and (ROOT/".github/workflows/test.yml").exists()
