"""The ``fedadagent`` command line.

    fedadagent run [CONFIG] [-c key=value ...] [-o OUTPUT_DIR]
    fedadagent auction [CONFIG] [-c key=value ...] [-o OUTPUT_DIR]
    fedadagent config [CONFIG] [-c key=value ...]

Every command validates the whole config before doing any work; a bad config exits with
status 2 and a message naming the key.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import tomli_w

from .config import ConfigError, ExperimentConfig, load_config


def _parse_override(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r} must look like key=value (e.g. auction.reserve=0.1)")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # bare words are strings: -c auction.mechanism=gsp
    return key.strip(), value


def _load(args: argparse.Namespace) -> ExperimentConfig:
    overrides = dict(_parse_override(t) for t in args.override)
    if args.output_dir is not None:
        overrides["output_dir"] = str(args.output_dir)
    return load_config(args.config, overrides)


def _cmd_run(cfg: ExperimentConfig) -> int:
    from .market import run_market

    run_dir = run_market(cfg)
    print(f"run folder: {run_dir}")
    return 0


def _cmd_auction(cfg: ExperimentConfig) -> int:
    from .auction_report import auction_report

    run_dir = auction_report(cfg)
    print(f"run folder: {run_dir}")
    return 0


def _cmd_config(cfg: ExperimentConfig) -> int:
    sys.stdout.write(tomli_w.dumps(cfg.model_dump(mode="json")))
    return 0


COMMANDS = {
    "run": (_cmd_run, "simulate the agent economy and write a run folder"),
    "auction": (_cmd_auction, "truthfulness, revenue and welfare report for a mechanism"),
    "config": (_cmd_config, "print the fully resolved config"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fedadagent", description="Fed-AdAgent: federated ad agents, auctions and gossip."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("config", nargs="?", type=Path, help="TOML config (default: embedded)")
        p.add_argument(
            "-c",
            "--override",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a config key, e.g. -c auction.reserve=0.2 (repeatable)",
        )
        p.add_argument("-o", "--output-dir", type=Path, default=None, help="runs folder")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fedadagent`` console script."""
    args = build_parser().parse_args(argv)
    try:
        cfg = _load(args)
    except ConfigError as exc:
        print(f"fedadagent: {exc}", file=sys.stderr)
        return 2
    handler, _ = COMMANDS[args.command]
    return handler(cfg)


if __name__ == "__main__":
    raise SystemExit(main())
