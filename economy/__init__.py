"""The agent economy: config, seeding, run folders, world, market loop, CLI, metrics."""

from typing import Any

__all__ = ["load_run", "load_sweep"]


def __getattr__(name: str) -> Any:
    """``load_run`` / ``load_sweep`` (``economy.results``), imported on first use: pandas and
    pyarrow load only for code that reads results."""
    if name in __all__:
        from . import results

        return getattr(results, name)
    raise AttributeError(f"module 'economy' has no attribute {name!r}")
