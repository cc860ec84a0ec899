"""Tidy data exports (CSV and XLSX) and the data fingerprint, on a small
hand-made course whose rows are worked out below by hand.

The study (course time zone Europe/Helsinki; everyone consented on 1 Sep):

    Group A, session 1, Tue 8 Sep 2026 00:30 Helsinki (= 7 Sep 21:30 UTC), held
        S1 presents case 1 "Yövuoro", S2 case 2 "Osastokierto"; S1, S2 present, S3 absent
    Group A, session 2, Tue 15 Sep 2026 16:00, cancelled

Codebook: Kontekstit (per case, order 0): Potilaat.
          Laukaisijat (per case, order 1): Vääryys, Arvoristiriita.
          Teemat (per session, order 2): Tunteet, Roolimallit (parent Tunteet), Vanha (retired).

Segments of the shared coding (code points, end excluded):

    a  coleader1, Yövuoro      Potilaat        [0, 9)   "Päivystys"    researcher1
    b  coleader1, Yövuoro      Tunteet         [16, 21) "🌙 oli"        researcher2 (5 code points, 6 UTF-16 units)
    c  coleader2, Yövuoro      Vääryys         [0, 7)   "Hoitaja"      researcher1
    d  coleader1, Osastokierto Arvoristiriita  [0, 9)   "Kierrolla"    researcher1
    e  coleader1, discussion   Roolimallit     [0, 26)  whole text, with combining marks
    an open double-coding round's Tunteet on the discussion: never exported

Set on cases directly: Yövuoro ← Potilaat (also from a), Osastokierto ← Vääryys.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import time
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone as dt_timezone

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from openpyxl import load_workbook

from analysis import tidy
from analysis.models import CaseCoding, Category, Code, CodedSegment, CodingRound, Memo
from conftest import helsinki
from fieldnotes import services
from fieldnotes.models import NoteSection
from sessions.models import Attendance, CasePresentation, Consent, Group, Meeting, Participant

pytestmark = pytest.mark.django_db

NIGHT = "Päivystys yöllä 🌙 oli raskas."
NIGHT_B = "Hoitaja huusi."
WARD = "Kierrolla ylilääkäri nolasi."
# "x" + COMBINING ACUTE and "n" + COMBINING DOUBLE LOW LINE have no composed
# form, so NFC keeps them as two code points each.
DISCUSSION = "Roolimallit: x\u0301 ja n\u0333 ✨"
PAYLOADS = ['=HYPERLINK("http://x")', "+1+1", "-2", "@SUM(A1)", "\t=1"]
UTC_STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


@dataclass
class Study:
    world: object
    meetings: dict
    cases: dict
    sections: dict
    codes: dict
    segments: dict


def consent(world, participant, decision, when, scope=""):
    return Consent.objects.create(
        participant=participant, form=world.form if decision != "withdrawn" else None, form_version=1,
        form_text=world.form.text, decision=decision, decided_at=when, method="paper", withdrawal_scope=scope,
        recorded_by=world.leader,
    )


def submit(meeting, author, texts_by_key):
    """Open and submit a note; keys are a case's title or "discussion"."""
    note = services.note_open(meeting=meeting, author=author)
    texts, sections = {}, {}
    for section in note.sections.select_related("case"):
        key = section.case.title if section.case_id else section.kind
        texts[section.pk] = texts_by_key.get(key, "")
        sections[key] = section
    services.note_submit(note=note, base_version=note.version, texts=texts, actor=author)
    for section in sections.values():
        section.refresh_from_db()
    return sections


@pytest.fixture
def study(world) -> Study:
    s1, s2, s3 = world.participants
    r1, r2 = world.researcher1, world.researcher2
    for p in (s1, s2, s3):
        consent(world, p, "given", helsinki(2026, 9, 1))
    a1 = Meeting.objects.create(group=world.group, number=1, starts_at=helsinki(2026, 9, 8, 0, 30),
                                status=Meeting.Status.HELD)
    a2 = Meeting.objects.create(group=world.group, number=2, starts_at=helsinki(2026, 9, 15, 16, 0),
                                status=Meeting.Status.CANCELLED, cancel_reason="Holiday")
    for p, present in ((s1, True), (s2, True), (s3, False)):
        Attendance.objects.create(meeting=a1, participant=p, present=present)
    cases = {
        "night": CasePresentation.objects.create(meeting=a1, presenter=s1, order=1, title="Yövuoro"),
        "ward": CasePresentation.objects.create(meeting=a1, presenter=s2, order=2, title="Osastokierto"),
    }
    c1 = submit(a1, world.coleader1, {"Yövuoro": NIGHT, "Osastokierto": WARD, "discussion": DISCUSSION})
    c2 = submit(a1, world.coleader2, {"Yövuoro": NIGHT_B})
    sections = {"night": c1["Yövuoro"], "night_b": c2["Yövuoro"], "ward": c1["Osastokierto"],
                "discussion": c1["discussion"]}

    cat = {
        "ctx": Category.objects.create(course=world.course, name="Kontekstit", unit="case", order=0),
        "trg": Category.objects.create(course=world.course, name="Laukaisijat", unit="case", order=1),
        "thm": Category.objects.create(course=world.course, name="Teemat", unit="session", order=2),
    }

    def code(name, category, **extra):
        return Code.objects.create(course=world.course, category=cat[category], name=name, created_by=r1, **extra)

    codes = {
        "Potilaat": code("Potilaat", "ctx", definition="Potilaaseen liittyvä tilanne.", colour="#112233"),
        "Vääryys": code("Vääryys", "trg", when_to_use="Epäoikeudenmukaisuus", when_not_to_use="Pelkkä kiire"),
        "Arvoristiriita": code("Arvoristiriita", "trg", example="“Minun arvoni…”"),
        "Tunteet": code("Tunteet", "thm"),
    }
    codes["Roolimallit"] = code("Roolimallit", "thm", parent=codes["Tunteet"])
    codes["Vanha"] = code("Vanha", "thm", retired_at=timezone.now())

    def seg(section, name, start, end, coder=r1, round=None):
        section = sections[section]
        return CodedSegment.objects.create(
            section=section, code=codes[name], coder=coder, start=start, end=end, quote=section.text[start:end],
            section_revision=section.revision, round=round,
        )

    segments = {
        "a": seg("night", "Potilaat", 0, 9),
        "b": seg("night", "Tunteet", 16, 21, coder=r2),
        "c": seg("night_b", "Vääryys", 0, 7),
        "d": seg("ward", "Arvoristiriita", 0, 9),
        "e": seg("discussion", "Roolimallit", 0, 26),
    }
    open_round = CodingRound.objects.create(course=world.course, name="Round 1", created_by=r1)
    open_round.coders.set([r1, r2])
    seg("discussion", "Tunteet", 0, 5, round=open_round)
    CaseCoding.objects.create(case=cases["night"], code=codes["Potilaat"], set_by=r1, why="Clear from both notes")
    CaseCoding.objects.create(case=cases["ward"], code=codes["Vääryys"], set_by=r1, why="Said in discussion")
    return Study(world, {"a1": a1, "a2": a2}, cases, sections, codes, segments)


def read_csv(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def read_xlsx(data: bytes):
    return load_workbook(io.BytesIO(data))


def all_output_text(course) -> str:
    """Every byte of every file, decoded: the CSVs and the XLSX's unzipped XML."""
    parts = [data.decode("utf-8-sig") for data in tidy.export_csv_files(course).values()]
    with zipfile.ZipFile(io.BytesIO(tidy.export_xlsx(course))) as z:
        parts += [z.read(name).decode("utf-8") for name in z.namelist()]
    return "\n".join(parts)


def all_cell_values(course) -> list[str]:
    """Every cell of every file as text (the XML would also hold cell references like "S2")."""
    values = [cell for data in tidy.export_csv_files(course).values() for row in read_csv(data) for cell in row]
    wb = read_xlsx(tidy.export_xlsx(course))
    values += [str(c.value) for ws in wb for row in ws.iter_rows() for c in row if c.value is not None]
    return values


# --- Rows, checked by hand -----------------------------------------------------------


def test_segment_rows_by_hand(study):
    rows = tidy.segments_rows(study.world.course)
    seg = study.segments
    assert [r["segment_id"] for r in rows] == [seg[k].pk for k in "abcde"]
    for row in rows:
        assert list(row) == tidy.SEGMENT_COLUMNS
        assert UTC_STAMP.match(row["created_utc"])
    assert {k: v for k, v in rows[1].items() if k != "created_utc"} == {
        "segment_id": seg["b"].pk, "group": "Group A", "session_number": 1,
        # 00:30 in Helsinki is still the 7th in UTC: the course's local date counts
        "session_date": "2026-09-08",
        "case_order": 1, "case_title": "Yövuoro", "presenter_pseudonym": "S1",
        "section_id": study.sections["night"].pk, "section_kind": "case", "note_author": "coleader1",
        "coder": "researcher2", "code": "Tunteet", "category": "Teemat", "start": 16, "end": 21,
        "quote": "🌙 oli", "needs_review": False,
    }
    assert rows[1]["created_utc"] == seg["b"].created_at.astimezone(dt_timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")
    assert [(r["note_author"], r["case_order"], r["presenter_pseudonym"], r["code"], r["quote"]) for r in rows] == [
        ("coleader1", 1, "S1", "Potilaat", "Päivystys"),
        ("coleader1", 1, "S1", "Tunteet", "🌙 oli"),
        ("coleader2", 1, "S1", "Vääryys", "Hoitaja"),
        ("coleader1", 2, "S2", "Arvoristiriita", "Kierrolla"),
        ("coleader1", None, None, "Roolimallit", DISCUSSION),
    ]
    assert rows[4]["section_kind"] == "discussion" and rows[4]["case_title"] is None


def test_case_rows_by_hand(study):
    rows = tidy.cases_rows(study.world.course)
    assert rows == [
        {"case_id": study.cases["night"].pk, "group": "Group A", "session_number": 1, "session_date": "2026-09-08",
         "case_order": 1, "case_title": "Yövuoro", "presenter_pseudonym": "S1",
         "case_codes": "Potilaat;Vääryys", "codes_from_segments": "Potilaat;Vääryys", "codes_set_on_case": "Potilaat",
         "segment_count": 3, "case_code_segment_count": 2},
        {"case_id": study.cases["ward"].pk, "group": "Group A", "session_number": 1, "session_date": "2026-09-08",
         "case_order": 2, "case_title": "Osastokierto", "presenter_pseudonym": "S2",
         "case_codes": "Arvoristiriita;Vääryys", "codes_from_segments": "Arvoristiriita",
         "codes_set_on_case": "Vääryys", "segment_count": 1, "case_code_segment_count": 1},
    ]
    assert list(rows[0]) == tidy.CASE_COLUMNS


def test_session_rows_by_hand(study):
    rows = tidy.sessions_rows(study.world.course)
    assert rows == [
        {"group": "Group A", "session_number": 1, "session_date": "2026-09-08", "status": "held",
         "duration_minutes": 90, "attendance_count": 2, "group_size": 3, "cases_presented": 2,
         "themes": "Roolimallit;Tunteet", "segment_count": 5},
        {"group": "Group A", "session_number": 2, "session_date": "2026-09-15", "status": "cancelled",
         "duration_minutes": 90, "attendance_count": None, "group_size": 3, "cases_presented": 0,
         "themes": "", "segment_count": 0},
    ]
    assert list(rows[0]) == tidy.SESSION_COLUMNS


def test_codebook_rows_by_hand(study):
    rows = tidy.codebook_rows(study.world.course)
    assert [(r["category"], r["category_unit"], r["code"], r["parent"], r["retired"], r["segment_count"])
            for r in rows] == [
        ("Kontekstit", "case", "Potilaat", None, False, 1),
        ("Laukaisijat", "case", "Arvoristiriita", None, False, 1),
        ("Laukaisijat", "case", "Vääryys", None, False, 1),
        ("Teemat", "session", "Roolimallit", "Tunteet", False, 1),  # the open round's segment does not count
        ("Teemat", "session", "Tunteet", None, False, 1),
        ("Teemat", "session", "Vanha", None, True, 0),
    ]
    assert rows[0] == {
        "code_id": study.codes["Potilaat"].pk, "category": "Kontekstit", "category_unit": "case",
        "code": "Potilaat", "parent": None, "definition": "Potilaaseen liittyvä tilanne.", "when_to_use": "",
        "when_not_to_use": "", "example": "", "colour": "#112233", "retired": False, "segment_count": 1,
    }
    assert (rows[2]["when_to_use"], rows[2]["when_not_to_use"]) == ("Epäoikeudenmukaisuus", "Pelkkä kiire")
    assert rows[1]["example"] == "“Minun arvoni…”"


# --- CSV ---------------------------------------------------------------------------


def test_csv_files_start_with_the_bom_and_end_rows_with_crlf(study):
    files = tidy.export_csv_files(study.world.course)
    assert list(files) == ["segments.csv", "cases.csv", "sessions.csv", "codebook.csv"]
    for name, data in files.items():
        assert data.startswith(b"\xef\xbb\xbf"), name
        body = data[3:]
        assert body.endswith(b"\r\n") and b"\n" not in body.replace(b"\r\n", b"")
    header = files["sessions.csv"][3:].split(b"\r\n")[0].decode()
    assert header == ",".join(tidy.SESSION_COLUMNS)


def test_csv_rows_read_back_with_numbers_bare_and_blanks_empty(study):
    files = tidy.export_csv_files(study.world.course)
    sessions = read_csv(files["sessions.csv"])
    assert sessions == [
        tidy.SESSION_COLUMNS,
        ["Group A", "1", "2026-09-08", "held", "90", "2", "3", "2", "Roolimallit;Tunteet", "5"],
        ["Group A", "2", "2026-09-15", "cancelled", "90", "", "3", "0", "", "0"],
    ]
    raw = files["sessions.csv"].decode("utf-8-sig")
    assert '"90"' not in raw  # numbers are not quoted as text
    segments = read_csv(files["segments.csv"])
    assert segments[1][tidy.SEGMENT_COLUMNS.index("needs_review")] == "false"


def test_to_csv_neutralises_formula_payloads():
    rows = [(p, -2) for p in PAYLOADS] + [("plain = fine", 3)]
    data = tidy.to_csv(rows, ["text", "n"])
    read = read_csv(data)
    assert [r[0] for r in read[1:]] == ["'" + p for p in PAYLOADS] + ["plain = fine"]
    assert [r[1] for r in read[1:]] == ["-2"] * 5 + ["3"]  # a number stays a number, even negative


def test_payloads_in_data_are_neutralised_in_csv_and_kept_as_strings_in_xlsx(study):
    course = study.world.course
    thm = Category.objects.get(course=course, name="Teemat")
    for i, payload in enumerate(PAYLOADS):
        Code.objects.create(course=course, category=thm, name=f"Z{i}", definition=payload, example=payload,
                            created_by=study.world.researcher1)
    CodedSegment.objects.filter(pk=study.segments["a"].pk).update(quote="@SUM(A1)")
    CasePresentation.objects.filter(pk=study.cases["night"].pk).update(title='=HYPERLINK("http://x")')

    files = tidy.export_csv_files(course)
    codebook = read_csv(files["codebook.csv"])
    definition = tidy.CODEBOOK_COLUMNS.index("definition")
    assert [r[definition] for r in codebook if r[3].startswith("Z")] == ["'" + p for p in PAYLOADS]
    segments = read_csv(files["segments.csv"])
    assert segments[1][tidy.SEGMENT_COLUMNS.index("quote")] == "'@SUM(A1)"
    assert segments[1][tidy.SEGMENT_COLUMNS.index("case_title")] == "'=HYPERLINK(\"http://x\")"
    assert read_csv(files["cases.csv"])[1][tidy.CASE_COLUMNS.index("case_title")] == "'=HYPERLINK(\"http://x\")"

    wb = read_xlsx(tidy.export_xlsx(course))
    ws = wb["codebook"]
    col = tidy.CODEBOOK_COLUMNS.index("definition") + 1
    cells = [ws.cell(row=r, column=col) for r in range(2, ws.max_row + 1)]
    payload_cells = [c for c in cells if c.value in PAYLOADS]
    assert [c.value for c in payload_cells] == PAYLOADS  # the value is kept as typed, without a quote
    assert all(c.data_type == "s" for c in payload_cells)
    quote = wb["segments"].cell(row=2, column=tidy.SEGMENT_COLUMNS.index("quote") + 1)
    title = wb["cases"].cell(row=2, column=tidy.CASE_COLUMNS.index("case_title") + 1)
    assert (quote.value, quote.data_type) == ("@SUM(A1)", "s")
    assert (title.value, title.data_type) == ('=HYPERLINK("http://x")', "s")
    # and no formula anywhere in the package
    with zipfile.ZipFile(io.BytesIO(tidy.export_xlsx(course))) as z:
        assert not any(b"<f>" in z.read(n) or b"<f " in z.read(n) for n in z.namelist())


def test_to_csv_writes_every_kind_of_value_as_before():
    rows = [("a,b", 1, True, None, 2.5, "'quoted\"", "=1"), ("line\nbreak", None, False, "", -0.5, "x", "y")]
    data = tidy.to_csv(rows, ["t", "n", "b", "none", "f", "q", "formula"])
    assert data == (
        b"\xef\xbb\xbft,n,b,none,f,q,formula\r\n"
        b'"a,b",1,true,,2.5,"\'quoted""",\'=1\r\n'
        b'"line\nbreak",,false,,-0.5,x,y\r\n'
    )
    assert tidy.to_csv([], ["only"]) == b"\xef\xbb\xbfonly\r\n"


# --- XLSX ---------------------------------------------------------------------------


def test_xlsx_opens_with_a_bold_frozen_header_per_table(study):
    wb = read_xlsx(tidy.export_xlsx(study.world.course))
    assert wb.sheetnames == ["segments", "cases", "sessions", "codebook"]
    for name, columns in [("segments", tidy.SEGMENT_COLUMNS), ("cases", tidy.CASE_COLUMNS),
                          ("sessions", tidy.SESSION_COLUMNS), ("codebook", tidy.CODEBOOK_COLUMNS)]:
        ws = wb[name]
        assert [c.value for c in ws[1]] == columns
        assert all(c.font.bold for c in ws[1])
        assert ws.freeze_panes == "A2"
        assert all(8 <= ws.column_dimensions[c.column_letter].width <= 60 for c in ws[1])
    sessions = wb["sessions"]
    assert [c.value for c in sessions[2]] == [
        "Group A", 1, "2026-09-08", "held", 90, 2, 3, 2, "Roolimallit;Tunteet", 5]
    assert [c.value for c in sessions[3]][5] is None  # attendance not recorded: an empty cell
    number = sessions.cell(row=2, column=2)
    assert number.data_type == "n"
    review = wb["segments"].cell(row=2, column=tidy.SEGMENT_COLUMNS.index("needs_review") + 1)
    assert review.value is False and review.data_type == "b"
    assert wb["segments"].dimensions == f"A1:R{1 + len(study.segments)}"


def test_xlsx_keeps_text_that_looks_like_an_error_or_a_formula_as_text(study):
    course = study.world.course
    thm = Category.objects.get(course=course, name="Teemat")
    for name in ("#N/A", "=", "=1+1", "#DIV/0!"):
        Code.objects.create(course=course, category=thm, name=name, definition=name,
                            created_by=study.world.researcher1)
    ws = read_xlsx(tidy.export_xlsx(course))["codebook"]
    col = tidy.CODEBOOK_COLUMNS.index("definition") + 1
    cells = {ws.cell(row=r, column=col).value: ws.cell(row=r, column=col) for r in range(2, ws.max_row + 1)}
    for name in ("#N/A", "=", "=1+1", "#DIV/0!"):
        assert (cells[name].value, cells[name].data_type) == (name, "s")


def test_unicode_survives_csv_and_xlsx(study):
    course = study.world.course
    expected = {"Päivystys", "🌙 oli", "Hoitaja", "Kierrolla", DISCUSSION}
    segments = read_csv(tidy.export_csv_files(course)["segments.csv"])
    quote = tidy.SEGMENT_COLUMNS.index("quote")
    assert {r[quote] for r in segments[1:]} == expected
    assert "x\u0301" in DISCUSSION and "n\u0333" in DISCUSSION  # not composed away
    assert {r[tidy.SEGMENT_COLUMNS.index("code")] for r in segments[1:]} >= {"Vääryys", "Potilaat"}
    ws = read_xlsx(tidy.export_xlsx(course))["segments"]
    assert {ws.cell(row=r, column=quote + 1).value for r in range(2, ws.max_row + 1)} == expected
    assert read_csv(tidy.export_csv_files(course)["cases.csv"])[1][5] == "Yövuoro"


def test_two_runs_are_byte_identical(study, monkeypatch):
    course = study.world.course
    csv1, xlsx1 = tidy.export_csv_files(course), tidy.export_xlsx(course)
    # A later run: zipfile stamps entries with time.time() unless told otherwise.
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 3 * 86400 + 7)
    csv2, xlsx2 = tidy.export_csv_files(course), tidy.export_xlsx(course)
    assert csv1 == csv2
    assert xlsx1 == xlsx2
    with zipfile.ZipFile(io.BytesIO(xlsx2)) as z:
        assert {info.date_time for info in z.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    props = read_xlsx(xlsx2).properties
    assert props.created == props.modified == datetime(1980, 1, 1)


# --- Consent and identity -------------------------------------------------------------


def test_withdrawal_of_past_data_removes_the_participants_data_from_every_file(study):
    course = study.world.course
    before = tidy.fingerprint(course)
    assert "Kierrolla" in all_output_text(course)
    # S2 presented "Osastokierto" and attended session 1: that case and the discussion go
    consent(study.world, study.world.participants[1], "withdrawn", timezone.now(), scope="past")

    text = all_output_text(course)
    for gone in ("Kierrolla", "Osastokierto", "Roolimallit: x", "Arvoristiriita;"):
        assert gone not in text
    assert "S2" not in all_cell_values(course) and "S1" in all_cell_values(course)
    assert [r["segment_id"] for r in tidy.segments_rows(course)] == [study.segments[k].pk for k in "abc"]
    assert [r["case_title"] for r in tidy.cases_rows(course)] == ["Yövuoro"]
    session = tidy.sessions_rows(course)[0]
    assert (session["themes"], session["segment_count"], session["cases_presented"]) == ("Tunteet", 3, 2)
    counts = {r["code"]: r["segment_count"] for r in tidy.codebook_rows(course)}
    assert counts["Arvoristiriita"] == 0 and counts["Roolimallit"] == 0 and counts["Potilaat"] == 1
    assert tidy.fingerprint(course) != before


def test_no_participant_name_email_or_study_year_in_any_output(study):
    course = study.world.course
    with CaptureQueriesContext(connection) as queries:
        text = all_output_text(course) + "".join(str(r) for r in tidy.segments_rows(course))
        tidy.fingerprint(course)
    for p in study.world.participants:
        for part in [p.name, *p.name.split(), p.email, p.email.split("@")[0]]:
            assert part not in text
    columns = tidy.SEGMENT_COLUMNS + tidy.CASE_COLUMNS + tidy.SESSION_COLUMNS + tidy.CODEBOOK_COLUMNS
    assert not [c for c in columns if "year" in c or "mail" in c or "name" in c]
    # The identity columns are never even read from the database (the pseudonym is).
    participant = '"balint_sessions_participant".'
    assert any(participant + '"pseudonym"' in q["sql"] for q in queries.captured_queries)
    for q in queries.captured_queries:
        for field in ('"name"', '"email"', '"study_year"'):
            assert participant + field not in q["sql"], q["sql"]


# --- Fingerprint ----------------------------------------------------------------------


def test_fingerprint_is_stable_for_the_same_data(study):
    course = study.world.course
    first = tidy.fingerprint(course)
    assert re.fullmatch(r"[0-9a-f]{64}", first)
    assert tidy.fingerprint(course) == first


def test_fingerprint_is_the_hash_of_the_whole_canonical_json(study):
    """The hash is taken part by part as the JSON is made: the same as hashing the whole JSON at once."""
    course = study.world.course
    Memo.objects.create(course=course, author=study.world.researcher1, title="Yö", text="Roolimallit ✨ toistuvat.")

    def whole(value):
        if callable(value):
            value = value()
        return {key: whole(item) for key, item in value.items()} if isinstance(value, dict) else value

    data = whole(tidy._fingerprint_data(course))
    assert data["memos"] and data["round_segments"] and len(data["tables"]["segments"]) == 5
    canonical = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    assert tidy.fingerprint(course) == hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _move_segment(study):
    CodedSegment.objects.filter(pk=study.segments["a"].pk).update(end=8, quote="Päivysty")


def _edit_text(study):
    NoteSection.objects.filter(pk=study.sections["discussion"].pk).update(text=DISCUSSION + " Lisäys.")


def _edit_codebook(study):
    Code.objects.filter(pk=study.codes["Vanha"].pk).update(definition="Ei enää käytössä.")


def _record_consent(study):
    # S3 was absent: no row changes, but the consent counts do
    consent(study.world, study.world.participants[2], "declined", timezone.now())


def _write_memo(study):
    Memo.objects.create(course=study.world.course, author=study.world.researcher1, text="Roolimallit toistuvat.")


def _flag_for_review(study):
    CodedSegment.objects.filter(pk=study.segments["b"].pk).update(needs_review=True)


@pytest.mark.parametrize("change", [_move_segment, _edit_text, _edit_codebook, _record_consent, _write_memo,
                                    _flag_for_review])
def test_any_change_to_what_the_report_reads_changes_the_fingerprint(study, change):
    before = tidy.fingerprint(study.world.course)
    change(study)
    assert tidy.fingerprint(study.world.course) != before


# --- Order ----------------------------------------------------------------------------


def test_groups_come_in_case_insensitive_name_order_whatever_their_ids(study):
    """Rows are read in group id order and whole groups are put in name
    order: case-insensitively, the exact name breaking ties."""
    world = study.world
    for name, title, person in (("group 0", "Yöllä", "Kaisa Laine"), ("group a", "Aamulla", "Pekka Nieminen")):
        group = Group.objects.create(course=world.course, name=name)  # after "Group A": a greater id
        presenter = Participant.objects.create(course=world.course, group=group, pseudonym=f"P-{name}",
                                               name=person, email=f"{person.split()[0]}@students.example.org")
        consent(world, presenter, "given", helsinki(2026, 9, 1))
        meeting = Meeting.objects.create(group=group, number=1, starts_at=helsinki(2026, 9, 9, 12),
                                         status=Meeting.Status.HELD)
        Attendance.objects.create(meeting=meeting, participant=presenter, present=True)
        CasePresentation.objects.create(meeting=meeting, presenter=presenter, order=1, title=title)
        section = submit(meeting, world.coleader1, {title: f"{title} oli raskasta."})[title]
        CodedSegment.objects.create(section=section, code=study.codes["Potilaat"], coder=world.researcher1,
                                    start=0, end=len(title), quote=title, section_revision=section.revision)
    course = world.course
    expected = ["group 0", "Group A", "group a"]
    assert list(dict.fromkeys(r["group"] for r in tidy.segments_rows(course))) == expected
    assert list(dict.fromkeys(r["group"] for r in tidy.cases_rows(course))) == expected
    assert list(dict.fromkeys(r["group"] for r in tidy.sessions_rows(course))) == expected
    segments = read_csv(tidy.export_csv_files(course)["segments.csv"])
    assert [row[1] for row in segments[1:]] == ["group 0"] + ["Group A"] * 5 + ["group a"]
    assert [c.value for c in read_xlsx(tidy.export_xlsx(course))["segments"]["B"][1:]] == [r[1] for r in segments[1:]]


# --- Query counts ---------------------------------------------------------------------

# Research eligibility is a stored column: no query of its own. The exports
# and the fingerprint read the segments once: the cases, sessions and
# codebook count those rows rather than asking for their counts, so the four
# tables take 3 queries fewer together than the four `*_rows` one by one.
QUERIES = {
    "segments_rows": 1,
    "cases_rows": 3,
    "sessions_rows": 3,
    "codebook_rows": 2,
    "export_csv_files": 6,
    "export_xlsx": 6,
    "fingerprint": 16,
}


@pytest.mark.parametrize("total", [5, 100])
@pytest.mark.parametrize("name", list(QUERIES))
def test_each_export_takes_a_fixed_number_of_queries(study, django_assert_num_queries, name, total):
    discussion = study.sections["discussion"]
    CodedSegment.objects.bulk_create(
        CodedSegment(section=discussion, code=study.codes["Tunteet"], coder=study.world.researcher1, start=i % 20,
                     end=i % 20 + 3, quote=discussion.text[i % 20:i % 20 + 3], section_revision=discussion.revision)
        for i in range(total - 5)
    )
    course = study.world.course
    assert len(tidy.segments_rows(course)) == total
    with django_assert_num_queries(QUERIES[name]):
        getattr(tidy, name)(course)
