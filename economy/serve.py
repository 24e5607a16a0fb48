"""``fedadagent serve [RUN_DIR]``: run an edge node (:mod:`economy.edge`) on uvicorn.

The node serves the global adapter + head of ``RUN_DIR`` (or the embedded default model and
catalogue), replays its event store (default ``RUN_DIR/devices/edge``, the run's private
folder; required without ``RUN_DIR``) into its users' contexts, embeds the catalogue once, and
answers HTTP on ``host:port`` until stopped (Ctrl-C / SIGTERM). One process: the users'
contexts live in its memory (more processes would need users sharded between them).
"""

from __future__ import annotations

import gc
import logging
import sys
from pathlib import Path

from .edge import EdgeError, EdgeNode, EventStore, catalogue_from_config, load_served_model
from .edge.app import make_app
from .rundir import DEVICES
from .seeding import RunSeeds

log = logging.getLogger(__name__)


def open_node(run_dir: Path | None, store: Path | None) -> tuple[EdgeNode, EventStore]:
    """The node of ``run_dir`` with its store opened and replayed, the catalogue embedded.

    Raises:
        RunFolderError: ``run_dir`` is not a run folder.
        EdgeError: no store without a run folder, the store is in use or unreadable, or the
            run's model cannot be served (see :func:`economy.edge.load_served_model`).
    """
    if store is None:
        if run_dir is None:
            raise EdgeError("--store: give the node's event store folder (there is no RUN_DIR)")
        store = Path(run_dir) / DEVICES / "edge"
    model, cfg = load_served_model(run_dir)
    node = EdgeNode(model, catalogue_from_config(cfg), rng=RunSeeds(cfg.seed).generator("edge"))
    events = EventStore(store, keep_per_user=node.max_events)
    try:
        for event in events.events():
            node.apply(event)
        node.warm()
    except BaseException:
        events.close()
        raise
    return node, events


def serve(
    run_dir: Path | None, *, host: str = "127.0.0.1", port: int = 8000, store: Path | None = None
) -> int:
    """Serve the node until stopped; the exit status (2 when it cannot start)."""
    import uvicorn

    try:
        node, events = open_node(run_dir, store)
    except EdgeError as exc:
        print(f"fedadagent serve: {exc}", file=sys.stderr)
        return 2
    log.info("node: %d users, %d events, model %s", node.users, events.count, node.model.version)
    # The model and libraries leave ~440,000 long-lived objects; a full collection scans them
    # all (about 0.1-0.3 s on this machine) and stalls every request in flight: the tail
    # beyond saturation. Freeze them (never freed anyway) so collections see only what
    # serving allocates.
    gc.collect()
    gc.freeze()
    try:
        # "auto" is uvloop's event loop and httptools' parser (both C) where installed (they
        # are in the pinned environment), asyncio's and h11 elsewhere; no access log: uvicorn's
        # own per-request cost is most of a decision's CPU time once the body is parsed
        uvicorn.run(
            make_app(node, events),
            host=host,
            port=port,
            log_level="warning",
            loop="auto",
            http="auto",
            access_log=False,
        )
    finally:
        events.close()
    return 0
