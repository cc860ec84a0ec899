"""The exports a researcher takes elsewhere, called as the report job calls
them: the tidy-data CSV export of all segments (`analysis.tidy`) and the
REFI-QDA codebook (`analysis.qda.export_qdc`).

`csv_export` times `export_csv_files(course)` (all four tables, what a
"Tidy data" request writes) and, apart, the segments table alone (its rows
and its CSV). The floor is raw SQL reading the same segment rows with the
same joins, with no eligibility check.

Prints two JSON lines ("csv_export", "qdc_export").
"""

from __future__ import annotations

import argparse

if __package__ in (None, ""):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

RAW_SEGMENT_ROWS = """
SELECT g.id, g.start, g."end", g.quote, g.needs_review, g.created_at, s.id, s.kind, a.username, m.number,
       m.starts_at, gr.name, gr.id, m.id, k."order", k.title, p.pseudonym, u.username, c.name, cat.name
  FROM analysis_codedsegment g
  JOIN analysis_code c ON c.id = g.code_id
  JOIN analysis_category cat ON cat.id = c.category_id
  JOIN auth_user u ON u.id = g.coder_id
  JOIN fieldnotes_notesection s ON s.id = g.section_id
  JOIN fieldnotes_fieldnote n ON n.id = s.note_id
  JOIN auth_user a ON a.id = n.author_id
  JOIN balint_sessions_meeting m ON m.id = n.meeting_id
  JOIN balint_sessions_group gr ON gr.id = m.group_id
  LEFT JOIN balint_sessions_casepresentation k ON k.id = s.case_id
  LEFT JOIN balint_sessions_participant p ON p.id = k.presenter_id
 WHERE gr.course_id = %(course)s AND g.round_id IS NULL
 ORDER BY gr.name, gr.id, m.number, s.kind, k."order", a.username, s.id, g.start, g."end", g.id
"""


def run(repeat: int) -> list[dict]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    world = common.bench_world()
    course = world["course"]
    notes = common.notes_loaded(course)
    out = []

    try:
        from analysis import tidy
    except ImportError as error:
        out.append(common.emit("csv_export", notes, {}, skipped=f"analysis.tidy cannot be imported: {error}"))
        tidy = None
    if tidy is not None:
        files = tidy.export_csv_files(course)
        with CaptureQueriesContext(connection) as captured:
            tidy.export_csv_files(course)
        n_queries = len(captured)
        segment_table = next((t for t in tidy.TABLES if t[0] == "segments"), None)

        def segments_only():
            name, columns, build = segment_table
            return tidy.to_csv(build(course), columns)

        whole = common.timed_budget(lambda: tidy.export_csv_files(course), repeat, budget_s=20)
        seg = common.timed_budget(segments_only, repeat, budget_s=15) if segment_table else []
        cursor = connection.cursor()

        def raw():
            cursor.execute(RAW_SEGMENT_ROWS, {"course": course.pk})
            return cursor.fetchall()

        raw_rows = len(raw())
        sql = common.timed_budget(raw, repeat, budget_s=10)
        segments_csv = files.get("segments.csv", b"")
        rows = segments_csv.count(b"\r\n") - 1  # less the header (quotes hold no CRLF in this corpus)
        metrics = {
            **common.summary_ms(whole),
            **(common.summary_ms(seg, "segments_table_") if seg else {}),
            **common.summary_ms(sql, "raw_sql_"),
            "queries": n_queries,
            "segment_rows": rows,
            "raw_sql_rows": raw_rows,
            "segments_csv_kb": round(len(segments_csv) / 1024, 1),
            "all_files_kb": round(sum(len(v) for v in files.values()) / 1024, 1),
        }
        metrics["ratio_to_raw_sql"] = round(metrics["p50_ms"] / metrics["raw_sql_p50_ms"], 1)
        out.append(common.emit(
            "csv_export", notes, metrics,
            units={"queries": "count", "segment_rows": "count", "raw_sql_rows": "count", "segments_csv_kb": "KiB",
                   "all_files_kb": "KiB", "ratio_to_raw_sql": "x"},
            files=sorted(files), runs=len(whole),
            how="analysis.tidy.export_csv_files(course) in-process (all four tables); segments_table_*: "
                "that table alone",
        ))

    try:
        from analysis import qda
    except ImportError as error:
        out.append(common.emit("qdc_export", notes, {}, skipped=f"analysis.qda cannot be imported: {error}"))
        return out
    qdc = qda.export_qdc(course)
    with CaptureQueriesContext(connection) as captured:
        qda.export_qdc(course)
    n_queries = len(captured)
    durations = common.timed(lambda: qda.export_qdc(course), repeat=max(repeat, 50), warmup=3)
    cursor = connection.cursor()

    def raw_codebook():
        cursor.execute("SELECT * FROM analysis_code WHERE course_id = %s", [course.pk])
        cursor.fetchall()
        cursor.execute("SELECT * FROM analysis_category WHERE course_id = %s", [course.pk])
        cursor.fetchall()

    sql = common.timed(raw_codebook, repeat=max(repeat, 50))
    metrics = {**common.summary_ms(durations), **common.summary_ms(sql, "raw_sql_"), "queries": n_queries,
               "size_kb": round(len(qdc) / 1024, 1)}
    out.append(common.emit("qdc_export", notes, metrics, units={"queries": "count", "size_kb": "KiB"},
                           repeat=max(repeat, 50), how="analysis.qda.export_qdc(course) in-process"))
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args(argv)
    common.setup_django()
    run(args.repeat)


if __name__ == "__main__":
    main()
