"""The per-course report: wall time and peak memory, each build in a fresh
child process (so one build's memory is not another's, and Django's own
start-up is known and reported apart).

Two builds:
- `report`: `analysis.report.build_report(course, include_memos=True)`,
  the summary report in both its formats (HTML and PDF), with the time of
  each stage it reports through `progress`;
- `report_all_kinds`: `analysis.jobs.build` of a report asking for every
  kind (summary report, tidy data CSV + XLSX, .qdpx, .qdc), which is what a
  worker runs when everything is requested (it reads in one snapshot).

Peak memory is the child's VmHWM (the kernel's high-water mark of resident
memory), checked against getrusage(RUSAGE_CHILDREN).ru_maxrss in the parent.

Prints two JSON lines ("report", "report_all_kinds").
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import common


def child(what: str) -> None:
    """Runs in the child: build once, print one JSON object on stdout."""
    t_start = time.perf_counter()
    common.setup_django()
    from analysis.models import Report

    world = common.bench_world()
    course = world["course"]
    notes = common.notes_loaded(course)
    rss_ready = common.rss_now_mb()
    hwm_ready = common.peak_rss_mb()
    stages = []
    t0 = time.perf_counter()

    def progress(percent, stage):
        # The high-water mark so far tells which stage set the peak.
        stages.append((round(time.perf_counter() - t0, 3), int(percent), str(stage), round(common.peak_rss_mb(), 1)))

    if what == "report":
        from analysis.report import build_report

        files = build_report(course, include_memos=True, progress=progress)
    else:
        from analysis import jobs

        report = Report(course=course, requested_by=world["admin"], kinds=[k.value for k in Report.Kind],
                        include_memos=True)
        files = jobs.build(report, progress).files
    wall = time.perf_counter() - t0
    print(json.dumps({
        "notes": notes,
        "wall_s": wall,
        "startup_s": t0 - t_start,
        "rss_ready_mb": rss_ready,
        "hwm_ready_mb": hwm_ready,
        "peak_mb": common.peak_rss_mb(),
        "files": {name: len(content) for name, content in files.items()},
        "stages": stages,
    }))


def measure(what: str) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "bench.report", "--child", what], cwd=common.ROOT,
                          capture_output=True, text=True)
    outer = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"The {what} build failed:\n{proc.stderr[-4000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is the largest child so far (KiB on Linux): valid
    # for this child only when it exceeds every earlier one.
    result["ru_maxrss_children_mb"] = round(after / 1024, 1) if after > before else None
    result["process_s"] = outer
    return result


def stage_times(stages: list, wall: float, peak: float) -> tuple[dict, dict]:
    """Seconds spent in each reported stage (until the next report, or the
    end), and the peak memory (MiB) reached by the end of each stage."""
    seconds, peaks = {}, {}
    for i, (at, _percent, stage, _hwm) in enumerate(stages):
        end = stages[i + 1][0] if i + 1 < len(stages) else wall
        if stage.lower().endswith("done") or stage.lower().startswith("saving"):
            continue
        seconds[stage] = round(seconds.get(stage, 0) + end - at, 3)
        peaks[stage] = stages[i + 1][3] if i + 1 < len(stages) else round(peak, 1)
    return seconds, peaks


def run() -> list[dict]:
    lines = []
    notes = common.notes_loaded(common.bench_world()["course"])
    for what in ("report", "report_all_kinds"):
        try:
            if what == "report":
                import analysis.report  # noqa: F401
            else:
                import analysis.jobs  # noqa: F401
        except ImportError as error:
            lines.append(common.emit(what, notes, {}, skipped=f"cannot import the builder: {error}"))
            continue
        r = measure(what)
        metrics = {
            "wall_s": round(r["wall_s"], 3),
            "peak_mb": round(r["peak_mb"], 1),
            "peak_above_startup_mb": round(r["peak_mb"] - r["rss_ready_mb"], 1),
            "startup_rss_mb": round(r["rss_ready_mb"], 1),
            "ru_maxrss_children_mb": r["ru_maxrss_children_mb"],
            "django_startup_s": round(r["startup_s"], 3),
            "ms_per_note": round(r["wall_s"] * 1000 / max(1, r["notes"]), 2),
            "output_kb": round(sum(r["files"].values()) / 1024, 1),
        }
        seconds, peaks = stage_times(r["stages"], r["wall_s"], r["peak_mb"])
        lines.append(common.emit(
            what, r["notes"], metrics,
            units={"ru_maxrss_children_mb": "MiB", "ms_per_note": "ms/note", "output_kb": "KiB"},
            stages_s=seconds, peak_mb_after_stage=peaks,
            files={k: v for k, v in sorted(r["files"].items())},
            how="a fresh child process per build; wall_s excludes Django start-up; peak_mb is the child's VmHWM",
        ))
    return lines


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--child", choices=["report", "report_all_kinds"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.child)
    else:
        common.setup_django()
        run()


if __name__ == "__main__":
    main()
