"""``fedadagent report FOLDER``: PNG figures and one self-contained ``report.html`` per folder.

The kind of folder is told from the files it holds (:func:`folder_kind`):

- ``sweep`` (``sweep.json``): metrics vs the swept key with 95% CI bands and baselines,
  per-step curves, ``sweep_summary.csv`` (``economy.report_sweep``);
- ``auction`` (``report.json``): revenue, surplus and regret by mechanism, GSP at truthful
  and at equilibrium bids; revenue by reserve (``economy.report_auction``);
- ``offline`` (``summary.json`` with ``agent_policy``): estimates with 95% intervals per
  estimator and policy (``economy.report_offline``);
- ``market`` (``config.toml`` and ``metrics.csv`` / ``.parquet``): revenue, welfare, CTR,
  ranking, epsilon, tokens, budgets, Lorenz curve, graph (``economy.report_market``).

Every figure's title carries the run name and key config; ``report.html`` inlines the
figures, a summary table and the config (``economy.report_html``).
"""

from __future__ import annotations

import json
from pathlib import Path

from .report_auction import auction_figures
from .report_common import headline
from .report_html import html_table, write_html
from .report_market import load_graph, market_figures, read_metrics, summary_rows
from .report_offline import estimate_rows, offline_figures
from .report_sweep import sweep_report
from .results import SUMMARY_METRICS
from .rundir import CONFIG, SUMMARY, SWEEP, RunFolderError, read_run_config

AUCTION_REPORT = "report.json"  # written by economy.auction_report
KINDS = {
    "market": f"a market run ({CONFIG} and metrics.csv, from `fedadagent run`)",
    "sweep": f"a sweep ({SWEEP}, from `fedadagent sweep`)",
    "auction": f"an auction report ({AUCTION_REPORT}, from `fedadagent auction`)",
    "offline": f"an offline evaluation ({SUMMARY} with agent_policy, from `fedadagent run` "
    "with offline.dataset)",
}

__all__ = ["KINDS", "folder_kind", "load_graph", "make_report", "read_metrics"]


def _is_offline(folder: Path) -> bool:
    path = folder / SUMMARY
    if not path.is_file():
        return False
    try:
        return "agent_policy" in json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False


def folder_kind(folder: str | Path) -> str:
    """``"sweep"``, ``"auction"``, ``"offline"`` or ``"market"`` (see the module table).

    Raises:
        RunFolderError: none of them, naming the kinds known.
    """
    path = Path(folder)
    if (path / SWEEP).is_file():
        return "sweep"
    if (path / CONFIG).is_file():
        if (path / AUCTION_REPORT).is_file():
            return "auction"
        return "offline" if _is_offline(path) else "market"
    known = "; ".join(KINDS.values())
    raise RunFolderError(f"{path} is not a run folder `report` knows; the kinds are: {known}")


def _config_text(folder: Path) -> str:
    return (folder / CONFIG).read_text(encoding="utf-8", errors="replace")


def _market(run: Path) -> list[Path]:
    cfg, paths = market_figures(run)
    rows = summary_rows(run)
    table = html_table(["summary.json", "value"], rows)
    html = write_html(
        run,
        title=run.name,
        subtitle=headline(cfg),
        tables=[("Summary", table)],
        images=paths,
        config_text=_config_text(run),
    )
    return [*paths, html]


def _auction(folder: Path) -> list[Path]:
    cfg = read_run_config(folder)
    report = json.loads((folder / AUCTION_REPORT).read_text())
    title = headline(cfg, "auction")
    paths = auction_figures(folder, report, title)
    tables = []
    if report.get("by_mechanism"):
        cols = ["label", "revenue_per_auction", "advertiser_surplus_per_auction"]
        cols += ["social_welfare_per_auction", "max_regret", "mean_regret"]
        rows = [[r.get(c) for c in cols] for r in report["by_mechanism"]]
        tables.append((f"By mechanism (reserve {cfg.auction.reserve:g})", html_table(cols, rows)))
    cols = ["reserve", "revenue_per_auction", "advertiser_surplus_per_auction"]
    cols += ["social_welfare_per_auction", "fill_rate"]
    rows = [[r.get(c) for c in cols] for r in report["by_reserve"]]
    tables.append((f"{report['mechanism']} by reserve, truthful bids", html_table(cols, rows)))
    tr = report["truthfulness"]
    tables.append(
        (
            "Truthfulness",
            html_table(["max_regret", "mean_regret"], [[tr["max_regret"], tr["mean_regret"]]]),
        )
    )
    html = write_html(
        folder,
        title=folder.name,
        subtitle=title,
        tables=tables,
        images=paths,
        config_text=_config_text(folder),
    )
    return [*paths, html]


def _offline(folder: Path) -> list[Path]:
    cfg = read_run_config(folder)
    summary = json.loads((folder / SUMMARY).read_text())
    title = headline(cfg, "offline")
    paths = offline_figures(folder, summary, title)
    header = ["policy", "estimator", "value", "stderr", "95% lo", "95% hi"]
    table = html_table(header, estimate_rows(summary))
    ctr = html_table(["on-policy CTR (logging policy)"], [[summary["on_policy_ctr"]]])
    html = write_html(
        folder,
        title=folder.name,
        subtitle=title,
        tables=[("Estimates", table), ("Logging policy", ctr)],
        images=paths,
        config_text=_config_text(folder),
    )
    return [*paths, html]


def _sweep(sweep: Path) -> list[Path]:
    title, config_line, summary, paths = sweep_report(sweep)
    keys = [c for c in summary.columns if c != "n" and not c.startswith(SUMMARY_METRICS)]
    keys.remove("note")
    header = [*keys, "n", *SUMMARY_METRICS, "note"]
    rows = []
    for r in summary.to_dict("records"):
        cis = [
            f"{r[f'{m}_mean']:.4g} [{r[f'{m}_lo']:.4g}, {r[f'{m}_hi']:.4g}]"
            for m in SUMMARY_METRICS
        ]
        rows.append([*(r[k] for k in keys), r["n"], *cis, r["note"]])
    plan = json.loads((sweep / SWEEP).read_text())
    html = write_html(
        sweep,
        title=title,
        subtitle=config_line,
        tables=[("Mean [95% CI] over seeds", html_table(header, rows))],
        images=paths,
        config_text=f"{SWEEP}:\n{json.dumps(plan, indent=2)}\n\n{CONFIG} of point 0:\n"
        + _config_text(sweep / plan["points"][0]["run_dir"]),
    )
    return [*paths, html]


def make_report(folder: str | Path) -> list[Path]:
    """Write the figures and ``report.html`` of a run, sweep, auction or offline folder;
    returns the paths written (``report.html`` last).

    Raises:
        RunFolderError: not a folder of a kind in :data:`KINDS`, a market run with no steps,
            a ledger that does not verify, or a sweep with no point done.
    """
    path = Path(folder)
    kind = folder_kind(path)
    return {"sweep": _sweep, "auction": _auction, "offline": _offline, "market": _market}[kind](
        path
    )
