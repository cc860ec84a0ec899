"""What every benchmark shares: Django set-up on the bench database, timing,
percentiles, and the one JSON line each benchmark prints.

A benchmark is not a test: it prints numbers and asserts nothing about time.
Every script runs against the database named by DATABASE_URL, which
`bench/run.py` creates, loads (`bench/load.py`) and analyses first.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COURSE_NAME = "Benchmark course"
RESEARCHER = "bench_researcher"
ADMIN = "bench_admin"
# The most used code in the corpus: "all segments of one code" is measured on
# the largest one, the worst case for paging and for the page's filters.
BUSIEST_CODE = "Patients"


def setup_django(settings: str = "bench.settings") -> None:
    """Configure Django with the bench settings (the project's settings plus
    the floor views). Needs DATABASE_URL pointing at a bench database."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ["DJANGO_SETTINGS_MODULE"] = settings
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-" + "k" * 50)
    import django

    django.setup()


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def summary_ms(seconds: list[float], prefix: str = "") -> dict[str, float]:
    """p50, p95 and max of durations given in seconds, in milliseconds."""
    return {
        f"{prefix}p50_ms": round(percentile(seconds, 50) * 1000, 3),
        f"{prefix}p95_ms": round(percentile(seconds, 95) * 1000, 3),
        f"{prefix}max_ms": round(max(seconds) * 1000, 3),
    }


def timed(fn, repeat: int, warmup: int = 3) -> list[float]:
    """Call fn() warmup times untimed, then `repeat` times; durations in seconds."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def timed_budget(fn, repeat: int, budget_s: float, minimum: int = 3, warmup: int = 1) -> list[float]:
    """Like timed(), but stops early (after at least `minimum` runs) once
    `budget_s` seconds have gone, so a slow case keeps the run short."""
    for _ in range(warmup):
        fn()
    out = []
    start = time.perf_counter()
    while len(out) < repeat and (len(out) < minimum or time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


_COMMIT = None


def git_commit() -> str:
    """The commit measured, with "+dirty" when the tree has uncommitted
    changes (read-only git calls: no index refresh, no lock)."""
    global _COMMIT
    if _COMMIT is None:
        try:
            head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True,
                                  text=True, check=True).stdout.strip()
            dirty = subprocess.run(["git", "--no-optional-locks", "diff", "--quiet", "HEAD"], cwd=ROOT,
                                   capture_output=True).returncode != 0
            _COMMIT = head + ("+dirty" if dirty else "")
        except (OSError, subprocess.CalledProcessError):
            _COMMIT = "unknown"
    return _COMMIT


def emit(name: str, notes: int, metrics: dict, units: dict | None = None, **extra) -> dict:
    """Print the benchmark's one JSON line and return it.

    `units` maps metric names to units; a metric named *_ms is in
    milliseconds, *_s in seconds, *_mb in MiB, *_rps in requests per second
    unless said otherwise.
    """
    units = dict(units or {})
    for key in metrics:
        if key not in units:
            for suffix, unit in (("_ms", "ms"), ("_s", "s"), ("_mb", "MiB"), ("_rps", "requests/s"),
                                 ("_bytes", "bytes")):
                if key.endswith(suffix):
                    units[key] = unit
                    break
    line = {
        "name": name,
        "notes": notes,
        "metrics": metrics,
        "units": units,
        "commit": git_commit(),
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        # Other work on the machine shows here; numbers taken under load are slower.
        "loadavg_1m": round(os.getloadavg()[0], 2),
        **extra,
    }
    print(json.dumps(line, ensure_ascii=False, sort_keys=False), flush=True)
    return line


def bench_world():
    """The loaded course and who works in it, looked up by the names load.py gives them."""
    from django.contrib.auth import get_user_model

    from analysis.models import Code
    from sessions.models import Course

    course = Course.objects.get(name=COURSE_NAME)
    users = get_user_model().objects
    return {
        "course": course,
        "researcher": users.get(username=RESEARCHER),
        "admin": users.get(username=ADMIN),
        "code": Code.objects.get(course=course, name=BUSIEST_CODE),
    }


def notes_loaded(course) -> int:
    from fieldnotes.models import FieldNote

    return FieldNote.objects.filter(meeting__group__course=course).count()


def sample_sections(course, n: int) -> list[int]:
    """Up to n research sections with text, spread evenly over the course (deterministic)."""
    from fieldnotes.models import NoteSection

    ids = list(
        NoteSection.objects.filter(note__meeting__group__course=course).exclude(text="")
        .order_by("pk").values_list("pk", flat=True)
    )
    if len(ids) <= n:
        return ids
    step = len(ids) / n
    return [ids[int(i * step)] for i in range(n)]


def secure_client(user):
    """A test Client logged in as `user` whose GETs arrive over HTTPS (so
    SECURE_SSL_REDIRECT, on with DEBUG off, does not redirect them)."""
    from django.test import Client

    class SecureClient(Client):
        def get(self, path, data=None, secure=True, **extra):
            return super().get(path, data, secure=secure, **extra)

    client = SecureClient()
    # The backend a login through the form records (the first one listed,
    # force_login's default, only checks lockouts).
    client.force_login(user, backend="balint.auth.ModelBackend")
    return client


def rss_now_mb() -> float:
    return _proc_status_kb("VmRSS") / 1024


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM), MiB."""
    return _proc_status_kb("VmHWM") / 1024


def _proc_status_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0
