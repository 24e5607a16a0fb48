"""Auctions per second: the batched engine vs a per-auction Python loop (AuctionGym style).

The loop allocates each auction the way AuctionGym's ``SecondPrice.allocate`` does
(``argsort`` of the bids, prices = the next sorted bids); both run on the same bids and the
results are checked equal. Threads are pinned to one so the numbers are per core.

    bash .ci/env python benchmarks/auction_throughput.py [--quick]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from auction import run_auctions  # noqa: E402
from benchmarks._report import print_table, write_json  # noqa: E402

SLOT_CTRS = {1: [1.0], 4: [1.0, 0.7, 0.5, 0.3]}


def auctiongym_loop(bids: np.ndarray, num_slots: int) -> tuple[np.ndarray, np.ndarray]:
    """One auction at a time, as AuctionGym's SecondPrice allocation does it."""
    winners = np.empty((bids.shape[0], num_slots), dtype=np.intp)
    prices = np.empty((bids.shape[0], num_slots))
    for i, row in enumerate(bids):
        winners[i] = np.argsort(-row)[:num_slots]
        prices[i] = -np.sort(-row)[1 : num_slots + 1]
    return winners, prices


def best_time(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args()
    batch = 50_000 if args.quick else 1_000_000
    loop_n = 2_000 if args.quick else 20_000
    rng = np.random.default_rng(0)
    rows = []
    for n in (10, 100):
        for k in (1, 4):
            a = batch if n == 10 else batch // 10
            bids = rng.random((a, n))  # continuous: no ties, so the loop's order is exact
            mech = "second_price" if k == 1 else "gsp"
            out = run_auctions(bids[:loop_n], mechanism=mech, slot_ctrs=SLOT_CTRS[k], rng=0)
            w_loop, p_loop = auctiongym_loop(bids[:loop_n], k)
            same = bool(np.array_equal(out.winners, w_loop) and np.allclose(out.prices, p_loop))
            t_batch = best_time(
                lambda b=bids, m=mech, k=k: run_auctions(
                    b, mechanism=m, slot_ctrs=SLOT_CTRS[k], rng=0
                ),
                repeats=3,
            )
            t_loop = best_time(lambda b=bids[:loop_n], k=k: auctiongym_loop(b, k), repeats=1)
            batched_rate, loop_rate = a / t_batch, loop_n / t_loop
            rows.append(
                {
                    "bidders": n,
                    "slots": k,
                    "auctions": a,
                    "batched_per_s": batched_rate,
                    "loop_per_s": loop_rate,
                    "speedup": batched_rate / loop_rate,
                    "same_results": same,
                }
            )
    cols = ["bidders", "slots", "auctions", "batched_per_s", "loop_per_s", "speedup"]
    print_table(rows, [*cols, "same_results"])
    target = next(r for r in rows if r["bidders"] == 10 and r["slots"] == 1)
    verdict = {
        "target_1m_per_s_10_bidders_1_slot": target["batched_per_s"] >= 1_000_000,
        "target_50x_loop_10_bidders_1_slot": target["speedup"] >= 50,
    }
    print(verdict)
    path = write_json("auction_throughput", {"quick": args.quick, "rows": rows, **verdict})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
