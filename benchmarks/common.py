"""What every benchmark shares: writing its result as JSON under benchmarks/results/ and showing it."""
import json, platform
from pathlib import Path

RESULTS = Path(__file__).parent/"results"


def save_results(res: dict, out) -> dict:
    "Add the machine's Python and architecture, write `res` as JSON to `out`, print it."
    res = {**res, "python": platform.python_version(), "machine": platform.machine()}
    out = Path(out); out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))
    return res
