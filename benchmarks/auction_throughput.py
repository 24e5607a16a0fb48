"""Auctions per second: the batched engine vs the best plain-numpy peer, side by side.

Peers, on the same bids, with the results checked equal:

- one slot: a ten-line ``np.partition`` second price (winner by ``argmax``, price the second
  largest bid, payments scattered into an (A, n) matrix as ``run_auctions`` returns them); no
  validation, no reserve, no tie-breaking, so it is a floor, not a competitor;
- GSP with 4 slots: the same floor with ``np.argpartition`` + a sort of the top five;
- an AuctionGym-style per-auction loop (``argsort`` per auction), for scale.

Project and peer run in the same process, interleaved (project, peer, project, ...), one
thread, so load spikes hit both; the ratio (project time / peer time, lower is better) is
reported as the median and range over the repeats, with the machine load.

    bash .ci/env python benchmarks/auction_throughput.py [--quick] [--repeats 11]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from auction import run_auctions  # noqa: E402
from benchmarks._report import print_table, write_json  # noqa: E402

SLOT_CTRS = {1: np.array([1.0]), 4: np.array([1.0, 0.7, 0.5, 0.3])}


def partition_second_price(bids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Second price floor: winners (A,), per-click prices (A,), payments (A, n)."""
    a, n = bids.shape
    winners = bids.argmax(axis=1)
    prices = np.partition(bids, n - 2, axis=1)[:, n - 2]
    payments = np.zeros_like(bids)
    payments[np.arange(a), winners] = prices
    return winners, prices, payments


def partition_gsp(bids: np.ndarray, ctrs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """GSP floor for K slots: winners (A, K), prices (A, K), payments (A, n)."""
    k = ctrs.shape[0]
    top = np.argpartition(-bids, k, axis=1)[:, : k + 1]
    order = np.take_along_axis(top, np.argsort(-np.take_along_axis(bids, top, 1), 1), 1)
    prices = np.take_along_axis(bids, order[:, 1:], 1)
    payments = np.zeros_like(bids)
    np.put_along_axis(payments, order[:, :k], prices * ctrs, axis=1)
    return order[:, :k], prices, payments


def auctiongym_loop(bids: np.ndarray, num_slots: int) -> tuple[np.ndarray, np.ndarray]:
    """One auction at a time, as AuctionGym's SecondPrice allocation does it."""
    winners = np.empty((bids.shape[0], num_slots), dtype=np.intp)
    prices = np.empty((bids.shape[0], num_slots))
    for i, row in enumerate(bids):
        winners[i] = np.argsort(-row)[:num_slots]
        prices[i] = -np.sort(-row)[1 : num_slots + 1]
    return winners, prices


def interleaved(ours: Callable[[], object], peer: Callable[[], object], repeats: int) -> dict:
    """Time ``ours`` and ``peer`` alternately; best times and the ratio's median and range."""
    t_ours, t_peer = [], []
    for _ in range(repeats):
        for fn, acc in ((ours, t_ours), (peer, t_peer)):
            start = time.perf_counter()
            fn()
            acc.append(time.perf_counter() - start)
    ratios = np.array(t_ours) / np.array(t_peer)
    return {
        "t_ours": min(t_ours),
        "t_peer": min(t_peer),
        "ratio_median": float(np.median(ratios)),
        "ratio_min": float(ratios.min()),
        "ratio_max": float(ratios.max()),
    }


def peer_for(k: int) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The numpy floor for ``k`` slots."""
    return partition_second_price if k == 1 else (lambda b: partition_gsp(b, SLOT_CTRS[k]))


def same_results(bids: np.ndarray, k: int) -> bool:
    """Engine == numpy floor == AuctionGym loop on tie-free bids."""
    mech = "second_price" if k == 1 else "gsp"
    out = run_auctions(bids, mechanism=mech, slot_ctrs=SLOT_CTRS[k], rng=0)
    w, p, pay = peer_for(k)(bids)
    w_loop, p_loop = auctiongym_loop(bids, k)
    return bool(
        np.array_equal(out.winners, w.reshape(out.winners.shape))
        and np.array_equal(out.prices, p.reshape(out.prices.shape))
        and np.array_equal(out.payments, pay)
        and np.array_equal(out.winners, w_loop)
        and np.array_equal(out.prices, p_loop)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--repeats", type=int, default=11, help="interleaved repeats per row")
    args = parser.parse_args()
    batch = 50_000 if args.quick else 1_000_000
    loop_n = 2_000 if args.quick else 20_000
    rng = np.random.default_rng(0)
    load_before = os.getloadavg()
    rows = []
    for n in (10, 100):
        for k in (1, 4):
            a = batch if n == 10 else batch // 10
            bids = rng.random((a, n))  # continuous: no ties, so every peer's order is exact
            mech = "second_price" if k == 1 else "gsp"
            peer = peer_for(k)
            timing = interleaved(
                lambda b=bids, m=mech, k=k: run_auctions(
                    b, mechanism=m, slot_ctrs=SLOT_CTRS[k], rng=0
                ),
                lambda b=bids, p=peer: p(b),
                repeats=args.repeats,
            )
            start = time.perf_counter()
            auctiongym_loop(bids[:loop_n], k)
            loop_rate = loop_n / (time.perf_counter() - start)
            rows.append(
                {
                    "bidders": n,
                    "slots": k,
                    "auctions": a,
                    "ours_per_s": a / timing["t_ours"],
                    "floor_per_s": a / timing["t_peer"],
                    "ratio_median": timing["ratio_median"],
                    "ratio_range": f"{timing['ratio_min']:.2f}-{timing['ratio_max']:.2f}",
                    "loop_per_s": loop_rate,
                    "same_results": same_results(bids[:loop_n], k),
                    **{key: timing[key] for key in ("ratio_min", "ratio_max")},
                }
            )
    load = os.getloadavg()
    cols = ["bidders", "slots", "auctions", "ours_per_s", "floor_per_s", "ratio_median"]
    print_table(rows, [*cols, "ratio_range", "loop_per_s", "same_results"])
    print(
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} CPUs; "
        f"load average (1, 5, 15 min) before {load_before[0]:.2f} {load_before[1]:.2f} "
        f"{load_before[2]:.2f}, after {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
        "ratio = engine time / floor time (lower is better)"
    )
    verdict = {
        "target_ratio_le_1_single_slot": all(
            r["ratio_median"] <= 1.0 for r in rows if r["slots"] == 1
        ),
        "target_gsp_ahead": all(r["ratio_median"] <= 1.0 for r in rows if r["slots"] > 1),
        "all_same_results": all(r["same_results"] for r in rows),
    }
    print(verdict)
    payload = {
        "quick": args.quick,
        "repeats": args.repeats,
        "load_before": load_before,
        "load_after": load,
        "rows": rows,
        **verdict,
    }
    path = write_json("auction_throughput", payload)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
