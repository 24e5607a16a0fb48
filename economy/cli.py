"""The ``fedadagent`` command line.

    fedadagent run [CONFIG] [-c key=value ...] [-o OUTPUT_DIR] [--checkpoint-every K]
    fedadagent run --resume RUN_DIR
    fedadagent sweep [CONFIG] --grid key=v1,v2 [--grid ...] [-c ...] [-o ...] [--workers N]
    fedadagent sweep --resume SWEEP_DIR [--workers N]
    fedadagent report RUN_DIR
    fedadagent ledger verify RUN_DIR
    fedadagent auction [CONFIG] [-c key=value ...] [-o OUTPUT_DIR]
    fedadagent config [CONFIG] [-c key=value ...]
    fedadagent serve [RUN_DIR] [--host HOST] [--port PORT] [--store DIR]

Every command validates the whole config (every grid point of a sweep) before doing any work;
a bad config or folder exits with status 2 and a message naming the key. Ctrl-C exits with
status 130 and leaves a resumable run (or sweep).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import tomli_w
from rich.console import Console

from federation import FederationError

from .config import ConfigError, ExperimentConfig, clip, load_config
from .overrides import parse_grid, parse_override
from .progress import library_output_to, phase, progress_bar
from .rundir import RUN_LOG, RunFolderError, check_output_dir

INTERRUPTED = 130  # the shell's status for a SIGINT


def _config(args: argparse.Namespace) -> ExperimentConfig:
    """The validated config; for a command that writes a run folder, its output_dir checked."""
    cfg = load_config(args.config, _overrides(args))
    if "output_dir" in args:
        check_output_dir(Path(cfg.output_dir))
    return cfg


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides = dict(parse_override(t) for t in args.override)
    if getattr(args, "output_dir", None) is not None:
        overrides["output_dir"] = str(args.output_dir)
    return overrides


def _no_config_with_resume(args: argparse.Namespace) -> None:
    if args.config is not None or args.override or args.output_dir is not None:
        raise ConfigError("--resume continues a folder with its own config: give no CONFIG, -c, -o")


def _cmd_run(args: argparse.Namespace) -> int:
    from .rundir import create_run_dir, read_run_config
    from .runner import resume_market, run_market

    if args.resume is not None:
        _no_config_with_resume(args)
        run, cfg = args.resume, read_run_config(args.resume)
    else:
        cfg = _config(args)
        run = None
    if cfg.offline.dataset != "none":  # an offline evaluation on logged data, not a market
        from .offline_eval import run_offline

        print(f"run folder: {run_offline(cfg)}")
        return 0
    _quiet_libraries()
    if run is None:
        run = create_run_dir(cfg)
    try:
        with (
            library_output_to(Path(run) / RUN_LOG),
            progress_bar(cfg.market.steps, cfg.name, not args.no_progress) as update,
        ):
            phase("starting")
            kwargs = {
                "on_step": lambda state: update(state.step, _live_metrics(state)),
                "checkpoint_every": args.every,
            }
            if args.resume is None:
                run_market(cfg, run, **kwargs)
            else:
                resume_market(run, **kwargs)
    except KeyboardInterrupt:
        print(f"interrupted; resume with: fedadagent run --resume {run}", file=sys.stderr)
        return INTERRUPTED
    _print_summary(Path(run))
    print(f"run folder: {run}")
    return 0


def _quiet_libraries() -> None:
    """Keep the libraries' load bars out of the progress bar (their warnings and log lines
    go to the run folder's log: ``economy.progress.library_output_to``)."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def _live_metrics(state: Any) -> str:
    """The last step's key numbers, for the progress bar."""
    m = state.metrics[-1]
    return f"revenue {m.revenue:,.1f}  NDCG@10 {m.ndcg10:.3f}  eps max {m.epsilon_per_agent:.2f}"


def _print_summary(run: Path) -> None:
    """One screen of the run's summary.json: what ran, what it earned, what it cost."""
    import json

    from .rundir import SUMMARY

    path = run / SUMMARY
    if not path.is_file():
        return
    s = json.loads(path.read_text())
    t = s["totals"]
    lines = [
        f"[bold]{s['name']}[/] seed {s['seed']}, {s['steps']} steps, "
        f"{t['impressions']:,.0f} impressions",
        f"agents       {s['agents']['scorer']}"
        + (f" ({s['agents']['model']} LoRA)" if s["agents"]["scorer"] == "lm" else ""),
        f"federated    {s['federated']['rounds']} rounds on {s['federated']['engine']} "
        f"({s['federated']['strategy']})",
        f"market       revenue {t['revenue']:,.1f}, advertiser surplus "
        f"{t['advertiser_surplus']:,.1f}, user welfare {t['user_welfare']:,.1f}, "
        f"CTR {s['ctr']:.4f}",
        f"quality      NDCG@10 {s['quality']['ndcg10_first_step']:.3f} (first step) -> "
        f"{s['quality']['ndcg10']:.3f} (last)",
        f"privacy      epsilon per user: max {s['privacy']['epsilon_max']:.3g}, median "
        f"{s['privacy']['epsilon_median']:.3g} (delta {s['privacy']['delta']:g}, every "
        f"mechanism composed; budget {s['privacy'].get('budget', float('inf')):g}, "
        f"{sum(s['privacy'].get('refused', {}).values())} releases refused)",
        f"tokens       {s['tokens']['paid']:,.4g} paid to {s['tokens']['contributors']} devices "
        f"(Gini among them {s['tokens']['gini_contributors']:.3f})",
        f"ledger       head {s['ledger']['head']}, verified {s['ledger']['verified']}",
    ]
    Console().print("\n".join(lines), highlight=False)


def _cmd_sweep(args: argparse.Namespace) -> int:
    from .sweep import create_sweep, run_sweep, write_index

    if args.resume is not None:
        _no_config_with_resume(args)
        if args.grid:
            raise ConfigError("--resume runs the sweep's own grid: give no --grid")
        sweep = args.resume
    else:
        grid: dict[str, list[Any]] = {}
        for text in args.grid:
            key, values = parse_grid(text)
            if key in grid:
                raise ConfigError(f"grid key {clip(repr(key))} given twice")
            grid[key] = values
        sweep = create_sweep(args.config, _overrides(args), grid)
    rows = write_index(sweep)  # also checks that a --resume folder is a sweep folder
    done = sum(r["status"] == "done" for r in rows)
    ended = iter(range(done + 1, len(rows) + 1))
    try:
        bar = progress_bar(len(rows), f"sweep, {args.workers} workers", not args.no_progress)
        with bar as up:
            up(done)
            rows = run_sweep(sweep, workers=args.workers, on_point=lambda *_: up(next(ended)))
    except KeyboardInterrupt:
        print(f"interrupted; resume with: fedadagent sweep --resume {sweep}", file=sys.stderr)
        return INTERRUPTED
    failed = [r for r in rows if r["status"] == "failed"]
    for r in failed:
        print(f"point {r['point']} failed: {r['error']}", file=sys.stderr)
    print(f"sweep folder: {sweep}")
    return 1 if failed else 0


def _cmd_report(args: argparse.Namespace) -> int:
    from .report import make_report

    for path in make_report(args.run_dir):
        print(path)
    return 0


def _cmd_ledger(args: argparse.Namespace) -> int:
    from .run_ledger import verify_run_ledger

    check = verify_run_ledger(args.run_dir)
    v = check.verification
    if not v.ok:
        where = f" (first bad entry {v.first_bad})" if v.first_bad is not None else ""
        print(f"fedadagent: ledger NOT verified: {v.reason}{where}", file=sys.stderr)
        print(f"checked against {check.against}", file=sys.stderr)
        return 1
    print(f"ledger verified: {v.entries} entries, checked against {check.against}")
    return 0


def _cmd_auction(args: argparse.Namespace) -> int:
    from .auction_report import auction_report

    run_dir = auction_report(_config(args))
    print(f"run folder: {run_dir}")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from economy.serve import serve  # starlette/uvicorn only load for this verb

    return serve(args.run_dir, host=args.host, port=args.port, store=args.store)


def _cmd_config(args: argparse.Namespace) -> int:
    sys.stdout.write(tomli_w.dumps(_config(args).model_dump(mode="json")))
    return 0


def _config_args(p: argparse.ArgumentParser, *, output: bool = True) -> None:
    p.add_argument("config", nargs="?", type=Path, help="TOML config (default: embedded)")
    p.add_argument(
        "-c",
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. -c auction.reserve=0.2 (repeatable)",
    )
    if output:
        p.add_argument("-o", "--output-dir", type=Path, default=None, help="runs folder")


def _long_work_args(p: argparse.ArgumentParser, folder: str) -> None:
    p.add_argument("--resume", type=Path, default=None, metavar=folder, help="continue it")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


COMMANDS: dict[str, tuple[Callable[[argparse.Namespace], int], str]] = {
    "run": (_cmd_run, "simulate the agent economy and write a run folder"),
    "sweep": (_cmd_sweep, "run a grid over config keys in parallel processes"),
    "report": (_cmd_report, "PNG plots of a run folder"),
    "ledger": (_cmd_ledger, "check a run's token ledger (verify RUN_DIR)"),
    "auction": (_cmd_auction, "truthfulness, revenue and welfare report for a mechanism"),
    "config": (_cmd_config, "print the fully resolved config"),
    "serve": (_cmd_serve, "an edge node: HTTP decisions and events for the users it hosts"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fedadagent", description="Fed-AdAgent: federated ad agents, auctions and gossip."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = {name: sub.add_parser(name, help=h, description=h) for name, (_, h) in COMMANDS.items()}
    _config_args(p["run"])
    _long_work_args(p["run"], "RUN_DIR")
    p["run"].add_argument(
        "--checkpoint-every",
        dest="every",
        type=int,
        default=1,
        metavar="K",
        help="steps between checkpoints (default 1)",
    )
    _config_args(p["sweep"])
    _long_work_args(p["sweep"], "SWEEP_DIR")
    p["sweep"].add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="values of one config key, e.g. --grid auction.reserve=0,0.1 (repeatable)",
    )
    p["sweep"].add_argument("--workers", type=int, default=1, help="parallel processes")
    p["report"].add_argument(
        "run_dir", type=Path, help="a run, sweep, auction or offline-evaluation folder"
    )
    verify = p["ledger"].add_subparsers(dest="action", required=True, metavar="ACTION")
    verify.add_parser(
        "verify", help="every entry's MAC, the chain, and the head kept in summary.json"
    ).add_argument("run_dir", type=Path, help="a run folder of `fedadagent run`")
    _config_args(p["auction"])
    _config_args(p["config"], output=False)
    p["serve"].add_argument(
        "run_dir", type=Path, nargs="?", default=None, help="a run folder (default: embedded model)"
    )
    p["serve"].add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)"
    )
    p["serve"].add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    p["serve"].add_argument(
        "--store", type=Path, default=None, help="event store folder (default RUN_DIR/devices/edge)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fedadagent`` console script."""
    args = build_parser().parse_args(argv)
    if getattr(args, "every", 1) < 1 or getattr(args, "workers", 1) < 1:
        print("fedadagent: --checkpoint-every and --workers must be >= 1", file=sys.stderr)
        return 2
    handler, _ = COMMANDS[args.command]
    try:
        return handler(args)
    except (ConfigError, RunFolderError) as exc:
        print(f"fedadagent: {exc}", file=sys.stderr)
        return 2
    except FederationError as exc:  # e.g. the federation's nodes never came, or differ
        print(f"fedadagent: federation: {exc}", file=sys.stderr)
        return 1
    except RuntimeError as exc:  # a deployment run that failed on the SuperLink
        print(f"fedadagent: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
