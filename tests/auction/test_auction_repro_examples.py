"""The reproductions in examples/repro_*.py run end to end at a tiny size (so they cannot rot).

Each script's own ``main(argv)`` runs with a few rounds and repetitions; its JSON goes to a
temporary folder instead of benchmarks/results/, and must hold a finite number for every
study. The sizes make these smoke tests, not reproductions: the claims are checked by the
statistical tests in test_auction_learning.py and by the scripts at their default sizes.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TINY = ["--rounds", "120", "--repetitions", "3", "--seed", "1"]

# script: (arguments, {JSON written: table rows expected})
SCRIPTS = {
    "repro_banchio_skrzypacz": ([*TINY, "--decay", "0.05"], {"repro_banchio_skrzypacz": 9}),
    "repro_kolumbus_nisan": (TINY, {"repro_kolumbus_nisan": 24}),
    "repro_edelman_ostrovsky_schwarz": (TINY, {"repro_edelman_ostrovsky_schwarz": 6}),
    "repro_balseiro_gur": (
        TINY,
        {"repro_balseiro_gur_hindsight": 2, "repro_balseiro_gur_pacers": 4},
    ),
}


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def numbers(tree) -> list[float]:
    """Every number in a JSON tree."""
    if isinstance(tree, dict):
        return [x for v in tree.values() for x in numbers(v)]
    if isinstance(tree, list):
        return [x for v in tree for x in numbers(v)]
    return [float(tree)] if isinstance(tree, int | float) and not isinstance(tree, bool) else []


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_repro_script_runs_at_tiny_size(name, tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    import benchmarks._report as report_module

    monkeypatch.setattr(report_module, "RESULTS", tmp_path)
    argv, outputs = SCRIPTS[name]
    payload = load(name).main(argv)
    assert (
        payload["rows"] == json.loads((tmp_path / f"{list(outputs)[-1]}.json").read_text())["rows"]
    ), "main() must return what it wrote last"
    for output, rows in outputs.items():
        written = json.loads((tmp_path / f"{output}.json").read_text())
        assert written["benchmark"] == output
        assert len(written["rows"]) == rows
        assert any(math.isfinite(x) for x in numbers(written))
    assert "mean [95% CI] over repetitions" in capsys.readouterr().out
