"""Impressions per second and peak memory of the market loop's fast path, 1,000 to 100,000 users.

The full market step (bids, on-device scores, budgeted auctions, clicks, payments, bidder and
device learning, trend gossip) without training: ``federated.every = 0``, 100 advertisers,
5 impressions per user and step, the devices scoring with their click counts per category
(``agents.scorer = "category"``, named here: the config's default became the LM scorer on
2026-12-02, which silently changed what this script measured; ``--scorer lm`` measures that
one). Each size runs in a fresh process (clean peak RSS); the first step is a warm-up, the
next ``--steps`` are timed: by default 5, one period of the trend gossip (``social.trend_every``
= 5), so gossip is timed as often as it runs. Rates are given by wall time and by the
process's CPU time: on a shared machine the wall rate depends on the other users' load (the
1-minute load average is recorded), the CPU rate much less. BLAS runs one thread.

Communities are ``users / 250`` (at least 4): networkx's SBM generator flips a coin for every
pair inside a community, so the default 4 communities would make building the 100,000-user
world quadratic (~1.25e9 coin flips). World building is timed apart from the steps.

    bash .ci/env python benchmarks/economy_scale.py [--quick] [--steps N] [--scorer lm]

``--baseline DIR`` compares this checkout with another one (e.g. ``git worktree add DIR
<commit>``) at ``--sizes``: the two run alternately, each size ``--repeats`` times, every run a
fresh process of this script importing the code of its checkout, and the table gives the ratio
of step wall and CPU times (this checkout / baseline; lower is better) as median and range
with the load.

``--profile`` runs cProfile over the timed steps of ``--sizes[0]`` users (of ``--baseline DIR``
instead when given) and prints the functions with the largest cumulative share of the step
time as a Markdown table (``--top`` rows).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import cProfile  # noqa: E402
import json  # noqa: E402
import pstats  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import numpy as np  # noqa: E402

from benchmarks._report import machine_note, print_table, write_json  # noqa: E402

ADVERTISERS = 100
IMPRESSIONS_PER_USER = 5
TARGET_RATE = 150_000  # impressions / s at 10,000 users (issue 18)
TARGET_RSS_MB = 4096


def start(users: int, steps: int, scorer: str) -> tuple[object, float]:
    """The market of ``users`` users before its first step, and the seconds building it took."""
    from economy.config import parse_config
    from economy.market import start_market

    cfg = parse_config(
        {
            "seed": 0,
            "market": {
                "users": users,
                "advertisers": ADVERTISERS,
                "steps": steps + 1,
                "impressions_per_user": IMPRESSIONS_PER_USER,
            },
            "social": {"communities": max(4, users // 250)},
            "federated": {"every": 0},
            "agents": {"scorer": scorer},
        }
    )
    t0 = time.perf_counter()
    state = start_market(cfg)
    return state, time.perf_counter() - t0


def measure(users: int, steps: int, scorer: str) -> dict[str, float | str]:
    """Build the world, run one warm-up step and time ``steps`` more (in this process)."""
    state, build = start(users, steps, scorer)
    state.advance()  # warm-up: first-touch allocations, caches
    wall, cpu = time.perf_counter(), time.process_time()
    while not state.done:
        state.advance()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    impressions = steps * users * IMPRESSIONS_PER_USER
    fast = [m.fast_path_us_per_impression for m in state.metrics[1:]]
    return {
        "users": users,
        "advertisers": ADVERTISERS,
        "scorer": scorer,
        "impressions_per_step": users * IMPRESSIONS_PER_USER,
        "world_build_s": build,
        "step_wall_s": wall / steps,
        "imp_per_s_wall": impressions / wall,
        "imp_per_s_cpu": impressions / cpu,
        "fast_path_us_per_imp": sum(fast) / len(fast),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "load_avg_1m": os.getloadavg()[0],
    }


def profile(users: int, steps: int, scorer: str, top: int) -> list[dict]:
    """cProfile of the timed steps: the ``top`` functions by cumulative time, each with its
    share of the steps' time, its own (exclusive) share and its calls per step."""
    state, _ = start(users, steps, scorer)
    state.advance()
    prof = cProfile.Profile()
    prof.enable()
    while not state.done:
        state.advance()
    prof.disable()
    stats = pstats.Stats(prof).stats  # (file, line, name) -> (cc, nc, tottime, cumtime, callers)
    total = sum(v[3] for k, v in stats.items() if k[2] == "advance" and k[0].endswith("market.py"))
    rows = []
    for (file, line, name), (_, calls, own, cum, _) in stats.items():
        where = file if file.startswith("<") or file == "~" else _short(file)
        rows.append(
            {
                "function": f"{where}:{line}({name})" if line else name,
                "cumulative_ms_per_step": cum / steps * 1e3,
                "cumulative_share": cum / total,
                "own_share": own / total,
                "calls_per_step": calls / steps,
            }
        )
    rows.sort(key=lambda r: -r["cumulative_share"])
    return rows[:top]


def _short(file: str) -> str:
    """A source path relative to its checkout (or to site-packages)."""
    parts = Path(file).parts
    for anchor in ("site-packages", "lib"):
        if anchor in parts:
            return "/".join(parts[parts.index(anchor) + 1 :])
    for package in ("economy", "auction", "agents", "graphs", "incentives", "federation"):
        if package in parts:
            return "/".join(parts[len(parts) - parts[::-1].index(package) - 1 :])
    return file


def run_in_child(users: int, steps: int, scorer: str, root: Path = ROOT) -> dict[str, float | str]:
    """``measure`` in a fresh process of this script, importing the code of the checkout at
    ``root`` (so both sides of a comparison measure the same thing)."""
    out = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--one",
            str(users),
            "--steps",
            str(steps),
            "--scorer",
            scorer,
            "--root",
            str(root),
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd=root,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def compare(baseline: Path, sizes: list[int], steps: int, repeats: int, scorer: str) -> list[dict]:
    """This checkout vs ``baseline``, alternating runs; ratios of step wall and CPU time."""
    rows = []
    for users in sizes:
        ours, base = [], []
        for _ in range(repeats):
            ours.append(run_in_child(users, steps, scorer))
            base.append(run_in_child(users, steps, scorer, baseline))
        pairs = list(zip(ours, base, strict=True))
        wall = np.array([o["step_wall_s"] / b["step_wall_s"] for o, b in pairs])
        cpu = np.array([b["imp_per_s_cpu"] / o["imp_per_s_cpu"] for o, b in pairs])
        rows.append(
            {
                "users": users,
                "imp_per_s_wall": max(o["imp_per_s_wall"] for o in ours),
                "baseline_imp_per_s_wall": max(b["imp_per_s_wall"] for b in base),
                "imp_per_s_cpu": float(np.median([o["imp_per_s_cpu"] for o in ours])),
                "baseline_imp_per_s_cpu": float(np.median([b["imp_per_s_cpu"] for b in base])),
                "wall_ratio_median": float(np.median(wall)),
                "wall_ratio_min": float(wall.min()),
                "wall_ratio_max": float(wall.max()),
                "cpu_ratio_median": float(np.median(cpu)),
                "load_avg_1m_max": max(r["load_avg_1m"] for r in ours + base),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 and 3,000 users, 2 steps")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per size")
    parser.add_argument("--scorer", choices=["category", "lm", "student"], default="category")
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--baseline", type=Path, help="another checkout to compare with")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000], help="with --baseline")
    parser.add_argument("--repeats", type=int, default=3, help="runs per side with --baseline")
    parser.add_argument("--profile", action="store_true", help="cProfile of one size")
    parser.add_argument("--top", type=int, default=20, help="rows of the --profile table")
    args = parser.parse_args()
    if args.root is not None:  # a child: the code under test is the checkout at --root
        sys.path.insert(0, str(args.root.resolve()))
    if args.one is not None:  # the child process: one size, JSON on stdout
        print(json.dumps(measure(args.one, args.steps, args.scorer)))
        return
    if args.profile:
        report_profile(args)
        return
    if args.baseline is not None:
        load_before = os.getloadavg()
        rows = compare(args.baseline.resolve(), args.sizes, args.steps, args.repeats, args.scorer)
        print_table(rows, list(rows[0]))
        print(
            f"{machine_note(load_before, os.getloadavg())}; ratio = this checkout / "
            f"{args.baseline} (step time; lower is better), {args.repeats} alternating runs, "
            f"{args.steps} timed steps, scorer {args.scorer}"
        )
        payload = {
            "baseline": str(args.baseline),
            "steps": args.steps,
            "scorer": args.scorer,
            "rows": rows,
        }
        print(f"wrote {write_json('economy_scale_vs_baseline', payload)}")
        return
    sizes = [1_000, 3_000] if args.quick else [1_000, 3_000, 10_000, 30_000, 100_000]
    steps = 2 if args.quick else args.steps
    load_before = os.getloadavg()
    rows = [run_in_child(n, steps, args.scorer) for n in sizes]
    columns = [
        "users",
        "impressions_per_step",
        "world_build_s",
        "step_wall_s",
        "imp_per_s_wall",
        "imp_per_s_cpu",
        "fast_path_us_per_imp",
        "peak_rss_mb",
        "load_avg_1m",
    ]
    print_table(rows, columns)
    print(f"{machine_note(load_before, os.getloadavg())}; {steps} timed steps, {args.scorer}")
    headline = next((r for r in rows if r["users"] == 10_000), None)
    if headline is not None:
        verdict = {True: "met", False: "NOT met"}
        wall, cpu = headline["imp_per_s_wall"], headline["imp_per_s_cpu"]
        print(
            f"10,000 users x {ADVERTISERS} advertisers, target {TARGET_RATE:,} impressions/s: "
            f"wall {wall:,.0f} ({verdict[wall >= TARGET_RATE]} at load "
            f"{headline['load_avg_1m']:.1f}), CPU time {cpu:,.0f} ({verdict[cpu >= TARGET_RATE]}); "
            f"peak RSS {headline['peak_rss_mb']:,.0f} MB "
            f"(target < {TARGET_RSS_MB:,}: {verdict[headline['peak_rss_mb'] < TARGET_RSS_MB]})"
        )
    payload = {"quick": args.quick, "steps": steps, "scorer": args.scorer, "rows": rows}
    print(f"wrote {write_json('economy_scale', payload)}")


def report_profile(args: argparse.Namespace) -> None:
    """``--profile``: the Markdown table of one size's cProfile (in a child of ``--baseline``'s
    checkout when given, else in this process)."""
    users, root = args.sizes[0], (args.baseline or ROOT).resolve()
    load_before = os.getloadavg()
    if root != ROOT:
        command = [sys.executable, str(Path(__file__).resolve()), "--profile", "--root", str(root)]
        options = ["--sizes", str(users), "--steps", str(args.steps), "--top", str(args.top)]
        done = subprocess.run(
            command + options + ["--scorer", args.scorer],
            check=True,
            capture_output=True,
            text=True,
            cwd=root,
        )
        print(done.stdout, end="")
        return
    rows = profile(users, args.steps, args.scorer, args.top)
    print("| function | cumulative | ms / step | own | calls / step |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| `{r['function']}` | {r['cumulative_share']:.0%} | "
            f"{r['cumulative_ms_per_step']:,.0f} | {r['own_share']:.0%} | "
            f"{r['calls_per_step']:,.0f} |"
        )
    note = machine_note(load_before, os.getloadavg())
    print(f"\n{note}; {users:,} users, {args.steps} profiled steps, scorer {args.scorer}")
    code = (args.root or ROOT).resolve()  # the checkout whose code ran
    name = "economy_scale_profile" + ("" if code == ROOT else "_" + code.name)
    payload = {"users": users, "steps": args.steps, "code": str(code), "rows": rows}
    print(f"wrote {write_json(name, payload)}")


if __name__ == "__main__":
    main()
