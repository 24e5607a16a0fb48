"""The economy as a Flower ServerApp: the market runs inside ``main(grid, context)``.

Every ``federated.every`` steps the market runs one federated round over ``grid``
(:mod:`economy.federated`); the devices are the federation's nodes, one per user, and run the
project's one ClientApp (``federation.client_app``, ``task = "device"``). The engine starts
once per run:

- ``federated.engine = "simulation"`` (default): :func:`simulate` starts Flower's Simulation
  Engine (Ray) in this process with one virtual node per user; ``federated.ray_address``
  puts the device processes on an existing Ray cluster (``ray start --head`` on one machine,
  ``ray start --address=HEAD:6379`` on the others, then ``ray_address = "auto"``).
- ``federated.engine = "deployment"``: :func:`submit` hands the run folder to a SuperLink with
  ``flwr run <project> <federation> -c economy-run-dir=...``; this module's ``app`` (the
  project's ServerApp component) runs the market there, and one SuperNode per user (node
  config ``partition-id``, ``num-partitions`` and optionally ``device-store``) trains.

Without ``economy-run-dir`` in its run config, ``app`` is the plain federated-training app
(:func:`federation.server_app.run_server`).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from .market import MarketState
from .rundir import DEVICES

PROJECT = Path(__file__).resolve().parents[1]  # where pyproject.toml (the Flower app) lives
Drive = Callable[[MarketState, Any], None]


def make_server_app(
    drive: Callable[[Grid, Context], None] | None = None,
) -> ServerApp:
    """A ServerApp running ``drive(grid, context)``; by default the economy in the run
    config's ``economy-run-dir`` (or plain federated training without one)."""
    server = ServerApp()

    @server.main()
    def main(grid: Grid, context: Context) -> None:
        (drive or _serve)(grid, context)

    return server


def _serve(grid: Grid, context: Context) -> None:
    """The deployment entry: continue (or start) the market in ``economy-run-dir``."""
    from federation.server_app import run_server
    from federation.settings import settings

    config = dict(context.run_config)
    folder = str(config.get("economy-run-dir", ""))
    if not folder:
        run_server(grid, settings(config), context)
        return
    from .runner import continue_run, open_run

    run = Path(folder)
    state = open_run(run)
    continue_run(run, state, link=connect(grid, state, run))


def connect(grid: Grid, state: MarketState, run: Path) -> Any:
    """The federation as the market sees it (every user's node), devices' store in ``run``."""
    from .federated import FlowerLink

    return FlowerLink.connect(grid, state.world.n_users, run / DEVICES)


def simulate(state: MarketState, run: Path, drive: Drive) -> None:
    """Run ``drive(state, link)`` inside Flower's Simulation Engine: one node per user.

    Ctrl-C stops the market at the next step or while it waits for devices (the run folder
    keeps its last checkpoint); the engine's own logging is kept to warnings.
    """
    from flwr.simulation import run_simulation

    from federation.client_app import app as client_app

    f = state.cfg.federated
    stop = threading.Event()
    interrupted: list[KeyboardInterrupt] = []

    def main(grid: Grid, context: Context) -> None:
        try:
            drive(state, replace(connect(grid, state, run), stop=stop))
        except KeyboardInterrupt as exc:  # Flower's server thread passes on Exceptions only
            interrupted.append(exc)

    init: dict[str, Any] = {"logging_level": "ERROR", "log_to_driver": False}
    if f.ray_address:
        init["address"] = f.ray_address
    else:
        init["num_cpus"] = max(1, os.cpu_count() or 1)
    logging.getLogger("flwr").setLevel(logging.WARNING)
    try:
        run_simulation(
            server_app=make_server_app(main),
            client_app=client_app,
            num_supernodes=state.world.n_users,
            backend_config={"client_resources": {"num_cpus": f.client_cpus}, "init_args": init},
        )
    except KeyboardInterrupt:
        stop.set()
        raise
    if interrupted:
        raise interrupted[0]


def submit(run: Path, federation: str) -> None:
    """Run the market of ``run`` on a SuperLink's Deployment Engine with ``flwr run``.

    Raises:
        RuntimeError: ``flwr`` is not installed here, or the run failed or did not finish (its
            output says why).
    """
    from .rundir import CHECKPOINT, SUMMARY

    flwr = shutil.which("flwr")
    if flwr is None:
        raise RuntimeError("federated.engine = 'deployment' needs the `flwr` command on PATH")
    cmd = [flwr, "run", str(PROJECT), federation, "--stream"]
    cmd += ["--run-config", f'economy-run-dir="{run.resolve()}"']
    env = {**os.environ, "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1"}
    run_id = None
    with subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        try:
            for line in proc.stdout or ():
                print(line, end="", flush=True)  # the ServerApp's stream, as flwr shows it
                found = re.search(r"started run (\d+)", line)
                run_id = run_id or (found.group(1) if found else None)
        except KeyboardInterrupt:
            # Ctrl-C ends only flwr's stream: stop the run on the SuperLink as well, so a
            # later --resume does not race a ServerApp that is still running.
            if run_id is not None:
                subprocess.run([flwr, "stop", run_id, federation], env=env, check=False)
            proc.kill()
            raise
    if proc.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd)}` failed with exit code {proc.returncode}")
    # `flwr run --stream` exits 0 even when the ServerApp raised (Flower's exit code 201 is only
    # printed in the stream): the market ran to its end iff it wrote summary.json.
    if not (run / SUMMARY).is_file():
        then = (
            f"; `fedadagent run --resume {run}` continues it from its last checkpoint"
            if (run / CHECKPOINT).is_file()
            else ""
        )
        raise RuntimeError(
            f"the market of {run} did not finish on federation {federation!r} (the ServerApp's "
            f"output above says why){then}"
        )


app = make_server_app()
