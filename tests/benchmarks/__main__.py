"""``make bench``: run the benchmarks of issue 6, print a table, write .bench/results-<time>.json.

    python -m tests.benchmarks [--only 1,2,3,4,5,6,7] [--quick] [--no-stack]

1-3, 5 and 6 need nothing; 4 and 7 use the local stack, started like ``make run`` does when it
is not running (and stopped afterwards unless HEC_KEEP_STACK=1). Generated answers are cached in
.bench/cache. CPU figures are process CPU time, best of a few interleaved repeats.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path

from . import core

ALL = ("1", "2", "3", "4", "5", "6", "7")


def machine() -> dict[str, object]:
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu or platform.processor(), "cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "load_avg_1m": round(os.getloadavg()[0], 2)}


def table(rows: list[core.Row]) -> str:
    lines = [f"{'#':<3}{'case':<44}{'figure':<60}{'ratio':>8}  {'target':<16}result"]
    for r in rows:
        ratio = "" if r.ratio is None else f"{r.ratio:.3g}"
        result = "" if r.met is None else ("met" if r.met else "MISSED")
        lines.append(f"{r.bench:<3}{r.case[:43]:<44}{r.figure[:59]:<60}{ratio:>8}  {r.target:<16}{result}")
        if r.absolute:
            lines.append(f"{'':<47}" + ", ".join(f"{k}={v}" for k, v in r.absolute.items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks")
    parser.add_argument("--only", default=",".join(ALL), help="comma-separated benchmark numbers")
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats")
    parser.add_argument("--no-stack", action="store_true", help="skip 4 and 7 (they need the local stack)")
    args = parser.parse_args(argv)
    chosen = [b for b in args.only.split(",") if b]
    if args.no_stack:
        chosen = [b for b in chosen if b not in ("4", "7")]
    quick = args.quick
    sizes = [1_000, 10_000] if quick else [1_000, 10_000, 100_000]
    big = 10_000 if quick else 100_000
    rows: list[core.Row] = []
    started_at = time.time()

    failed: list[str] = []

    def run(label: str, fn, *a, **kw) -> None:
        print(f"[bench] {label} ...", flush=True)
        t0 = time.perf_counter()
        try:
            rows.extend(fn(*a, **kw))
        except Exception as exc:  # the others still run and are reported; the run exits 1
            failed.append(f"{label}: {type(exc).__name__}: {exc}")
            print(f"[bench] {label}: FAILED: {type(exc).__name__}: {exc}", flush=True)
            return
        print(f"[bench] {label}: {time.perf_counter() - t0:.0f}s", flush=True)

    if "1" in chosen or "2" in chosen:
        run("1+2 whole path vs orjson.loads and vs a naive collector", core.bench_parse, sizes,
            repeats=3 if quick else 5)
    if "3" in chosen:
        run("3 incremental polling on a scripted day", core.bench_incremental, cycles=6 if quick else 30)
    if "5" in chosen:
        run("5 event-loop stalls", core.bench_loop, big)
    if "6" in chosen:
        run("6 memory per tracked app", core.bench_memory, big)
    if "4" in chosen or "7" in chosen:
        from . import stack

        coords, started = stack.ensure_stack()
        try:
            if "4" in chosen:
                run("4 publishing", stack.bench_publish, coords["KAFKA_BOOTSTRAP_SERVERS"],
                    n=5_000 if quick else 20_000, rounds=2 if quick else 5)
            if "7" in chosen:
                run("7 end-to-end latency of real jobs", stack.bench_latency, coords, jobs=10)
        finally:
            if started and not os.environ.get("HEC_KEEP_STACK"):
                stack.stop_stack()

    print()
    print(table(rows))
    out_dir = Path(os.environ.get("HEC_BENCH_DIR") or core.REPO / ".bench")
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(started_at))
    result = {"started": stamp, "seconds": round(time.time() - started_at), "quick": quick, "machine": machine(),
              "rows": [dataclasses.asdict(r) for r in rows], "failed": failed}
    path = out_dir / f"results-{stamp}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n[bench] results written to {path}")
    for line in failed:
        print(f"[bench] did not run to the end: {line.splitlines()[0]}")
    missed = [r for r in rows if r.met is False]
    if missed and quick:  # smaller sizes and fewer repeats than the targets are set for
        print(f"[bench] --quick: {len(missed)} target(s) missed, not counted (sizes and repeats are cut)")
    return 1 if failed or (missed and not quick) else 0


if __name__ == "__main__":
    sys.exit(main())
