"""Benchmark of whole runs: wall time, start-up, ticks, peak memory, training speed.

    python scripts/benchmark.py                 # default scenario: 3 timed runs, 1 memory run
    python scripts/benchmark.py --runs 5 --memory-runs 3 --employees-num 20

Each run is a fresh `python main.py --quiet` process, so every run pays TensorFlow's
start-up. The timed runs are not watched. The memory runs are: the summed proportional set
size (PSS) of the run's whole process tree (main, resource tracker, fork server, MNIST
loader, employees, users, network) is read from /proc/PID/smaps_rollup, and the run's
figure is the largest sum seen, a lower bound of the true peak. Reading smaps_rollup of one
TensorFlow process costs tens of milliseconds of CPU here (the kernel walks its page
tables), so after each sample the watcher waits three times the CPU time the sample took
(at least 0.2 s), using at most about a quarter of one core; the memory runs are slower for
it and their times are not used. With a hundred busy processes on two cores, one sample
takes seconds of wall time.

PSS charges a shared page to the processes that map it, in equal parts. The MNIST block in
/dev/shm is written by a loader process that exits, so only the pages that live processes
touched are charged to anyone; the memory runs therefore also report the block's full size
and a conservative total that adds it (this counts the touched pages twice).

Prints each run and the medians; nothing is hard-coded.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from simulation.config import add_knob_arguments, flag_name  # noqa: E402

MB = 2**20


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except OSError:
        return []


def tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children(p))
    return out


ROLLUP_FIELDS = ("Pss", "Pss_Anon", "Pss_File", "Pss_Shmem")


def pss_fields(pid: int) -> dict[str, int]:
    """PSS of a process in bytes, and its anonymous, file-backed and shmem parts (the
    parts need Linux 5.x; they are 0 where the kernel does not report them)."""
    out = dict.fromkeys(ROLLUP_FIELDS, 0)
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                name, _, rest = line.partition(":")
                if name in out:
                    out[name] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return out


def command_line(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", errors="replace")
    except OSError:
        return ""


def shm_blocks(pid: int) -> dict[str, int]:
    """Sizes of the /dev/shm files that ``pid`` maps (the MNIST block), by path."""
    sizes = {}
    try:
        with open(f"/proc/{pid}/maps") as f:
            for line in f:
                parts = line.split(None, 5)
                if len(parts) == 6 and parts[5].startswith("/dev/shm/"):
                    path = parts[5].strip()
                    if path not in sizes:
                        sizes[path] = os.stat(path).st_size
    except OSError:
        pass
    return sizes


def mapping_kind(name: str) -> str:
    """What a mapping of /proc/PID/smaps holds, from its name."""
    if name == "[heap]":
        return "malloc heap ([heap])"
    if not name:
        return "anonymous (Python objects, TF and malloc arenas, stacks)"
    if name.startswith("/dev/shm/"):
        return "shared MNIST block (/dev/shm)"
    if "libtensorflow" in name or "/tensorflow/" in name:
        return "TensorFlow libraries (files)"
    if name.startswith("["):
        return "other kernel mappings ([stack], [vdso], ...)"
    return "other files (Python, numpy, other libraries)"


SMAPS_FIELDS = ("Pss", "Private_Dirty", "Private_Clean", "Shared_Dirty", "Shared_Clean")


def smaps_breakdown(pid: int) -> dict[str, dict[str, int]]:
    """kB of each SMAPS_FIELDS field per mapping_kind, from /proc/PID/smaps (slow: read it
    for a few processes only)."""
    out: dict[str, dict[str, int]] = {}
    kind = None
    try:
        with open(f"/proc/{pid}/smaps") as f:
            for line in f:
                head = line.split(None, 1)[0]
                if "-" in head and not head.endswith(":"):
                    parts = line.split(None, 5)
                    kind = mapping_kind(parts[5].strip() if len(parts) == 6 else "")
                    out.setdefault(kind, dict.fromkeys(SMAPS_FIELDS, 0))
                elif head[:-1] in SMAPS_FIELDS and kind is not None:
                    out[kind][head[:-1]] += int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return out


def role(pid: int, root: int, parent_of: dict[int, int], forkserver: int | None) -> str:
    """What a process of the run is. Processes forked by the fork server keep its command
    line, so they are told apart by their parent."""
    if pid == root:
        return "main"
    if pid == forkserver:
        return "fork server"
    if forkserver is not None and parent_of.get(pid) == forkserver:
        return "forked (employees, users, network)"
    cmd = command_line(pid)
    if "resource_tracker" in cmd:
        return "resource tracker"
    if "_loader_main" in cmd:
        return "MNIST loader"
    return "other"


@dataclass
class MemoryWatcher:
    """Samples the summed PSS of a process tree; keeps the largest sample and its parts."""

    root: int
    min_interval: float = 0.2
    breakdown: bool = False  # at each new peak, also read full smaps of 3 processes
    peak_breakdown: dict[str, dict] = field(default_factory=dict)
    peak: int = 0
    peak_at: float = 0.0
    peak_parts: dict[str, list[int]] = field(default_factory=dict)
    peak_kinds: dict[str, int] = field(default_factory=dict)
    shm: dict[str, int] = field(default_factory=dict)
    samples: int = 0
    started: float = field(default_factory=time.monotonic)
    _next: float = 0.0

    def poll(self) -> None:
        """Takes a sample if it is time to."""
        now = time.monotonic()
        if now < self._next:
            return
        cpu_started = time.process_time()
        parent_of: dict[int, int] = {}
        todo = [self.root]
        pids = []
        while todo:
            p = todo.pop()
            pids.append(p)
            for c in children(p):
                parent_of[c] = p
                todo.append(c)
        fields = {p: pss_fields(p) for p in pids}
        sizes = {p: f["Pss"] for p, f in fields.items()}
        total = sum(sizes.values())
        if not self.shm:
            self.shm = shm_blocks(self.root)
        self.samples += 1
        if total > self.peak:
            forkserver = next((p for p in pids if parent_of.get(p) == self.root
                               and "forkserver" in command_line(p)), None)
            parts: dict[str, list[int]] = {}
            parts_pids: dict[str, list[tuple[int, int]]] = {}
            for p, size in sizes.items():
                name = role(p, self.root, parent_of, forkserver)
                parts.setdefault(name, []).append(size)
                parts_pids.setdefault(name, []).append((size, p))
            self.peak, self.peak_parts = total, parts
            if self.breakdown:
                self.peak_breakdown = self._breakdown(parts_pids, forkserver)
            self.peak_kinds = {k: sum(f[k] for f in fields.values()) for k in ROLLUP_FIELDS[1:]}
            self.peak_at = now - self.started
        took = time.process_time() - cpu_started  # CPU, not wall: others may starve us
        self._next = time.monotonic() + max(self.min_interval, 3 * took)

    def _breakdown(self, parts_pids: dict[str, list[tuple[int, int]]],
                   forkserver: int | None) -> dict[str, dict]:
        """Full smaps of main, the fork server and the median forked process."""
        chosen = {"main": self.root}
        if forkserver is not None:
            chosen["fork server"] = forkserver
        forked = sorted(parts_pids.get("forked (employees, users, network)", []))
        if forked:
            chosen["median forked process"] = forked[len(forked) // 2][1]
        return {name: smaps_breakdown(pid) for name, pid in chosen.items()}

    def figures(self, employees: int) -> dict:
        shm = sum(self.shm.values())
        parts = {
            name: {"processes": len(sizes), "pss_mb": round(sum(sizes) / MB, 1),
                   "median_pss_mb": round(statistics.median(sizes) / MB, 1)}
            for name, sizes in sorted(self.peak_parts.items())
        }
        return {
            "peak_pss_mb": round(self.peak / MB, 1),
            "peak_pss_mb_per_employee": round(self.peak / MB / employees, 1),
            "shm_block_mb": round(shm / MB, 1),
            "peak_pss_plus_shm_mb": round((self.peak + shm) / MB, 1),
            "peak_pss_plus_shm_mb_per_employee": round((self.peak + shm) / MB / employees, 1),
            "peak_pss_anon_mb": round(self.peak_kinds.get("Pss_Anon", 0) / MB, 1),
            "peak_pss_file_mb": round(self.peak_kinds.get("Pss_File", 0) / MB, 1),
            "peak_pss_shmem_mb": round(self.peak_kinds.get("Pss_Shmem", 0) / MB, 1),
            "peak_at_seconds": round(self.peak_at, 1),
            "samples": self.samples,
            "peak_parts": parts,
            "peak_breakdown_kb": self.peak_breakdown,
        }


def one_run(argv: list[str], workdir: str, watch: bool, env: dict[str, str] | None = None,
            breakdown: bool = False) -> tuple[dict, MemoryWatcher | None, float]:
    """One `main.py --quiet` run; its summary, its memory watcher (if watched), its time."""
    results = os.path.join(workdir, "results.json")
    if os.path.exists(results):
        os.remove(results)
    command = [sys.executable, os.path.join(ROOT, "main.py"), "--quiet", "--no-run-dir",
               "--results", results, *argv]
    started = time.monotonic()
    with tempfile.TemporaryFile(mode="w+") as stderr:
        proc = subprocess.Popen(command, cwd=workdir, stdout=subprocess.DEVNULL, stderr=stderr,
                                text=True, env=env)
        watcher = MemoryWatcher(proc.pid, breakdown=breakdown) if watch else None
        while proc.poll() is None:
            if watcher is not None:
                watcher.poll()
                time.sleep(0.02)
            else:
                time.sleep(0.05)
        elapsed = time.monotonic() - started
        if proc.returncode not in (0, 1):
            stderr.seek(0)
            raise SystemExit(f"run failed ({proc.returncode}): {stderr.read()[-2000:]}")
    with open(results) as f:
        return json.load(f), watcher, elapsed


def run_row(s: dict, elapsed: float) -> dict:
    return {
        "finished": s["finished"],
        "process_seconds": round(elapsed, 2),
        "wall_seconds": s["wall_seconds"],
        "startup_seconds": s["startup_seconds"],
        "protocol_seconds": s.get("protocol_seconds"),
        "ticks": s["ticks"],
        "chain_length": s["chain"]["length"],
        "forks": s["forks"],
        "ms_per_sample": s["training"]["median_ms_per_sample"],
        "first_stage_seconds": s["training"]["median_first_stage_seconds"],
        "tip_hash": s["chain"]["tip_hash"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="timed runs (default 3)")
    parser.add_argument("--memory-runs", type=int, default=1,
                        help="watched runs for the memory figures (default 1)")
    parser.add_argument("--breakdown", action="store_true",
                        help="memory runs: at each new peak also read the full smaps of main, "
                             "the fork server and the median forked process, and print what "
                             "their memory is (slower sampling)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    add_knob_arguments(parser)
    args = parser.parse_args()
    if args.runs < 1 or args.memory_runs < 0:
        parser.error("--runs must be at least 1 and --memory-runs at least 0")
    argv = []
    for name, value in vars(args).items():
        if name not in ("runs", "memory_runs", "json", "breakdown") and value is not None:
            argv += [flag_name(name.upper()), str(value)]
    rows, memory_rows = [], []
    knobs: dict = {}
    with tempfile.TemporaryDirectory() as workdir:
        if args.log_file is None:
            argv += ["--log-file", os.path.join(workdir, "pot_sim.log")]
        for i in range(args.runs):
            s, _, elapsed = one_run(argv, workdir, watch=False)
            knobs = s["scenario"]
            row = {"run": i + 1, **run_row(s, elapsed)}
            rows.append(row)
            print(f"run {row['run']}: " + ", ".join(f"{k} {v}" for k, v in row.items()
                                                     if k != "run"), flush=True)
        for i in range(args.memory_runs):
            s, watcher, _ = one_run(argv, workdir, watch=True, breakdown=args.breakdown)
            assert watcher is not None
            memory = watcher.figures(s["scenario"]["EMPLOYEES_NUM"])
            memory_rows.append(memory)
            print(f"memory run {i + 1}: peak PSS of all processes {memory['peak_pss_mb']} MB "
                  f"({memory['peak_pss_mb_per_employee']} MB per employee) at "
                  f"{memory['peak_at_seconds']} s; with the {memory['shm_block_mb']} MB "
                  f"shared MNIST block counted in full {memory['peak_pss_plus_shm_mb']} MB "
                  f"({memory['peak_pss_plus_shm_mb_per_employee']} MB per employee); "
                  f"{memory['samples']} samples", flush=True)
            print(f"    at the peak: anonymous {memory['peak_pss_anon_mb']} MB, file-backed "
                  f"{memory['peak_pss_file_mb']} MB, shmem {memory['peak_pss_shmem_mb']} MB",
                  flush=True)
            for name, part in memory["peak_parts"].items():
                print(f"    at the peak: {name}: {part['processes']} processes, "
                      f"{part['pss_mb']} MB (median {part['median_pss_mb']} MB)", flush=True)
            for name, kinds in memory["peak_breakdown_kb"].items():
                print(f"    {name}, MB of " + ", ".join(SMAPS_FIELDS) + ":")
                for kind, values in sorted(kinds.items(), key=lambda kv: -kv[1]["Pss"]):
                    if values["Pss"] >= 512:
                        print(f"        {kind:58s} " + " ".join(
                            f"{values[f] / 1024:7.1f}" for f in SMAPS_FIELDS))
    skip = ("run", "tip_hash", "finished")
    medians = {k: statistics.median(r[k] for r in rows if r[k] is not None)
               for k in rows[0] if k not in skip and any(r[k] is not None for r in rows)}
    memory_median = {k: statistics.median(m[k] for m in memory_rows)
                     for k in (memory_rows[0] if memory_rows else {})
                     if k not in ("peak_parts", "peak_breakdown_kb")}
    print(f"scenario: {knobs['EMPLOYEES_NUM']} employees, target "
          f"{knobs['TARGET_BLOCKCHAIN_LENGTH']} blocks, seed {knobs['SEED']}, trainer "
          f"{knobs['TRAINER']}; {args.runs} timed runs, {args.memory_runs} memory runs, on "
          f"{os.cpu_count()} CPUs")
    print("median: " + ", ".join(f"{k} {v:g}" for k, v in medians.items()))
    if memory_median:
        print("memory median: " + ", ".join(f"{k} {v:g}" for k, v in memory_median.items()))
    same = len({r["tip_hash"] for r in rows}) == 1
    print(f"same tip hash in every run: {same} ({rows[0]['tip_hash']})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"scenario": knobs, "runs": rows, "median": medians,
                       "memory_runs": memory_rows, "memory_median": memory_median}, f,
                      indent=2)
    return 0 if same and all(r["finished"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
