"""The chunked engines against the local one on the same source, interleaved, each from a cold
cache: wall time and total CPU (every ffmpeg, wherever it ran), their ratios to local, and the
critical-path projection for N workers (longest chain of chunks + join + package + validate).

    python benchmarks/encode_scaling.py [--seconds 60] [--size 1920x1080] [--repeats 1]
        [--chunk-seconds 30] [--preset documentary] [--engines chunked,ray] [--max-workers 16]

The ray runs use a local Ray instance (started once, before the timing) with one CPU slot per
core; its workers' CPU is read from /proc (their own time plus their waited-for children's).
Targets (issue 13): ray CPU <= 1.05x local, wall <= 1.1x local on one 2-core machine.
"""

from __future__ import annotations

import argparse
import heapq
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from discriminator_cli.encode import EncodeOptions, encode_source
from discriminator_cli.encode.presets import load_preset
from discriminator_cli.encode.samples import generate_sample
from discriminator_cli.runner import CommandRunner, RunResult

CLOCK = os.sysconf("SC_CLK_TCK")


def _children_cpu() -> float:
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return kids.ru_utime + kids.ru_stime


class TimedRunner(CommandRunner):
    """Records (what, wall seconds, CPU seconds) of every tool run in this process. The CPU is
    the reaped children's: exact while runs do not overlap (the local and chunked engines run
    their ffmpegs one after another), approximate where they do."""

    def __init__(self) -> None:
        super().__init__()
        self.timed: list[tuple[str, float]] = []
        self.cpu: list[tuple[str, float]] = []
        self.notes: list[str] = []

    def note(self, text: str) -> None:
        self.notes.append(text)
        super().note(text)

    def run(self, args: list[str], **kwargs: object) -> RunResult:  # type: ignore[override]
        start, cpu = time.perf_counter(), _children_cpu()
        try:
            return super().run(args, **kwargs)  # type: ignore[arg-type]
        finally:
            what = str(kwargs.get("what", args[0]))
            self.timed.append((what, time.perf_counter() - start))
            self.cpu.append((what, _children_cpu() - cpu))


def step_kind(what: str) -> str:
    """'ffmpeg chunk 2 (1080p+720p) pass 1/2' -> 'ffmpeg chunk pass 1/2'; a join repair
    ('ffmpeg chunk 3 (432p) again pass 1/2') -> 'ffmpeg chunk again pass 1/2'."""
    words = what.split()
    if len(words) > 2 and words[1] == "chunk":
        again = ["again"] if "again" in words else []
        return " ".join([words[0], "chunk", *again, *words[words.index("pass"):]]
                        if "pass" in words else words[:2])
    return what


def _descendant_cpu(root: int) -> dict[str, float]:
    """CPU seconds of every live descendant of `root` (their reaped children included), by
    process name: Ray's workers are `ray::...`, its daemons (raylet, gcs_server, agents) the
    rest."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    names: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            head, tail = (entry / "stat").read_text().rsplit(")", 1)
        except OSError:
            continue
        fields = tail.split()
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        times[pid] = sum(int(v) for v in fields[11:15]) / CLOCK
        names[pid] = head.split("(", 1)[1]
    total: dict[str, float] = {}
    for pid in times:
        walk = pid
        while walk > 1 and walk != root:
            walk = parents.get(walk, 0)
        if walk == root and pid != root:
            kind = "ray workers" if names[pid].startswith("ray::") else "other processes"
            total[kind] = total.get(kind, 0.0) + times[pid]
    return total


def _own_cpu() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def run_once(engine: str, source: Path, preset: str, chunk_seconds: float, work: Path
             ) -> dict[str, object]:
    runner = TimedRunner()
    cpu0, tree0 = _own_cpu(), _descendant_cpu(os.getpid())
    start = time.perf_counter()
    result = encode_source(source, EncodeOptions(
        preset=load_preset(preset), out_dir=work / f"pkg-{engine}", cache_dir=work / engine,
        engine=engine, chunk_seconds=chunk_seconds, force=True), runner=runner)  # type: ignore[arg-type]
    wall = time.perf_counter() - start
    tree = _descendant_cpu(os.getpid())
    spread = {kind: tree[kind] - tree0.get(kind, 0.0) for kind in tree}
    cpu = _own_cpu() - cpu0 + sum(spread.values())
    return {"wall": wall, "cpu": cpu, "timed": runner.timed, "steps": runner.cpu,
            "timings": result.timings, "notes": runner.notes, "spread": spread,
            "rates": {r.name: r.measurement.average_bitrate for r in result.rungs
                      if r.measurement}}


def projection(chunk_walls: list[float], tail: float, workers: int) -> float:
    """Longest-processing-time-first onto `workers` slots, then the serial tail."""
    slots = [0.0] * workers
    for duration in sorted(chunk_walls, reverse=True):
        heapq.heapreplace(slots, slots[0] + duration)
    return max(slots) + tail


RAY_START_TRIES = 3


def start_ray() -> None:
    """A local Ray instance with one CPU slot per core. On a loaded machine its metrics agent
    can take longer than the raylet's 30 s default wait (the raylet then aborts): allow it
    5 minutes and try again if the node still does not come up."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_agent_register_timeout_ms", "300000")
    import ray

    for attempt in range(1, RAY_START_TRIES + 1):
        try:
            ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
                     logging_level="warning")
            return
        except Exception as exc:  # Ray raises a bare Exception on a startup timeout
            ray.shutdown()
            if attempt == RAY_START_TRIES:
                raise
            print(f"Ray did not start (try {attempt}: {exc}); trying again", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--preset", default="documentary")
    parser.add_argument("--chunk-seconds", type=float, default=30.0)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--engines", default="chunked,ray")
    parser.add_argument("--max-workers", type=int, default=16)
    args = parser.parse_args()
    engines = [e for e in args.engines.split(",") if e]
    width, height = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory(prefix="encode-scaling-") as name:
        work = Path(name)
        source = generate_sample(work / "source.mov", seconds=args.seconds, width=width,
                                 height=height)
        if "ray" in engines:
            start_ray()
        runs: dict[str, list[dict[str, object]]] = {e: [] for e in ["local", *engines]}
        for repeat in range(args.repeats):
            for engine in runs:  # interleaved: local, chunked, ray, local, ...
                for stale in work.glob(f"{engine}*"):  # a cold cache for every run
                    shutil.rmtree(stale)
                runs[engine].append(run_once(engine, source, args.preset, args.chunk_seconds,
                                             work))
                print(f"[{repeat + 1}/{args.repeats}] {engine}: wall "
                      f"{runs[engine][-1]['wall']:.1f} s, CPU {runs[engine][-1]['cpu']:.1f} s"
                      + "".join(f", {k} {v:.1f}" for k, v in  # type: ignore[attr-defined]
                                runs[engine][-1]["spread"].items() if v >= 0.05)
                      + "".join(f"\n    {n}" for n in runs[engine][-1]["notes"]),  # type: ignore[attr-defined]
                      flush=True)
    best = {e: min(r, key=lambda x: float(x["wall"])) for e, r in runs.items()}  # type: ignore[arg-type]
    base = best["local"]
    print(f"\nsource: {args.seconds:g} s {args.size}, preset {args.preset}, chunks "
          f"{args.chunk_seconds:g} s, {os.cpu_count()} cores (best of {args.repeats})")
    print(f"{'engine':8} {'wall s':>8} {'x local':>8} {'CPU s':>8} {'x local':>8}  bitrates")
    for engine, run in best.items():
        print(f"{engine:8} {run['wall']:8.1f} {float(run['wall']) / float(base['wall']):8.3f} "
              f"{run['cpu']:8.1f} {float(run['cpu']) / float(base['cpu']):8.3f}  {run['rates']}")
    print("\nCPU seconds by step (tools run by this process; Ray workers' runs are not here)")
    kinds: dict[str, dict[str, float]] = {}
    for engine, run in best.items():
        for what, seconds in run["steps"]:  # type: ignore[attr-defined]
            row = kinds.setdefault(step_kind(what), {})
            row[engine] = row.get(engine, 0.0) + seconds
    print(f"{'step':34}" + "".join(f"{e:>10}" for e in best))
    for kind, row in sorted(kinds.items(), key=lambda item: -max(item[1].values())):
        print(f"{kind[:34]:34}" + "".join(f"{row.get(e, 0.0):10.1f}" for e in best))
    if "chunked" in best:
        timed = best["chunked"]["timed"]
        chunk_walls: dict[str, float] = {}
        repairs = 0.0  # join repairs run on the driver after every chunk: serial
        for what, seconds in timed:  # type: ignore[union-attr]
            if what.startswith("ffmpeg chunk ") and " again " in what:
                repairs += seconds
            elif what.startswith("ffmpeg chunk "):
                key = what.split(" pass ")[0]
                chunk_walls[key] = chunk_walls.get(key, 0.0) + seconds
        joins = repairs + sum(s for w, s in timed  # type: ignore[union-attr]
                              if w == "ffmpeg join chunks")
        stages = best["chunked"]["timings"]
        tail = joins + sum(float(stages.get(k, 0.0)) for k in  # type: ignore[union-attr]
                           ("package", "validate", "probe", "hash"))
        print(f"\ncritical path: {len(chunk_walls)} chunks (longest "
              f"{max(chunk_walls.values()):.1f} s), join repairs {repairs:.1f} s, "
              "join+probe+hash+package+validate "
              f"{tail:.1f} s; one chunk per worker at a time, each worker as fast as this "
              "machine running one chunk")
        print(f"{'workers':>7} {'wall s':>8} {'speed-up vs local':>18}")
        for workers in range(1, args.max_workers + 1):
            wall = projection(list(chunk_walls.values()), tail, workers)
            print(f"{workers:7d} {wall:8.1f} {float(base['wall']) / wall:18.2f}")


if __name__ == "__main__":
    main()
