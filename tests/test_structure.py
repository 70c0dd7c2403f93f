"""The shape of the code: notebook order is import order, the training CLIs share one option set, and the notebooks
keep the style DESIGN.md asks for (one public definition per export cell, docments, show_doc for patched methods)."""
import ast, inspect, re
from pathlib import Path
import nbformat
import pytest
from fastcore.docments import docments
from fastcore.script import anno_parser

ROOT = Path(__file__).parents[1]
NBS = sorted(p for p in (ROOT/"nbs").glob("[0-9][0-9]_*.ipynb"))


def notebook_of_module() -> dict[str, tuple[int, str]]:
    "itff module name → (notebook number, notebook file), from each notebook's `#| default_exp`."
    out = {}
    for p in NBS:
        nb = nbformat.read(p, as_version=4)
        exp = next(c.source.split("default_exp", 1)[1].strip() for c in nb.cells if "#| default_exp" in c.source)
        out[exp] = (int(p.name[:2]), p.name)
    return out


def itff_imports(path: Path) -> set[str]:
    "Every itff module `path` imports, at top level or inside a function."
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.level == 1: found.add(node.module.split(".")[0])
            elif node.module.startswith("itff."): found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("itff.")}
    return found


def test_notebook_names_have_no_letters():
    for p in (ROOT/"nbs").glob("*.ipynb"):
        assert p.name == "index.ipynb" or re.fullmatch(r"\d\d_[a-z]+\.ipynb", p.name), f"{p.name}: number notebooks without letters"


def test_no_module_imports_from_a_later_notebook():
    order = notebook_of_module()
    assert len(order) == len(NBS) and {"config", "evaluation", "decisions", "rescore", "predlog"} <= set(order)
    bad = []
    for mod, (n, nb) in order.items():
        for dep in itff_imports(ROOT/"itff"/f"{mod}.py") - {mod}:
            if dep in order and order[dep][0] >= n: bad.append(f"itff.{mod} ({nb}) imports itff.{dep} ({order[dep][1]})")
    assert not bad, "\n".join(bad)


def test_the_import_check_can_fail(tmp_path):
    "The walker sees imports inside functions, which is where a hidden upward import would be."
    f = tmp_path/"m.py"; f.write_text("def f():\n    from itff.reports import x\n    import itff.api\n")
    assert itff_imports(f) == {"reports", "api"}


# ---------------------------------------------------------------- one option set for the training CLIs
def _options(func) -> dict[str, tuple]:
    "--option → (default, help) of a call_parse CLI, as its parser builds them."
    return {a.option_strings[0]: (a.default, a.help) for a in anno_parser(func)._actions if a.option_strings and a.dest != "help"}


def test_training_clis_share_one_option_set():
    from itff.config import experiment_options
    from itff.experiment import itff_train
    from itff.pipeline import itff_pipeline
    from itff.walkforward import itff_walkforward
    shared = {"--" + k.replace("_", "-") for k in inspect.signature(experiment_options).parameters}
    assert {"--decision-rule", "--precision-target", "--risk-delta", "--ood-quantile", "--seed", "--val-start", "--test-start"} <= shared
    clis = {f.__name__: _options(f) for f in (itff_train, itff_pipeline, itff_walkforward)}
    first = {k: clis["itff_train"][k] for k in shared}
    for name, opts in clis.items():
        missing = shared - set(opts)
        assert not missing, f"{name} lacks {sorted(missing)}"
        assert {k: opts[k] for k in shared} == first, f"{name}'s shared options differ from itff-train's"


VOCABULARY = {"itff-pipeline": ("--labels", "--models", "--source", "--workers"), "itff-reports": ("--labels", "--models", "--source", "--workers"),
              "itff-walkforward": ("--label", "--model", "--source", "--workers"), "itff-train": ("--label", "--model", "--source"),
              "itff-evaluate": ("--label", "--model", "--source")}
OLD = {"itff-pipeline": ("--model-type", "--train-level"), "itff-reports": ("--jobs", "--data"), "itff-evaluate": ("--data",)}


@pytest.mark.parametrize("script", VOCABULARY)
def test_one_vocabulary(script):
    from importlib.metadata import entry_points
    ep = next(e for e in entry_points(group="console_scripts") if e.name == script)
    opts = _options(ep.load().__wrapped__)
    for flag in VOCABULARY[script]: assert flag in opts, f"{script} lacks {flag}"
    for flag in OLD.get(script, ()):
        assert flag in opts and opts[flag][1] == "==SUPPRESS==", f"{script}: old spelling {flag} should be accepted, hidden from --help"


# ---------------------------------------------------------------- notebook style
def export_cells():
    for p in NBS:
        for c in nbformat.read(p, as_version=4).cells:
            if c.cell_type == "code" and c.source.lstrip().startswith("#| export"): yield p.name, c.source


def public_definitions(src: str) -> list[str]:
    "Names of the public functions, classes and constants a cell defines at top level."
    names = []
    for node in ast.parse(re.sub(r"^[%!].*$", "", src, flags=re.M)).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)): names.append(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names += [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
    return [n for n in names if not n.startswith("_")]


def test_one_public_definition_per_export_cell():
    defining = [(nb, public_definitions(src)) for nb, src in export_cells()]
    defining = [(nb, names) for nb, names in defining if names]
    share = sum(len(n) == 1 for _, n in defining) / len(defining)
    worst = [f"{nb}: {names}" for nb, names in defining if len(names) > 1]
    assert share >= 0.85, f"{share:.0%} of export cells define exactly one public thing (want ≥ 85%):\n" + "\n".join(worst)


def _public_functions():
    import importlib
    for mod in notebook_of_module():
        m = importlib.import_module(f"itff.{mod}")
        for name in getattr(m, "__all__", []):
            f = getattr(m, name, None)
            f = getattr(f, "__wrapped__", f)
            if inspect.isfunction(f) and f.__module__ == m.__name__: yield f"itff.{mod}.{name}", f


def test_docments_on_public_multi_parameter_functions():
    missing = []
    for name, f in _public_functions():
        params = [p for p in inspect.signature(f).parameters.values() if p.name not in ("self", "cls")
                  and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        if len(params) < 2: continue
        docs = docments(f)
        undocumented = [p.name for p in params if not docs.get(p.name)]
        if undocumented: missing.append(f"{name}: {undocumented}")
    assert not missing, f"{len(missing)} public functions lack docments:\n" + "\n".join(missing)


def test_patched_methods_have_show_doc():
    missing = []
    for p in NBS:
        cells = [c.source for c in nbformat.read(p, as_version=4).cells if c.cell_type == "code"]
        shown = "\n".join(cells)
        for src in cells:
            if not src.lstrip().startswith("#| export"): continue
            for cls, meth in re.findall(r"@patch_to\((\w+)[^)]*\)\s*\ndef (\w+)", src):
                if not meth.startswith("_") and f"show_doc({cls}.{meth})" not in shown: missing.append(f"{p.name}: {cls}.{meth}")
    assert not missing, "patched methods without show_doc:\n" + "\n".join(missing)


def test_lines_of_at_most_120_characters():
    "ruff's E501 at 120 on itff/, except the first `__all__` line nbdev writes (it wraps the list at 120, then prefixes it)."
    import json, subprocess, sys
    ruff = Path(sys.executable).parent/"ruff"
    files = [str(f) for f in sorted((ROOT/"itff").glob("*.py")) if f.name != "_modidx.py"]
    out = subprocess.run([str(ruff), "check", "--select", "E501", "--line-length", "120", "--output-format", "json", "--exit-zero",
                          *files], capture_output=True, text=True, check=True).stdout
    long = [f"{Path(v['filename']).name}:{v['location']['row']}" for v in json.loads(out)
            if not Path(v["filename"]).read_text().splitlines()[v["location"]["row"] - 1].startswith("__all__ = [")]
    assert not long, f"{len(long)} lines over 120 characters: {long[:20]}"
