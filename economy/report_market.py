"""Figures of a market run folder (``fedadagent run``), written to ``RUN_DIR/plots/``.

| file | what |
| --- | --- |
| ``revenue.png`` | revenue per step and cumulative |
| ``welfare.png`` | social welfare, advertiser surplus, revenue; user welfare (expected clicks) |
| ``ctr.png`` | CTR per step |
| ``ndcg.png`` | every ``ndcg*`` / ``precision*`` metric column, when the run has them |
| ``epsilon.png`` | largest and median user epsilon per step (trend LDP + DP-FedAvg, PLD) |
| ``tokens.png`` | tokens paid per federated round (step), cumulative, and devices paid |
| ``budgets.png`` | active advertisers, remaining budget share, mean bid / value (when recorded) |
| ``lorenz.png`` | Lorenz curve of all users' token balances in ``ledger.db``, with their Gini |
| ``graph.png`` | the social graph (``graph.npz``), nodes coloured by community |

Matplotlib's object API with the Agg canvas is used (no pyplot, no global backend switch).
A run folder from before ``graph.npz`` existed gets its graph rebuilt from config and seed.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import networkx as nx
import numpy as np
from matplotlib.figure import Figure

from incentives import Ledger, gini

from .config import ExperimentConfig
from .environment import warn_if_changed
from .report_common import PLOTS, headline, save_png
from .results import METRICS_PARQUET, load_run
from .run_ledger import verify_run_ledger
from .rundir import GRAPH, LEDGER, METRICS, SUMMARY, RunFolderError, read_run_config

MAX_GRAPH_NODES = 600  # larger graphs are drawn as a seeded sample of this many users


def read_metrics(run: Path) -> dict[str, np.ndarray]:
    """Metric columns as float arrays (one value per finished step)."""
    path = run / METRICS
    if not path.is_file() and not (run / METRICS_PARQUET).is_file():
        raise RunFolderError(f"{run} has no {METRICS}: not a market run (or it never started)")
    df = load_run(run)
    if df.empty:
        raise RunFolderError(f"{path} has no steps yet: nothing to plot")
    return {key: df[key].to_numpy(dtype=np.float64) for key in df.columns}


def _over_steps(m: dict[str, np.ndarray], keys: list[str], title: str, unit: str) -> Figure:
    fig = Figure(figsize=(6.4, 3.6))
    ax = fig.add_subplot()
    for key in keys:
        ax.plot(m["step"] + 1, m[key], marker=".", label=key)
    ax.set(title=title, xlabel="step", ylabel=unit)
    ax.grid(alpha=0.3)
    if len(keys) > 1:
        ax.legend(fontsize="small")
    return fig


def revenue_figure(m: dict[str, np.ndarray]) -> Figure:
    fig = _over_steps(m, ["revenue"], "Revenue", "money per step")
    twin = fig.axes[0].twinx()
    twin.plot(m["step"] + 1, np.cumsum(m["revenue"]), color="grey", ls="--")
    twin.set_ylabel("cumulative (dashed)")
    return fig


def welfare_figure(m: dict[str, np.ndarray]) -> Figure:
    fig = Figure(figsize=(10, 3.6))
    money, clicks = fig.subplots(1, 2)
    for key in ("social_welfare", "advertiser_surplus", "revenue"):
        money.plot(m["step"] + 1, m[key], marker=".", label=key)
    money.set(title="Social welfare = revenue + advertiser surplus", xlabel="step")
    money.set_ylabel("money per step")
    money.legend(fontsize="small")
    clicks.plot(m["step"] + 1, m["user_welfare"], marker=".", color="tab:green")
    clicks.set(title="User welfare", xlabel="step", ylabel="expected clicks on shown ads")
    for ax in (money, clicks):
        ax.grid(alpha=0.3)
    return fig


def epsilon_figure(m: dict[str, np.ndarray], budget: float = math.inf) -> Figure:
    """Largest and median user epsilon after each step: every mechanism that touched the user
    (trend shares, the DP-FedAvg rounds its update went into) composed with PLD."""
    # epsilon_per_agent is the largest user's epsilon (runs before the per-user accountant
    # had no median column)
    keys = [k for k in ("epsilon_per_agent", "epsilon_median") if k in m]
    fig = _over_steps(m, keys, "User epsilon over the run (trend LDP + DP-FedAvg, PLD)", "epsilon")
    ax = fig.axes[0]
    if math.isfinite(budget):
        ax.axhline(budget, color="tab:red", ls=":", label=f"budget {budget:g}")
        ax.legend(fontsize="small")
    if "fed_clients" in m:  # mark the federated rounds (their Gaussian releases)
        for step in m["step"][m["fed_clients"] > 0]:
            ax.axvline(step + 1, color="grey", alpha=0.2, lw=0.8)
    return fig


def tokens_figure(m: dict[str, np.ndarray]) -> Figure:
    """Tokens paid per step (one federated round at most per step) and cumulative; devices
    paid per round on the right."""
    fig = Figure(figsize=(10, 3.6))
    paid, devices = fig.subplots(1, 2)
    x = m["step"] + 1
    paid.bar(x, m["fed_tokens"], color="tab:orange", label="per round")
    twin = paid.twinx()
    twin.plot(x, np.cumsum(m["fed_tokens"]), color="grey", ls="--")
    twin.set_ylabel("cumulative (dashed)")
    total = float(m["fed_tokens"].sum())
    title = f"Token payments: {total:.4g} in all" if total > 0 else "Token payments: none paid"
    paid.set(title=title, xlabel="step", ylabel="tokens paid")
    devices.bar(x, m["fed_clients"], color="tab:blue")
    devices.set(title="Devices in each federated round", xlabel="step", ylabel="devices")
    for ax in (paid, devices):
        ax.grid(alpha=0.3)
    return fig


BUDGET_COLUMNS = ("active_advertisers", "remaining_budget_share", "mean_bid_over_value")


def budgets_figure(m: dict[str, np.ndarray]) -> Figure:
    """Advertisers bidding per step (left); the share of all budgets left after each step and
    the mean per-click bid over value of the bids placed (right, both unitless)."""
    fig = Figure(figsize=(10, 3.6))
    active, shares = fig.subplots(1, 2)
    active.plot(m["step"] + 1, m["active_advertisers"], marker=".", color="tab:purple")
    active.set(title="Active advertisers", xlabel="step", ylabel="advertisers with a bid > 0")
    active.set_ylim(bottom=0)
    for key in BUDGET_COLUMNS[1:]:
        shares.plot(m["step"] + 1, m[key], marker=".", label=key)
    shares.set(title="Budgets left and bid shading", xlabel="step", ylabel="share")
    shares.legend(fontsize="small")
    for ax in (active, shares):
        ax.grid(alpha=0.3)
    return fig


def lorenz_figure(run: Path, cfg: ExperimentConfig) -> Figure:
    """Lorenz curve over all ``market.users`` users; users without tokens count as 0."""
    tokens = np.zeros(cfg.market.users)
    if (run / LEDGER).is_file():
        with Ledger(run / LEDGER) as ledger:
            for account, amount in ledger.balances().items():
                if account.startswith("user-"):
                    tokens[int(account.removeprefix("user-"))] = amount
    fig = Figure(figsize=(4.8, 4.8))
    ax = fig.add_subplot()
    share = np.linspace(0.0, 1.0, tokens.size + 1)
    ax.plot([0, 1], [0, 1], color="grey", ls="--", label="equality")
    if tokens.sum() > 0:
        held = np.concatenate([[0.0], np.cumsum(np.sort(tokens))]) / tokens.sum()
        ax.plot(share, held, label="tokens")
        title = f"Token Lorenz curve (Gini {gini(tokens):.3f})"
    else:
        title = "Token Lorenz curve: no tokens paid"
    ax.set(title=title, xlabel="share of users (poorest first)", ylabel="share of tokens")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return fig


def load_graph(run: Path, cfg: ExperimentConfig) -> tuple[nx.Graph, np.ndarray]:
    """The run's social graph and each user's community."""
    if (run / GRAPH).is_file():
        with np.load(run / GRAPH) as data:
            edges, community = data["edges"], data["community"]
        G = nx.Graph()
        G.add_nodes_from(range(community.size))
        G.add_edges_from(edges.tolist())
        return G, community
    from .seeding import RunSeeds
    from .world import make_world

    world = make_world(cfg, RunSeeds(cfg.seed))  # deterministic: the run's own world
    return world.graph, np.asarray(world.community)


def graph_figure(run: Path, cfg: ExperimentConfig, max_nodes: int = MAX_GRAPH_NODES) -> Figure:
    G, community = load_graph(run, cfg)
    title = f"Social graph: {G.number_of_nodes()} users, {G.number_of_edges()} ties"
    if G.number_of_nodes() > max_nodes:
        keep = np.random.default_rng(cfg.seed).choice(G.number_of_nodes(), max_nodes, False)
        G = G.subgraph(keep.tolist()).copy()
        title += f" (random {max_nodes} shown)"
    nodes = list(G)
    pos = nx.spring_layout(G, seed=cfg.seed, iterations=50)
    fig = Figure(figsize=(6.4, 6.4))
    ax = fig.add_subplot()
    nx.draw_networkx_edges(G, pos, ax=ax, alpha=0.15, width=0.5)
    nx.draw_networkx_nodes(
        G, pos, nodelist=nodes, node_color=community[nodes], cmap="tab10", node_size=12, ax=ax
    )
    ax.set_title(title + ", coloured by community")
    ax.set_axis_off()
    return fig


def summary_rows(run: Path) -> list[tuple[str, str]]:
    """``(key, value)`` rows of ``summary.json`` flattened to dotted keys (none while the run
    is unfinished)."""
    if not (run / SUMMARY).is_file():
        return [("status", "unfinished: no summary.json yet")]
    rows: list[tuple[str, str]] = []

    def walk(prefix: str, node: object) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            rows.append((prefix, json.dumps(node) if isinstance(node, list | dict) else str(node)))

    walk("", json.loads((run / SUMMARY).read_text()))
    return rows


def market_figures(run: Path) -> tuple[ExperimentConfig, list[Path]]:
    """Write every plot of the module table into ``run/plots``; the config and the paths.

    Raises:
        RunFolderError: no metrics, or a ledger that does not verify (no plots made).
    """
    cfg = read_run_config(run)
    ledger = verify_run_ledger(run)
    if not ledger.ok:
        raise RunFolderError(
            f"{run / LEDGER} does not verify against {ledger.against}: "
            f"{ledger.verification.reason}; no plots made (see `fedadagent ledger verify`)"
        )
    warn_if_changed(run, f"the run {run}")
    m = read_metrics(run)
    out, title = run / PLOTS, headline(cfg)
    figures = {
        "revenue.png": revenue_figure(m),
        "welfare.png": welfare_figure(m),
        "ctr.png": _over_steps(m, ["ctr"], "Click-through rate", "clicks / filled slots"),
    }
    ranking = [k for k in m if k.startswith(("ndcg", "precision"))]
    if ranking:
        figures["ndcg.png"] = _over_steps(m, ranking, "Ranking quality", "score")
    figures["epsilon.png"] = epsilon_figure(m, cfg.privacy.epsilon_budget)
    if "fed_tokens" in m and "fed_clients" in m:
        figures["tokens.png"] = tokens_figure(m)
    if all(key in m for key in BUDGET_COLUMNS):  # runs from before these metrics have none
        figures["budgets.png"] = budgets_figure(m)
    figures["lorenz.png"] = lorenz_figure(run, cfg)
    figures["graph.png"] = graph_figure(run, cfg)
    return cfg, [save_png(fig, out / name, title) for name, fig in figures.items()]
