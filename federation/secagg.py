"""Secure aggregation (SecAgg+) of the clients' updates, on Flower's legacy workflow path.

SecAgg+ exists in Flower only as ``flwr.server.workflow.SecAggPlusWorkflow`` with a legacy
strategy and NumPyClient-style clients wearing ``secaggplus_mod`` (FLOWER-NOTES). The server
then only ever sees the masked sum of the clients' (clipped, quantised) parameters. With an
even ``num_shares`` the protocol halts while the run still reports success, so an even value
is refused here, and the tests check that the model really changed.

Example:
    >>> server, client = make_secagg_apps(num_shares=3, reconstruction_threshold=2)
    >>> type(server).__name__, type(client).__name__
    ('ServerApp', 'ClientApp')
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ._errors import FederationError
from .task import ClickTask


def make_secagg_apps(
    *,
    num_shares: int = 3,
    reconstruction_threshold: int = 2,
    num_rounds: int = 2,
    num_nodes: int = 4,
    lr: float = 2.0,
    seed: int = 0,
    output: str | Path | None = None,
) -> tuple[Any, Any]:
    """(ServerApp, ClientApp) training ``ClickTask`` with SecAgg+ for ``num_rounds`` rounds.

    Args:
        num_shares: secret shares per client's key material; must be odd (see module doc).
        reconstruction_threshold: shares needed to reconstruct; < ``num_shares``.
        output: JSON file where the server writes the global arrays after each round.
    """
    from flwr.client import ClientApp, NumPyClient
    from flwr.client.mod import secaggplus_mod
    from flwr.common import Context, ndarrays_to_parameters
    from flwr.server import LegacyContext, ServerApp, ServerConfig
    from flwr.server.strategy import FedAvg
    from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow

    if num_shares % 2 == 0:
        raise FederationError(
            f"num_shares must be odd (even values halt SecAgg+), got {num_shares}"
        )
    if not 1 <= reconstruction_threshold < num_shares:
        raise FederationError("reconstruction_threshold must be in [1, num_shares)")
    task = ClickTask(seed=seed)
    keys = sorted(task.initial_arrays())

    class Client(NumPyClient):
        def __init__(self, partition_id: int, num_partitions: int) -> None:
            self.pid = partition_id
            self.data = task.load(partition_id, num_partitions)

        def fit(self, parameters: list[np.ndarray], config: dict) -> tuple:
            arrays = dict(zip(keys, parameters, strict=True))
            new, m, _ = task.train(arrays, self.data, epochs=1, lr=lr, rng=[seed, self.pid])
            return [new[k] for k in keys], m, {}

    def client_fn(context: Context) -> Any:
        cfg = context.node_config
        return Client(int(cfg["partition-id"]), int(cfg["num-partitions"])).to_client()

    client_app = ClientApp(client_fn=client_fn, mods=[secaggplus_mod])

    def record(server_round: int, parameters: list[np.ndarray], config: dict) -> None:
        if output is None:
            return None
        path = Path(output)
        history = json.loads(path.read_text()) if path.exists() else {}
        history[str(server_round)] = {k: p.tolist() for k, p in zip(keys, parameters, strict=True)}
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "w") as fh:
            json.dump(history, fh)
        os.replace(tmp, path)
        return None

    initial = [task.initial_arrays()[k] for k in keys]
    server_app = ServerApp()

    @server_app.main()
    def main(grid: Any, context: Any) -> None:
        strategy = FedAvg(
            fraction_fit=1.0,
            fraction_evaluate=0.0,
            min_fit_clients=num_nodes,
            min_available_clients=num_nodes,
            initial_parameters=ndarrays_to_parameters(initial),
            evaluate_fn=record,
        )
        legacy = LegacyContext(
            context=context, config=ServerConfig(num_rounds=num_rounds), strategy=strategy
        )
        workflow = DefaultWorkflow(
            fit_workflow=SecAggPlusWorkflow(
                num_shares=num_shares, reconstruction_threshold=reconstruction_threshold
            )
        )
        workflow(grid, legacy)

    return server_app, client_app
