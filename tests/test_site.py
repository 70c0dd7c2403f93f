"""The Quarto site's pages rendered with Debian's pandoc (--citeproc), their code cells filled from a summary fixture."""
import re, shutil
from pathlib import Path
import numpy as np
import pandas as pd
import pytest
from conftest import run_cli
from itff.site import render_site, site_pages

ROOT = Path(__file__).parents[1]
REPORTS = [("BTCUSDT", "level_up", "lstm", 0.7551), ("BTCUSDT", "direction", "transformer", 0.5432), ("ETHUSDT", "level_up", "lstm", 0.6671)]


@pytest.fixture
def site(tmp_path, monkeypatch):
    "A copy of the site sources, and a reports folder with a summary.csv and predictions for three reports."
    if shutil.which("pandoc") is None: pytest.fail("pandoc is not installed: run `make system-deps`")
    src = tmp_path/"src"; src.mkdir()
    for f in ("_quarto.yml", "index.qmd"): shutil.copy2(ROOT/f, src/f)
    shutil.copytree(ROOT/"proposal", src/"proposal", ignore=shutil.ignore_patterns("*.png"))
    reports, rng, rows = tmp_path/"reports", np.random.default_rng(0), []
    for sym, lab, mt, auc in REPORTS:
        rid = f"{sym}_1h_{lab}_{mt}"; (reports/rid).mkdir(parents=True)
        p = rng.uniform(0.05, 0.7, 1500)
        pd.DataFrame({"time": pd.date_range("2025-01-01", periods=1500, freq="h", tz="UTC"), "y": (rng.random(1500) < p).astype(int),
                      "p_model": p, "mc_std": 0.01, "forward_return": 0.0}).to_csv(reports/rid/"predictions.csv", index=False)
        rows.append({"report": rid, "symbol": sym, "timeframe": "1h", "label": lab, "model": mt, "status": "ok", "auc": auc, "auc_ci_low": auc - 0.02,
                     "auc_ci_high": auc + 0.02, "brier": 0.2, "bss": 0.05, "ece": 0.02, "p_vs_climatology": 0.0066, "p_vs_gbm": 0.4,
                     "verdict": "beats climatology (p=0.007)", "n_test": 1500, "test_first": "2025-01-01", "test_last": "2025-03-04",
                     "html": f"{rid}.html", "finished_at": "2026-11-24T01:20:00+00:00", "error": ""})
    rows.append({"report": "ETHUSDT_1h_direction_lstm", "symbol": "ETHUSDT", "timeframe": "1h", "label": "direction", "model": "lstm",
                 "status": "failed", "error": "BundleError: no bundle", "html": "ETHUSDT_1h_direction_lstm.html"})
    pd.DataFrame(rows).to_csv(reports/"summary.csv", index=False)
    monkeypatch.setenv("ITFF_REPORTS_DIR", str(reports))
    return src


def test_every_page_renders_with_resolved_citations(site, tmp_path):
    out = tmp_path/"_site"
    pages = render_site(site, out)                      # raises on any citation missing from references.bib
    assert [p.relative_to(out).as_posix() for p in pages] == ["index.html", "proposal/proposal.html", "proposal/survey.html",
                                                             "proposal/operations.html", "proposal/reports.html"]
    for p in pages:
        html = p.read_text()
        assert "???" not in html and "{python}" not in html and "```" not in html, p
        assert not re.search(r'class="citation"[^>]*>\s*\(?\?', html), p
    proposal = (out/"proposal/proposal.html").read_text()
    for sym, lab, mt, auc in REPORTS:                  # the results table has the fixture's rows, and only the ok ones
        assert re.search(rf"<td[^>]*>{sym}</td>\s*<td[^>]*>1h</td>\s*<td[^>]*>{lab}</td>\s*<td[^>]*>{mt}</td>\s*<td[^>]*>{auc:.3f} \[", proposal), (sym, lab, mt)
    assert proposal.count("beats climatology (p=0.007)") == 3 and "no bundle" not in proposal
    assert 'src="reliability.png"' in proposal and (out/"proposal/reliability.png").stat().st_size > 5000
    assert 'href="proposal/survey.html"' in (out/"index.html").read_text()
    index = (out/"proposal/reports.html").read_text()
    assert 'href="reports/ETHUSDT_1h_direction_lstm.html"' in index and "BundleError: no bundle" in index


def test_bibliography_is_complete_and_every_entry_is_cited(site, tmp_path):
    bib = (site/"proposal/references.bib").read_text()
    keys = re.findall(r"@\w+\{([^,\s]+),", bib)
    assert len(keys) == len(set(keys)) >= 15
    for entry in [e for e in re.split(r"\n(?=@)", bib.strip()) if e.startswith("@")]:
        assert re.search(r"\bauthor\s*=", entry) and re.search(r"\btitle\s*=", entry), entry[:80]
        year = int(re.search(r"\byear\s*=\s*[{\"]?(\d{4})", entry).group(1)); assert 1900 < year <= 2026, entry[:80]
    must = {"hochreiter1997lstm": 1997, "vaswani2017attention": 2017, "gal2016dropout": 2016, "lakshminarayanan2017simple": 2017,
            "ovadia2019trust": 2019, "guo2017calibration": 2017, "brier1950verification": 1950, "niculescumizil2005predicting": 2005,
            "lopezdeprado2018advances": 2018, "hutto2014vader": 2014}
    for k, y in must.items():
        entry = bib[bib.index("{" + k + ","):]
        assert re.search(rf"year\s*=\s*[{{\"]?{y}", entry.split("\n@")[0]), k
    cited = set()
    for page in site_pages(site):
        cited |= set(re.findall(r"@([A-Za-z][\w:-]*[A-Za-z0-9])", re.sub(r"```.*?```", "", page.read_text(), flags=re.S)))
    assert set(keys) <= cited, f"never cited: {sorted(set(keys) - cited)}"
    assert set(must) <= cited


def test_itff_site_cli(site, tmp_path):
    r = run_cli("itff-site", "--root", site, "--output", tmp_path/"out")
    assert r.returncode == 0, r.stderr
    assert (tmp_path/"out/proposal/survey.html").exists()
    (site/"proposal/survey.qmd").write_text((site/"proposal/survey.qmd").read_text() + "\nAnd [@nobody2099made].\n")
    bad = run_cli("itff-site", "--root", site, "--output", tmp_path/"out2")
    assert bad.returncode == 2 and "nobody2099made" in bad.stderr
