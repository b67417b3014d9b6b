"""Wall time, peak RSS and spill per step, and the machine the numbers come from."""

from __future__ import annotations

import os
import platform
import resource
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

_MB = 1024 * 1024


def current_rss_bytes() -> int:
    """The process's resident set size now, from /proc/self/status (VmRSS); 0 where /proc is missing."""
    try:
        with open("/proc/self/status", "rb") as handle:
            for line in handle:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def max_rss_bytes() -> int:
    """The process's RSS high-water mark since it started (getrusage; kilobytes on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _tree_bytes(folder: Path) -> int:
    total = 0
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        total += _tree_bytes(Path(entry.path))
                    else:
                        total += entry.stat(follow_symlinks=False).st_size
                except OSError:
                    continue
    except OSError:
        pass
    return total


@dataclass
class StepResult:
    """One measured step: what it processed, how long it took and the memory it needed."""

    name: str
    rows: int = 0
    rows_label: str = ""
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    peak_rss_mb: float = 0.0
    spill_mb: float = 0.0
    group: str = "ours"
    note: str = ""
    extrapolated: bool = False

    @property
    def rows_per_second(self) -> float | None:
        return self.rows / self.seconds if self.rows and self.seconds > 0 else None

    def as_dict(self) -> dict:
        document = asdict(self)
        document["rows_per_s"] = round(self.rows_per_second) if self.rows_per_second else None
        document["seconds"] = round(self.seconds, 3)
        document["cpu_seconds"] = round(self.cpu_seconds, 3)
        document["peak_rss_mb"] = round(self.peak_rss_mb, 1)
        document["spill_mb"] = round(self.spill_mb, 1)
        return document


@dataclass
class Recorder:
    """Samples RSS (and DuckDB's spill folders) in a background thread; `step` records one StepResult each.

    The per-step peak is the highest RSS seen while the step ran (sampled every `interval` seconds, plus its
    first and last moment); getrusage's high-water mark covers the whole process.
    """

    interval: float = 0.01
    spill_dirs: list[Path] = field(default_factory=list)
    steps: list[StepResult] = field(default_factory=list)
    progress: bool = True

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._peak = 0
        self._spill = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        ticks = 0
        while not self._stop.wait(self.interval):
            rss = current_rss_bytes()
            # Walking the spill folders is slower than reading /proc: every 10th tick is enough.
            spill = sum(_tree_bytes(d) for d in list(self.spill_dirs)) if ticks % 10 == 0 else 0
            ticks += 1
            with self._lock:
                self._peak = max(self._peak, rss)
                self._spill = max(self._spill, spill)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1)

    @contextmanager
    def step(self, name: str, *, rows_label: str = "", group: str = "ours", note: str = "") -> Iterator[StepResult]:
        """Time the block; set `.rows` on the yielded result to what the step processed."""
        result = StepResult(name, rows_label=rows_label, group=group, note=note)
        with self._lock:
            self._peak = current_rss_bytes()
            self._spill = 0
        self.log(f"{name} ...")
        started, cpu_started = time.perf_counter(), time.process_time()
        try:
            yield result
        finally:
            result.seconds = time.perf_counter() - started
            result.cpu_seconds = time.process_time() - cpu_started
            with self._lock:
                result.peak_rss_mb = max(self._peak, current_rss_bytes()) / _MB
                result.spill_mb = self._spill / _MB
            self.steps.append(result)
            self.log(f"{name}: {result.seconds:.2f} s, {result.rows:,} {rows_label}, "
                     f"peak RSS {result.peak_rss_mb:,.0f} MB")

    def add(self, result: StepResult) -> StepResult:
        self.steps.append(result)
        return result

    def get(self, name: str) -> StepResult:
        return next(step for step in self.steps if step.name == name)

    def log(self, message: str) -> None:
        if self.progress:
            print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def machine() -> dict:
    """nproc, RAM, CPU model, kernel, the versions that matter for the numbers, and the load when it started."""
    import duckdb
    import pyarrow

    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
                break
    except OSError:
        pass
    try:
        import dagster
        dagster_version = dagster.__version__
    except ImportError:
        dagster_version = None
    return {
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "ram_gb": ram_gb,
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "dagster": dagster_version,
        "pyarrow": pyarrow.__version__,
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }
