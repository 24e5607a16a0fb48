"""What a long run is doing, for a person watching it.

- :func:`phase` labels what the run does now ("loading the agents' model", "federated round
  2: valuing 8 updates (svarm-cv)"): a log record on the ``fedadagent.phase`` logger, which
  the code of the market emits and anyone may listen to.
- :func:`progress_bar` draws a rich bar on stderr whose label follows the phases and whose
  last column shows the key metrics of the last finished step.
- :func:`library_output_to` keeps the libraries' own output (Python warnings, the log records
  of Flower, Ray, absl, transformers, ...) out of the terminal: it goes to the run folder's
  ``run.log``, with the phases and their times; this package's own warnings still reach the
  terminal (above the bar).

Example:
    >>> import logging
    >>> seen = []
    >>> class Keep(logging.Handler):
    ...     def emit(self, record): seen.append(record.getMessage())
    >>> logging.getLogger(PHASE_LOGGER).addHandler(keep := Keep())
    >>> phase("federated round %d: training %d devices", 2, 8)
    >>> logging.getLogger(PHASE_LOGGER).removeHandler(keep)
    >>> seen
    ['federated round 2: training 8 devices']
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

PHASE_LOGGER = "fedadagent.phase"
OWN = ("economy", "federation", "agents", "incentives", "auction", "graphs")  # our packages
NO_BARS = "HF_HUB_DISABLE_PROGRESS_BARS"  # read by huggingface_hub and transformers at import
PRELOAD = ("flwr.common.logger",)  # libraries that add a console handler when imported
_phases = logging.getLogger(PHASE_LOGGER)
_phases.setLevel(logging.INFO)


def phase(text: str, *args: object) -> None:
    """Say what the run does from now on (``text % args``, logging style)."""
    _phases.info(text, *args)


class _FollowPhases(logging.Handler):
    """Sets the bar's label to each phase."""

    def __init__(self, set_label: Callable[[str], None]) -> None:
        super().__init__(logging.INFO)
        self.set_label = set_label

    def emit(self, record: logging.LogRecord) -> None:
        self.set_label(record.getMessage())


@contextmanager
def progress_bar(total: int, what: str, enabled: bool) -> Iterator[Callable[[int, str], None]]:
    """A rich progress bar on stderr labelled with the current :func:`phase`; yields
    ``update(done, metrics)`` (``metrics``: a short text shown after the bar)."""
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[metrics]}"),
        console=Console(stderr=True),
        disable=not enabled,
    )
    task = bar.add_task(what, total=total, metrics="")
    follow = _FollowPhases(lambda text: bar.update(task, description=f"{what}: {text}"))
    _phases.addHandler(follow)
    try:
        with bar:
            yield lambda done, metrics="": bar.update(task, completed=done, metrics=metrics)
    finally:
        _phases.removeHandler(follow)


@contextmanager
def library_output_to(log_file: Path) -> Iterator[None]:
    """Route warnings and every logger's records (the libraries' from WARNING, ours from
    INFO; the libraries' console handlers taken off for the duration) to ``log_file``; this
    package's warnings also go to the terminal. Restores everything on exit."""
    for module in PRELOAD:  # their console handlers are made at import: take them off now
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
    # Hugging Face's download/loading bars write to stderr directly, not through a logger:
    # off here, and in the processes started meanwhile (Ray's workers inherit the variable).
    bars_env = os.environ.get(NO_BARS)
    os.environ[NO_BARS] = "1"
    hf_logging = sys.modules.get("transformers.utils.logging")
    bars_were_on = hf_logging is not None and hf_logging.is_progress_bar_enabled()
    if bars_were_on:
        hf_logging.disable_progress_bar()
    root = logging.getLogger()
    to_file = logging.FileHandler(log_file, encoding="utf-8")
    to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    to_file.addFilter(lambda r: r.levelno >= logging.WARNING or _ours(r))
    to_terminal = RichHandler(console=Console(stderr=True), show_time=False, show_path=False)
    to_terminal.setLevel(logging.WARNING)
    to_terminal.addFilter(lambda r: _ours(r) and r.name != PHASE_LOGGER)
    saved = [(lg, lg.handlers[:], lg.propagate) for lg in _library_loggers()]
    for lg, handlers, _ in saved:
        lg.handlers = [h for h in handlers if not _is_console(h)]
        lg.propagate = True
    level = root.level
    root.setLevel(logging.INFO)
    root.addHandler(to_file)
    root.addHandler(to_terminal)
    logging.captureWarnings(True)
    try:
        yield
    finally:
        logging.captureWarnings(False)
        if bars_env is None:
            os.environ.pop(NO_BARS, None)
        else:
            os.environ[NO_BARS] = bars_env
        if bars_were_on:
            hf_logging.enable_progress_bar()
        root.removeHandler(to_terminal)
        root.removeHandler(to_file)
        root.setLevel(level)
        to_file.close()
        for lg, handlers, propagate in saved:
            lg.handlers, lg.propagate = handlers, propagate


def _ours(record: logging.LogRecord) -> bool:
    return record.name.split(".")[0] in (*OWN, "fedadagent")


def _library_loggers() -> list[logging.Logger]:
    """Every named logger made so far that is not ours (Flower, Ray, absl, ...)."""
    names = [n for n in logging.root.manager.loggerDict if n.split(".")[0] not in OWN]
    return [logging.getLogger(n) for n in names if "." not in n]


def _is_console(handler: logging.Handler) -> bool:
    return isinstance(handler, logging.StreamHandler) and not isinstance(
        handler, logging.FileHandler
    )
