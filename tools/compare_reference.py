#!/usr/bin/env python3
"""Optional fidelity check: our Rust iCID (`driftwatch detect`) against the numpy reference.

This script is OPTIONAL and is not part of the test suite. It needs two things most clones do not
have, and it skips cleanly (one line saying why, exit status 0) when either is missing:

- the shared folder next to the repository (default `<repo>/../shared`, see `--shared`) holding
  the numpy reference implementation (`reference/icid/run_ref.py`, `ref_icid.py`) and the
  synthetic series (`data/synthetic/*.csv`, `truth.json`);
- numpy, importable by the Python that runs this script (the reference is run with the same
  interpreter).

With both present it runs both implementations on each synthetic series (window 50, alpha 2,
seeds 0..N-1) and checks:

1. psi selection (`--psi auto`, lowest approximate entropy over 2,4,8,16,32,64): the psi each
   implementation chose per seed and the most frequent one (mode). PASS when the modes agree per
   file; on a tie the sets of most frequent values must intersect. Only the series the issue
   names (mean_shift, variance_shift) decide PASS/FAIL here: on frequency_change psi 8 and 16
   have nearly equal approximate entropy (about 0.0110 vs 0.0111 on average in both
   implementations), so which wins is close to a coin flip per seed; over 30 seeds both pick 8
   at the same rate (19/30 ours, 18/30 the reference's). It is shown as "info".
2. point scores with psi fixed (16 and 4): the Pearson correlation between our `scores` and the
   reference's `point_scores`, per seed, with the mean and minimum over seeds. The two use
   different random generators, so seeds are comparable statistically, not bit for bit. PASS
   when the mean correlation is at least 0.9 for every file and psi.
3. the change points each implementation found for seed 0 under `--psi auto`, next to the truth
   (informational, not part of PASS/FAIL).

It prints a table per check and a final PASS/FAIL line. Exit status: 0 on PASS or skip, 1 on
FAIL, 2 when a run could not be made (the binary failed to build, a run crashed).

The binary is `<repo>/target/release/driftwatch` (override with `--bin`); when it is missing the
script runs `cargo build --release --quiet` in the repository first (`--build` forces that, for
when the binary may be stale). The reference runs single-threaded BLAS/OpenMP.

Usage: python tools/compare_reference.py [--shared DIR] [--bin PATH] [--seeds N] [--files a,b]
Uses only the standard library and numpy.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_FILES = ("mean_shift", "variance_shift", "frequency_change")
WINDOW = 50
ALPHA = 2
FIXED_PSI = (16, 4)
# psi-mode agreement decides PASS/FAIL only on these (see the module docstring).
PSI_GATED = {"mean_shift", "variance_shift"}
MIN_MEAN_CORR = 0.9


def parse_args(argv):
    ap = argparse.ArgumentParser(
        description="Optional: compare `driftwatch detect` with the numpy iCID reference "
        "(skips when ../shared or numpy is absent).")
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared",
                    help="shared folder with reference/icid and data/synthetic (default: %(default)s)")
    ap.add_argument("--bin", type=Path, default=None,
                    help="driftwatch binary (default: <repo>/target/release/driftwatch, built if missing)")
    ap.add_argument("--build", action="store_true",
                    help="run `cargo build --release --quiet` first even if the binary exists")
    ap.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1 (default: %(default)s)")
    ap.add_argument("--files", default=",".join(DEFAULT_FILES),
                    help="comma list of synthetic series (default: %(default)s)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                    help="runs in parallel (default: %(default)s)")
    args = ap.parse_args(argv)
    if args.seeds < 1:
        ap.error("--seeds must be at least 1")
    if args.jobs < 1:
        ap.error("--jobs must be at least 1")
    args.files = [f.strip().removesuffix(".csv") for f in args.files.split(",") if f.strip()]
    if not args.files:
        ap.error("--files is empty")
    return args


def skip(reason):
    print(f"SKIP: {reason}")
    sys.exit(0)


class RunError(Exception):
    pass


def run_json(cmd, cwd=None, env=None):
    """Run `cmd` and parse the one JSON object it prints."""
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise RunError(f"{' '.join(map(str, cmd))} exited {p.returncode}:\n{p.stderr.strip()}")
    try:
        return json.loads(p.stdout)
    except json.JSONDecodeError as e:
        raise RunError(f"{' '.join(map(str, cmd))} printed no JSON ({e}):\n{p.stdout[:500]}")


def reference_env():
    env = dict(os.environ)
    env["OPENBLAS_NUM_THREADS"] = "1"
    env["OMP_NUM_THREADS"] = "1"
    env.pop("OPENBLAS_CORETYPE", None)
    env.pop("OPENBLAS_L2_SIZE", None)
    return env


def locate_binary(args):
    if args.bin is not None:
        if not args.bin.is_file():
            raise RunError(f"--bin {args.bin}: no such file")
        return args.bin.resolve()
    binary = REPO / "target" / "release" / "driftwatch"
    if args.build or not binary.is_file():
        print("building: cargo build --release --quiet", flush=True)
        p = subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=REPO)
        if p.returncode != 0 or not binary.is_file():
            raise RunError(f"cargo build --release failed (exit {p.returncode})")
    return binary


def mode_set(values):
    """The most frequent values (several on a tie) and their count."""
    counts = collections.Counter(values)
    top = max(counts.values())
    return sorted(v for v, c in counts.items() if c == top), top


def pearson(a, b):
    import numpy as np

    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise RunError(f"score lengths differ: ours {a.size}, reference {b.size}")
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def fmt_set(vals):
    return ",".join(str(v) for v in vals)


def main(argv=None):
    args = parse_args(argv)
    shared = args.shared.resolve()
    ref_dir = shared / "reference" / "icid"
    data_dir = shared / "data" / "synthetic"

    if not shared.is_dir():
        skip(f"shared folder {shared} not found (the numpy reference is not part of the repository)")
    missing = [p for p in (ref_dir / "run_ref.py", ref_dir / "ref_icid.py") if not p.is_file()]
    if missing:
        skip(f"reference implementation not found: {', '.join(map(str, missing))}")
    csvs = {name: data_dir / f"{name}.csv" for name in args.files}
    unknown = [n for n, p in csvs.items() if not p.is_file() and n not in DEFAULT_FILES]
    if unknown and data_dir.is_dir():
        print(f"ERROR: --files: no {', '.join(f'{n}.csv' for n in unknown)} in {data_dir}")
        return 2
    missing = [str(p) for p in csvs.values() if not p.is_file()]
    if missing:
        skip(f"synthetic data not found: {', '.join(missing)}")
    try:
        import numpy  # noqa: F401  (the reference needs it too, under this same interpreter)
    except ImportError:
        skip(f"numpy cannot be imported by {sys.executable}")

    truth = {}
    truth_path = data_dir / "truth.json"
    if truth_path.is_file():
        truth = json.loads(truth_path.read_text())

    t_start = time.perf_counter()
    try:
        binary = locate_binary(args)
    except RunError as e:
        print(f"ERROR: {e}")
        return 2

    seeds = list(range(args.seeds))
    ref_env = reference_env()

    def ours(csv, seed, psi):
        cmd = [str(binary), "detect", str(csv), "--method", "icid", "--window", str(WINDOW), "--alpha", str(ALPHA),
               "--seed", str(seed), "--psi", str(psi)]
        if psi != "auto":
            cmd.append("--scores")
        return run_json(cmd)

    def ref(csv, seed, psi):
        cmd = [sys.executable, "run_ref.py", str(csv), "--window", str(WINDOW), "--alpha", str(ALPHA),
               "--seed", str(seed), "--no-scores"]
        if psi != "auto":
            cmd += ["--psi", str(psi), "--point-scores"]
        return run_json(cmd, cwd=ref_dir, env=ref_env)

    # Every run is independent: key -> future, keyed by (impl, file, psi, seed).
    results = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {}
        for name, csv in csvs.items():
            for psi in ("auto", *FIXED_PSI):
                for seed in seeds:
                    futures[("ours", name, psi, seed)] = pool.submit(ours, csv, seed, psi)
                    futures[("ref", name, psi, seed)] = pool.submit(ref, csv, seed, psi)
        try:
            for key, fut in futures.items():
                results[key] = fut.result()
        except RunError as e:
            for fut in futures.values():
                fut.cancel()
            print(f"ERROR: {e}")
            return 2

    ok = True
    print(f"driftwatch: {binary}")
    print(f"reference:  {ref_dir} (python {sys.executable})")
    print(f"window {WINDOW}, alpha {ALPHA}, seeds 0..{args.seeds - 1}")

    # 1. psi selection.
    print()
    print("1. psi chosen with --psi auto (per seed; mode = most frequent)")
    w_name = max(len(n) for n in csvs) + 2
    print(f"   {'file':<{w_name}}{'impl':<6}{'psi per seed':<{4 * len(seeds) + 2}}{'mode':<14}result")
    for name in csvs:
        gated = name in PSI_GATED
        modes = {}
        rows = []
        for impl, key in (("ours", "psi"), ("ref", "psi_selected")):
            chosen = [int(results[(impl, name, "auto", s)][key]) for s in seeds]
            modes[impl] = mode_set(chosen)
            vals, count = modes[impl]
            tie = " tie" if len(vals) > 1 else ""
            rows.append((impl, " ".join(f"{v:>3}" for v in chosen), f"{fmt_set(vals)} ({count}/{len(seeds)}{tie})"))
        passed = bool(set(modes["ours"][0]) & set(modes["ref"][0]))
        if gated:
            ok &= passed
        for i, (impl, per_seed, mode) in enumerate(rows):
            label = name if i == 0 else ""
            word = ("PASS" if passed else "FAIL") if gated else ("agree" if passed else "differ") + " (info)"
            verdict = word if i == len(rows) - 1 else ""
            print(f"   {label:<{w_name}}{impl:<6}{per_seed:<{4 * len(seeds) + 2}}{mode:<14}{verdict}")

    # 2. point-score correlation with psi fixed.
    print()
    print(f"2. Pearson r of point scores, ours vs reference, psi fixed (PASS: mean r >= {MIN_MEAN_CORR})")
    print(f"   {'file':<{w_name}}{'psi':>4}{'mean r':>9}{'min r':>9}   {'r per seed':<{7 * len(seeds)}}result")
    for name in csvs:
        for j, psi in enumerate(FIXED_PSI):
            rs = []
            for s in seeds:
                a = results[("ours", name, psi, s)]
                b = results[("ref", name, psi, s)]
                if int(a["psi"]) != psi:
                    print(f"ERROR: driftwatch ran psi {a['psi']}, asked for {psi}")
                    return 2
                try:
                    rs.append(pearson(a["scores"], b["point_scores"]))
                except RunError as e:
                    print(f"ERROR: {name} psi {psi} seed {s}: {e}")
                    return 2
            mean_r = sum(rs) / len(rs)
            min_r = min(rs)
            passed = mean_r >= MIN_MEAN_CORR  # False when any r is nan (constant scores)
            ok &= passed
            per_seed = " ".join(f"{r:6.3f}" for r in rs)
            label = name if j == 0 else ""
            print(f"   {label:<{w_name}}{psi:>4}{mean_r:>9.4f}{min_r:>9.4f}   {per_seed:<{7 * len(seeds)}}"
                  f"{'PASS' if passed else 'FAIL'}")

    # 3. change points, seed 0 (informational).
    print()
    print("3. change points, seed 0, --psi auto (informational)")
    print(f"   {'file':<{w_name}}{'truth':<14}{'ours (psi)':<28}reference (psi)")
    for name in csvs:
        a = results[("ours", name, "auto", 0)]
        b = results[("ref", name, "auto", 0)]
        t = truth.get(f"{name}.csv")
        t_txt = fmt_set(t) if t is not None else "?"
        ours_txt = f"{fmt_set(a['change_points']) or '-'} ({a['psi']})"
        ref_txt = f"{fmt_set(b['change_points']) or '-'} ({b['psi_selected']})"
        print(f"   {name:<{w_name}}{t_txt:<14}{ours_txt:<28}{ref_txt}")

    print()
    elapsed = time.perf_counter() - t_start
    print(f"{'PASS' if ok else 'FAIL'} ({len(results)} runs, {elapsed:.1f} s)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
