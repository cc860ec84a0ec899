"""Opening a note section for coding: the coding page (text, segments,
codebook) through Django's test Client as a logged-in researcher.

Requests rotate over sections spread across the course, so the cost read is
that of a typical section, not of one cached in the database's buffers more
than the rest. In the same run, two floors: the bench-only trivial view
behind the same login (session and user loaded, nothing else), and raw SQL
reading the same rows the page shows (the section's text, its segments with
their codes and coders, the course's active codes).

Prints one JSON line ("coding_page").
"""

from __future__ import annotations

import argparse
import itertools

if __package__ in (None, ""):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

RAW_SQL = [
    "SELECT s.id, s.text, s.kind, s.revision FROM fieldnotes_notesection s WHERE s.id = %(section)s",
    """SELECT g.id, g.start, g."end", g.quote, g.needs_review, g.code_id, c.name, u.username, u.first_name,
              u.last_name
         FROM analysis_codedsegment g JOIN analysis_code c ON c.id = g.code_id
         JOIN auth_user u ON u.id = g.coder_id
        WHERE g.section_id = %(section)s AND g.round_id IS NULL ORDER BY g.start, g."end", g.id""",
    """SELECT c.id, c.name, c.shortcut, c.colour, k.name FROM analysis_code c
         JOIN analysis_category k ON k.id = c.category_id
        WHERE c.course_id = %(course)s AND c.retired_at IS NULL ORDER BY k."order", k.name, c.name""",
]


def run(requests: int) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    world = common.bench_world()
    course = world["course"]
    client = common.secure_client(world["researcher"])
    sections = common.sample_sections(course, 100)
    urls = [reverse("analysis:coding_page", args=[pk]) for pk in sections]
    sizes = []

    def fetch(url):
        response = client.get(url)
        if response.status_code != 200:
            raise SystemExit(f"{url} answered {response.status_code}")
        sizes.append(len(response.content))

    # Every section once untimed: templates compiled, connection open.
    for url in urls:
        fetch(url)
    rotation = itertools.cycle(urls)
    durations = common.timed(lambda: fetch(next(rotation)), repeat=requests, warmup=0)
    with CaptureQueriesContext(connection) as captured:
        fetch(urls[0])
    # Read now: the log is cleared when the next request starts.
    n_queries = len(captured)

    floor = common.timed(lambda: client.get("/bench/floor-auth"), repeat=requests)
    cursor = connection.cursor()
    sql_rotation = itertools.cycle(sections)

    def raw_sql():
        params = {"section": next(sql_rotation), "course": course.pk}
        for sql in RAW_SQL:
            cursor.execute(sql, params)
            cursor.fetchall()

    sql = common.timed(raw_sql, repeat=requests)
    metrics = {
        **common.summary_ms(durations),
        "queries": n_queries,
        "response_kb": round(sum(sizes) / len(sizes) / 1024, 1),
        **common.summary_ms(floor, "floor_view_"),
        **common.summary_ms(sql, "raw_sql_"),
    }
    metrics["ratio_to_floor_view"] = round(metrics["p50_ms"] / metrics["floor_view_p50_ms"], 2)
    metrics["ratio_to_raw_sql"] = round(metrics["p50_ms"] / metrics["raw_sql_p50_ms"], 2)
    return common.emit(
        "coding_page", common.notes_loaded(course), metrics,
        units={"queries": "count", "response_kb": "KiB", "ratio_to_floor_view": "x", "ratio_to_raw_sql": "x"},
        requests=requests, sections_sampled=len(sections),
        how="test Client, logged-in researcher, p50/p95 over requests rotating across sampled sections",
    )


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=300)
    args = ap.parse_args(argv)
    common.setup_django()
    run(args.requests)


if __name__ == "__main__":
    main()
