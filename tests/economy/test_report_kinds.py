"""``fedadagent report`` renders every run kind: market, sweep, auction, offline; each folder
gets its figures and one self-contained ``report.html`` (checked with the stdlib parser, and in
a headless Chromium when one is installed)."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from economy.cli import main
from economy.config import parse_config
from economy.report import folder_kind, make_report
from economy.report_common import headline
from economy.rundir import RunFolderError, create_run_dir, write_json
from economy.runner import run_market
from economy.sweep import create_sweep, run_sweep

PNG = b"\x89PNG\r\n\x1a\n"
TINY = {
    "market.users": 30,
    "market.advertisers": 4,
    "market.steps": 3,
    "market.impressions_per_user": 2,
    "agents.scorer": "category",
    "federated.every": 0,
}
VOID = {"meta", "img", "br", "hr", "link", "input"}


class _Checker(HTMLParser):
    """Well-formedness (every opened tag closed in order) and every src/href kept."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.sources: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.sources += [v for k, v in attrs if k in ("src", "href") and v is not None]
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(f"unbalanced </{tag}>")


def check_html(path) -> int:
    """Assert ``path`` is a well-formed page with only inline PNGs; the number of images."""
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    checker = _Checker()
    checker.feed(text)
    assert not checker.errors and not checker.stack, (checker.errors, checker.stack)
    assert "http://" not in text and "https://" not in text  # nothing fetched from outside
    prefix = "data:image/png;base64,"
    for src in checker.sources:
        assert src.startswith(prefix), src[:60]
        assert base64.b64decode(src[len(prefix) :]).startswith(PNG)
    return len(checker.sources)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("kinds")
    market = run_market(
        parse_config({"name": "mkt", "seed": 2, **_nested(TINY), "output_dir": str(root)})
    )
    sweep = create_sweep(
        None,
        {**TINY, "output_dir": str(root), "name": "swp"},
        {"social.trend_epsilon": [1.0, 4.0], "baseline": ["no-gossip"], "seed": [1, 2]},
    )
    run_sweep(sweep, workers=2)
    auction_args = ["auction", "-o", str(root / "auction"), "-c", "name=auc"]
    auction_args += ["-c", "auction.mechanism=gsp", "-c", "auction.slot_ctrs=[1.0,0.5]"]
    auction_args += ["-c", "truthfulness.instances=20", "-c", "truthfulness.grid=9"]
    auction_args += ["-c", "truthfulness.simulate_auctions=2000"]
    assert main(auction_args) == 0
    (auction,) = (root / "auction").iterdir()
    return {"market": market, "sweep": sweep, "auction": auction, "offline": _offline(root)}


def _nested(flat):
    out: dict = {}
    for key, value in flat.items():
        section, name = key.split(".")
        out.setdefault(section, {})[name] = value
    return out


def _offline(root):
    """An offline-evaluation folder with a summary.json of run_offline's shape (written
    directly: the report reads only the files)."""
    cfg = parse_config({"name": "off", "offline": {"dataset": "obp"}, "output_dir": str(root)})
    folder = create_run_dir(cfg)
    est = {"value": 0.004, "stderr": 0.001}
    write_json(
        folder / "summary.json",
        {
            "name": "off",
            "seed": 0,
            "on_policy_ctr": 0.0033,
            "agent_policy": {"policy": "softmax", "ipw": est, "dm": est, "dr": est},
            "uniform_random_check": {"ipw": est, "dr": est, "on_policy_ctr_of_random_log": 0.003},
        },
    )
    return folder


FIGURES = {
    "market": {"revenue.png", "welfare.png", "ctr.png", "ndcg.png", "epsilon.png", "tokens.png"},
    "sweep": {"sweep.png", "steps.png"},
    "auction": {"mechanisms.png", "reserve.png"},
    "offline": {"estimates.png"},
}


@pytest.mark.parametrize("kind", list(FIGURES))
def test_report_renders_every_kind(folders, kind, capsys):
    folder = folders[kind]
    assert folder_kind(folder) == kind
    assert main(["report", str(folder)]) == 0
    printed = capsys.readouterr().out.split()
    assert printed[-1] == str(folder / "report.html")
    names = {p.rsplit("/", 1)[-1] for p in printed[:-1]}
    assert FIGURES[kind] <= names
    for name in names:
        assert (folder / "plots" / name).read_bytes().startswith(PNG)
    assert check_html(folder / "report.html") == len(names)  # every figure inline


def test_sweep_report_has_ci_table_and_baselines(folders):
    sweep = folders["sweep"]
    make_report(sweep)
    lines = (sweep / "sweep_summary.csv").read_text().splitlines()
    assert lines[0].startswith("social.trend_epsilon,baseline,n,user_welfare_mean")
    assert [line.split(",")[:3] for line in lines[1:]] == [
        ["1.0", "", "2"],
        ["4.0", "", "2"],
        ["", "no-gossip", "2"],
    ]
    page = (sweep / "report.html").read_text()
    assert "Mean [95% CI] over seeds" in page and "no-gossip" in page
    assert "how much of the relevance" not in page  # no example config: no question


def test_auction_report_labels_gsp_at_truthful_and_equilibrium_bids(folders):
    report = json.loads((folders["auction"] / "report.json").read_text())
    rows = {(r["mechanism"], r["bids"]): r for r in report["by_mechanism"]}
    assert set(rows) == {("gsp", "truthful"), ("gsp", "eos_equilibrium"), ("vcg", "truthful")}
    eos, vcg = rows["gsp", "eos_equilibrium"], rows["vcg", "truthful"]
    assert eos["revenue_per_auction"] == pytest.approx(vcg["revenue_per_auction"])
    assert rows["gsp", "truthful"]["revenue_per_auction"] > vcg["revenue_per_auction"]
    assert "NOT" not in eos["label"] and "equilibrium" in eos["label"]
    page = (folders["auction"] / "report.html").read_text()
    assert "overstates revenue" in page and "EOS lowest envy-free" in page


def test_titles_carry_the_run_name_and_key_config(folders):
    cfg = parse_config({"name": "mkt", "seed": 2, **_nested(TINY)})
    line = headline(cfg)
    assert line.startswith("mkt | scorer category") and "seed 2" in line and "3 steps" in line
    make_report(folders["market"])
    assert line in (folders["market"] / "report.html").read_text()
    off = headline(parse_config({"name": "off", "offline": {"dataset": "obp"}}), "offline")
    assert off.startswith("off | obp random log")


def test_unknown_folder_names_the_kinds(tmp_path, capsys):
    with pytest.raises(RunFolderError, match=r"the kinds are: a market run .* a sweep .* auction"):
        folder_kind(tmp_path)
    assert main(["report", str(tmp_path)]) == 2
    assert "offline evaluation" in capsys.readouterr().err


def test_html_escapes_what_a_folder_holds(folders, tmp_path):
    folder = shutil.copytree(folders["offline"], tmp_path / "copy")
    summary = json.loads((folder / "summary.json").read_text())
    summary["agent_policy"]["policy"] = "<script>alert(1)</script>"
    write_json(folder / "summary.json", summary)
    make_report(folder)
    page = (folder / "report.html").read_text()
    assert "<script>" not in page and "&lt;script&gt;" in page
    check_html(folder / "report.html")


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="no headless Chromium installed")
@pytest.mark.parametrize("kind", list(FIGURES))
def test_report_opens_in_headless_chromium(folders, kind):
    """The page as a real browser renders it: every image decoded (naturalWidth > 0)."""
    make_report(folders[kind])
    page = folders[kind] / "report.html"
    script = (
        "<script>window.onload=()=>{const i=[...document.images];document.title="
        "'IMAGES '+i.length+' DECODED '+i.filter(x=>x.naturalWidth>0).length}</script>"
    )
    probe = page.with_name("probe.html")
    probe.write_text(page.read_text().replace("</body>", script + "</body>"))
    out = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", probe.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    n = check_html(page)
    assert f"IMAGES {n} DECODED {n}" in out
    probe.unlink()
