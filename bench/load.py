"""Load the shared corpus (../shared/bench/corpus.py) into a fresh course.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/balint_bench_300 \\
        python -m bench.load --corpus /tmp/corpus-300.jsonl

The database must be migrated and hold no course of this name yet
(`bench/run.py` creates a new database per size). The course is shaped like
the study's, only wider: groups of 9 students meeting 15 times; every student
consented before the first session and attended every session, so all the
text is research data. Each corpus note is one co-leader's note of one held
session, its text in one section of that note (the case section for odd
corpus indices, the group discussion for even ones, so both consent rules
are exercised); each highlight is a coded segment by the one researcher, one
segment per tag, with the study's 12 codes.

Notes are opened, written and submitted through the real services
(note_open, note_submit, with the whole identifier check), so versions,
revisions, research decisions and the audit log look as the app leaves
them. Segments are
bulk-inserted: segment_create would add an audit row per segment and nothing
the measurements read.

Prints one JSON line ("load"): rows written and the time each phase took.
"""

from __future__ import annotations

import argparse
import json
import math
import time
import zoneinfo
from datetime import date, datetime, timedelta
from datetime import time as clock

if __package__ in (None, ""):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

SESSIONS_PER_GROUP = 15
STUDENTS_PER_GROUP = 9
HELSINKI = zoneinfo.ZoneInfo("Europe/Helsinki")


def read_corpus(path: str) -> tuple[dict, list[dict]]:
    codebook, notes = None, []
    with open(path, encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            if record["type"] == "codebook":
                codebook = record
            else:
                notes.append(record)
    if codebook is None:
        raise SystemExit(f"{path}: no codebook line; is it a corpus.py file?")
    return codebook, notes


def session_start(group_index: int, number: int) -> datetime:
    """Weekly sessions in 2024; groups meet on different weekdays and hours."""
    day = date(2024, 1, 8) + timedelta(days=7 * (number - 1) + group_index % 5)
    hour = 10 + 2 * (group_index // 5 % 4)
    return datetime.combine(day, clock(hour, 0), HELSINKI)


def load(corpus_path: str) -> dict:
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from analysis.models import Code, CodedSegment
    from analysis.services import codebook_start_from_study
    from fieldnotes import services as notes
    from fieldnotes.models import NoteSection
    from sessions.models import (
        Attendance,
        CasePresentation,
        Consent,
        ConsentForm,
        Course,
        Group,
        Meeting,
        Membership,
        Participant,
        Role,
    )

    phases = {}
    t0 = time.perf_counter()
    codebook, corpus = read_corpus(corpus_path)
    if Course.objects.filter(name=common.COURSE_NAME).exists():
        raise SystemExit("The bench course already exists here; load into a fresh database (make bench does).")
    phases["read_s"] = time.perf_counter() - t0

    # --- People, course, groups, students, consent, sessions, attendance, cases
    t = time.perf_counter()
    User = get_user_model()

    def user(username, first, last):
        u = User(username=username, first_name=first, last_name=last, email=f"{username}@bench.invalid")
        u.set_unusable_password()
        u.save()
        return u

    admin = user(common.ADMIN, "Bench", "Admin")
    researcher = user(common.RESEARCHER, "Bench", "Researcher")
    leader = user("bench_leader", "Bench", "Leader")
    coleaders = [user("bench_coleader1", "Bench", "Coleader One"), user("bench_coleader2", "Bench", "Coleader Two")]
    n_groups = math.ceil(len(corpus) / SESSIONS_PER_GROUP)
    with transaction.atomic():
        course = Course.objects.create(name=common.COURSE_NAME, institution="Benchmark",
                                       starts_on=date(2024, 1, 1), ends_on=date(2024, 12, 31))
        Membership.objects.create(user=admin, course=course, role=Role.ADMIN)
        Membership.objects.create(user=researcher, course=course, role=Role.RESEARCHER)
        form = ConsentForm.objects.create(course=course, version=1, text="Consent to research use of field notes.",
                                          effective_date=date(2023, 12, 1), created_by=admin)
        groups = Group.objects.bulk_create(
            Group(course=course, name=f"Group {g + 1:03d}", default_place="Seminar room") for g in range(n_groups)
        )
        Membership.objects.bulk_create(
            Membership(user=u, course=course, group=g, role=role)
            for g in groups for u, role in ((leader, Role.LEADER), (coleaders[0], Role.COLEADER),
                                            (coleaders[1], Role.COLEADER))
        )
        # Real names that cannot occur in the corpus, so the identifier check
        # at submission flags only what it would flag in real notes.
        students = Participant.objects.bulk_create(
            Participant(course=course, group=g, pseudonym=f"S{gi * STUDENTS_PER_GROUP + k + 1}",
                        name=f"Zzyzx Qwv{gi * STUDENTS_PER_GROUP + k + 1}", study_year=3 + k % 4)
            for gi, g in enumerate(groups) for k in range(STUDENTS_PER_GROUP)
        )
        Consent.objects.bulk_create(
            Consent(participant=p, form=form, form_version=1, form_text=form.text, decision=Consent.Decision.GIVEN,
                    decided_at=datetime(2023, 12, 1, 12, 0, tzinfo=HELSINKI), method=Consent.Method.PAPER,
                    recorded_by=admin)
            for p in students
        )
        meetings = Meeting.objects.bulk_create(
            Meeting(group=groups[i // SESSIONS_PER_GROUP], number=i % SESSIONS_PER_GROUP + 1,
                    starts_at=session_start(i // SESSIONS_PER_GROUP, i % SESSIONS_PER_GROUP + 1),
                    place="Seminar room", status=Meeting.Status.HELD)
            for i in range(len(corpus))
        )
        Attendance.objects.bulk_create(
            Attendance(meeting=m, participant=students[(i // SESSIONS_PER_GROUP) * STUDENTS_PER_GROUP + k],
                       present=True)
            for i, m in enumerate(meetings) for k in range(STUDENTS_PER_GROUP)
        )
        CasePresentation.objects.bulk_create(
            CasePresentation(meeting=m, order=1, title=corpus[i]["title"][:200],
                             presenter=students[(i // SESSIONS_PER_GROUP) * STUDENTS_PER_GROUP
                                                + i % STUDENTS_PER_GROUP])
            for i, m in enumerate(meetings)
        )
    phases["course_s"] = time.perf_counter() - t

    # --- Notes, through the services a co-leader's browser calls ------------
    t = time.perf_counter()
    confirmed = 0
    target_sections = []  # (section, corpus note), in corpus order
    batch = 100
    for first in range(0, len(corpus), batch):
        with transaction.atomic():
            for i in range(first, min(first + batch, len(corpus))):
                record, meeting = corpus[i], meetings[i]
                author = coleaders[i % 2]
                note = notes.note_open(meeting=meeting, author=author)
                kind = NoteSection.Kind.CASE if record["index"] % 2 else NoteSection.Kind.DISCUSSION
                section = note.sections.get(kind=kind)
                try:
                    notes.note_submit(note=note, base_version=note.version, texts={section.pk: record["text"]},
                                      actor=author)
                except notes.IdentifiersFound as found:
                    # The author looks and confirms: the corpus has no real identifiers.
                    for hits in found.findings.values():
                        for hit in hits:
                            notes.identifier_confirm(note=note, text=hit.text, actor=author)
                            confirmed += 1
                    note.refresh_from_db()
                    notes.note_submit(note=note, base_version=note.version, texts={}, actor=author)
                section.refresh_from_db()
                if section.text != record["text"]:
                    raise SystemExit(f"{record['id']}: the saved text differs from the corpus text; "
                                     "offsets would not match.")
                target_sections.append((section, record))
    phases["notes_s"] = time.perf_counter() - t

    # --- Codebook and coded segments ------------------------------------
    t = time.perf_counter()
    codebook_start_from_study(course=course, actor=researcher)
    codes = {c.name: c for c in Code.objects.filter(course=course)}
    missing = {tag["name"] for tag in codebook["tags"]} - set(codes)
    if missing:
        raise SystemExit(f"The corpus uses codes the study's codebook lacks: {sorted(missing)}")
    segments = [
        CodedSegment(section=section, code=codes[tag], coder=researcher, start=h["start"], end=h["end"],
                     quote=h["quote"], section_revision=section.revision)
        for section, record in target_sections for h in record["highlights"] for tag in h["tags"]
    ]
    with transaction.atomic():
        CodedSegment.objects.bulk_create(segments, batch_size=2000)
    phases["segments_s"] = time.perf_counter() - t

    # The course's consent, attendance and cases were bulk-inserted before any
    # note (no signals), so every submission decided on complete facts; check.
    from fieldnotes import eligibility

    if eligibility.differences():
        raise SystemExit("The stored research decision differs from the facts after loading.")

    # --- Statistics for the planner ----------------------------------------
    # VACUUM too: a freshly bulk-loaded table has no visibility map, so
    # index-only scans would read the heap, as they would not once
    # autovacuum has passed in a running system.
    t = time.perf_counter()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
    phases["analyze_s"] = time.perf_counter() - t

    metrics = {
        "total_s": round(time.perf_counter() - t0, 2),
        **{k: round(v, 2) for k, v in phases.items()},
        "groups": n_groups,
        "participants": len(students),
        "sections": NoteSection.objects.filter(note__meeting__group__course=course).count(),
        "sections_with_text": len(target_sections),
        "research_sections": NoteSection.objects.research_eligible().filter(
            note__meeting__group__course=course).count(),
        "segments": len(segments),
        "identifier_confirmations": confirmed,
        "corpus_words": sum(r["words"] for r in corpus),
    }
    return common.emit("load", len(corpus), metrics,
                       units={"groups": "count", "participants": "count", "sections": "count",
                              "sections_with_text": "count", "research_sections": "count", "segments": "count",
                              "identifier_confirmations": "count", "corpus_words": "words"},
                       corpus={"generator": codebook["generator"], "seed": codebook["seed"]},
                       vendor=connection.vendor)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", required=True, help="a corpus.py JSON-lines file")
    args = ap.parse_args(argv)
    common.setup_django()
    load(args.corpus)


if __name__ == "__main__":
    main()
