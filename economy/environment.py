"""What a run ran with: ``environment.json`` (Python and every installed package's version),
and what differs in the environment reading the run later.

The project pins every package (``.ci/constraints.txt``, installed by ``.ci/env``); a run
folder records the versions it actually ran with, so ``fedadagent report`` and ``--resume``
can say when the numbers were made by another environment (a new transformers or pandas
release can change results).

Example:
    >>> snap = snapshot()
    >>> sorted(snap) == ["packages", "python"] and "numpy" in snap["packages"]
    True
    >>> differences(snap, snap)
    []
"""

from __future__ import annotations

import json
import logging
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from .rundir import ENVIRONMENT, write_json

log = logging.getLogger(__name__)


def snapshot() -> dict[str, Any]:
    """``{"python": "3.11.7", "packages": {name: version}}`` of this process's environment
    (names lower-case, ``_`` as ``-``)."""
    packages = {
        dist.metadata["Name"].lower().replace("_", "-"): dist.version
        for dist in metadata.distributions()
        if dist.metadata["Name"]
    }
    return {"python": platform.python_version(), "packages": dict(sorted(packages.items()))}


def differences(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """One line per difference: Python, then each package changed, added or removed."""
    out = []
    if recorded.get("python") != current.get("python"):
        out.append(f"python {recorded.get('python')} -> {current.get('python')}")
    old, new = recorded.get("packages", {}), current.get("packages", {})
    for name in sorted(set(old) | set(new)):
        if old.get(name) != new.get(name):
            out.append(f"{name} {old.get(name, '(none)')} -> {new.get(name, '(none)')}")
    return out


def record_environment(run: Path) -> None:
    """Write ``run/environment.json`` (the current environment)."""
    write_json(Path(run) / ENVIRONMENT, snapshot())


def warn_if_changed(run: Path, what: str) -> list[str]:
    """Log a warning when ``run``'s recorded environment differs from this one; the lines.

    A run from before ``environment.json`` existed (or an unreadable one) is noted, not
    refused.
    """
    path = Path(run) / ENVIRONMENT
    try:
        recorded = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        log.warning("%s: no readable %s (%s): its environment is unknown", what, ENVIRONMENT, exc)
        return []
    changed = differences(recorded, snapshot())
    if changed:
        shown = "; ".join(changed[:10]) + (
            f"; and {len(changed) - 10} more" if len(changed) > 10 else ""
        )
        log.warning("%s ran with another environment than this one: %s", what, shown)
    return changed
