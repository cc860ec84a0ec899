"""All segments of one code: the segment search (`analysis:segment_search
?codes=<pk>&page=N`) through the test Client as the course's researcher.

The code is the corpus's most used one ("Patients"). Measured: the first
page, repeated; and a walk through every page in order, repeated, read as
per-page p50/p95 and as the total of one whole walk (the median walk). When
the walks would not fit the time budget (--budget), one walk visits an
evenly spread sample of the pages and the total is estimated from it
(`all_pages_estimated` says so; `pages_walked` how many). In
the same run, the floor: raw SQL reading the same rows (segment, code,
coder, section context cut out by the database, session, group, case) once
for the first page and once for all of them in one go, with no eligibility
check.

Prints one JSON line ("segments_of_one_code").
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

if __package__ in (None, ""):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

PAGE_SIZE = 25  # analysis.views.retrieval.PAGE_SIZE; read from there when it exists

# The same rows, ordered as the page orders them, read as cheaply as SQL
# can: order and cut the page on narrow rows, then cut the context out of
# the section text for the rows kept only (each substr of a long text
# de-TOASTs and decompresses all of it).
RAW_ORDERED = """
SELECT g.id, g.section_id, g.start, g."end", g.quote, g.needs_review, c.name, c.colour, u.username,
       u.first_name, u.last_name, s.kind, k."order", k.title, p.pseudonym, m.number, m.starts_at, gr.name,
       a.username AS author
  FROM analysis_codedsegment g
  JOIN analysis_code c ON c.id = g.code_id
  JOIN auth_user u ON u.id = g.coder_id
  JOIN fieldnotes_notesection s ON s.id = g.section_id
  JOIN fieldnotes_fieldnote n ON n.id = s.note_id
  JOIN auth_user a ON a.id = n.author_id
  JOIN balint_sessions_meeting m ON m.id = n.meeting_id
  JOIN balint_sessions_group gr ON gr.id = m.group_id
  LEFT JOIN balint_sessions_casepresentation k ON k.id = s.case_id
  LEFT JOIN balint_sessions_participant p ON p.id = k.presenter_id
 WHERE g.code_id = %(code)s AND g.round_id IS NULL
 ORDER BY m.starts_at, gr.name, m.id, s.kind, k."order", s.note_id, g.start, g."end", g.id
"""
RAW_SQL = """
SELECT r.*, substr(t.text, greatest(r.start - 119, 1), r.start - greatest(r.start - 120, 0)) AS before,
       substr(t.text, r.start + 1, r."end" - r.start) AS marked, substr(t.text, r."end" + 1, 120) AS after,
       length(t.text) AS text_length
  FROM ({ordered} {limit}) r JOIN fieldnotes_notesection t ON t.id = r.section_id
"""


def run(first_page_requests: int, walks: int, budget_s: float) -> dict:
    from django.db import connection
    from django.urls import reverse

    from analysis.models import CodedSegment

    try:
        from analysis.views.retrieval import PAGE_SIZE as page_size
    except ImportError:
        page_size = PAGE_SIZE
    world = common.bench_world()
    course, code = world["course"], world["code"]
    client = common.secure_client(world["researcher"])
    base = reverse("analysis:segment_search", args=[course.pk]) + f"?codes={code.pk}"
    segments = CodedSegment.objects.research(course).filter(code=code).count()
    pages = max(1, math.ceil(segments / page_size))

    def fetch(page):
        response = client.get(f"{base}&page={page}")
        if response.status_code != 200:
            raise SystemExit(f"page {page} answered {response.status_code}")
        return response

    # The last page must show the last segment: the walk really covers every row.
    if f"{segments}</strong> segment".encode() not in fetch(pages).content:
        raise SystemExit("The search page does not report the expected number of segments.")
    for _ in range(3):
        fetch(1)  # warm-up
    first = []
    t_first = time.perf_counter()
    while len(first) < first_page_requests and (len(first) < 5 or time.perf_counter() - t_first < budget_s / 4):
        t = time.perf_counter()
        fetch(1)
        first.append(time.perf_counter() - t)

    # Walk every page in order, `walks` times, if that fits the time budget;
    # otherwise once through an evenly spread sample of pages (first and last
    # included), and the total is the sample's mean times the page count.
    estimate = statistics.median(first) * pages * walks
    if estimate <= budget_s:
        walk_pages = list(range(1, pages + 1))
    else:
        walks = 1
        fit = max(10, int(budget_s / statistics.median(first)))
        step = max(1, math.ceil(pages / fit))
        walk_pages = sorted(set(range(1, pages + 1, step)) | {pages})
    per_page, walk_totals = [], []
    for _ in range(walks):
        t_walk = time.perf_counter()
        for page in walk_pages:
            t = time.perf_counter()
            fetch(page)
            per_page.append(time.perf_counter() - t)
        walk_totals.append(time.perf_counter() - t_walk)
    estimated = len(walk_pages) < pages
    if estimated:
        walk_totals = [statistics.mean(per_page) * pages]

    cursor = connection.cursor()

    def raw(limit=None):
        sql = RAW_SQL.format(ordered=RAW_ORDERED, limit=f"LIMIT {int(limit)}" if limit else "")
        cursor.execute(sql, {"code": code.pk})
        return cursor.fetchall()

    if len(raw()) != segments:
        raise SystemExit("The raw SQL floor does not read the same rows as the page.")
    raw_first = common.timed(lambda: raw(page_size), repeat=first_page_requests)
    raw_all = common.timed(raw, repeat=max(5, walks))

    metrics = {
        **common.summary_ms(first, "first_page_"),
        **common.summary_ms(per_page, "each_page_"),
        "all_pages_total_ms": round(statistics.median(walk_totals) * 1000, 1),
        "all_pages_total_min_ms": round(min(walk_totals) * 1000, 1),
        "pages": pages,
        "pages_walked": len(walk_pages),
        "all_pages_estimated": estimated,
        "segments": segments,
        **common.summary_ms(raw_first, "raw_sql_first_page_"),
        **common.summary_ms(raw_all, "raw_sql_all_rows_"),
    }
    metrics["first_page_ratio_to_raw_sql"] = round(metrics["first_page_p50_ms"] / metrics["raw_sql_first_page_p50_ms"], 1)
    metrics["all_pages_ratio_to_raw_sql"] = round(metrics["all_pages_total_ms"] / metrics["raw_sql_all_rows_p50_ms"], 1)
    return common.emit(
        "segments_of_one_code", common.notes_loaded(course), metrics,
        units={"pages": "count", "pages_walked": "count", "all_pages_estimated": "bool", "segments": "count", "first_page_ratio_to_raw_sql": "x",
               "all_pages_ratio_to_raw_sql": "x"},
        code=code.name, page_size=page_size, first_page_requests=first_page_requests, walks=walks,
        how="test Client, logged-in researcher; every page walked in order, the median walk's total",
    )


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=50, help="first-page requests")
    ap.add_argument("--walks", type=int, default=3, help="walks through every page")
    ap.add_argument("--budget", type=float, default=60.0,
                    help="seconds for the walks; beyond it, one walk over a sample of pages")
    args = ap.parse_args(argv)
    common.setup_django()
    run(args.requests, args.walks, args.budget)


if __name__ == "__main__":
    main()
