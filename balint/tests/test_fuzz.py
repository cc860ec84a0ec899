"""Oversized and malformed input: a clear 400/413 (or the form again, with its
errors), never a 500, and nothing half-written.

First the cases that once broke something, by name; then hypothesis, which
throws generated bodies, field values and query strings at the JSON endpoints
(autosave, segment create/update) and the main forms. Each generated request
runs in a transaction that is rolled back, so every example meets the same
data; a refused request must leave the row counts and update times as they were.

The test client re-raises a view's exception, so a 500 fails with its traceback.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.apps import apps
from django.contrib.sessions.models import Session
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analysis.models import CodedSegment, Memo
from conftest import PASSWORD
from fieldnotes.models import MAX_SECTION_CHARS, NoteSection
from sessions.models import Meeting

from .test_security_requests import db_changes, db_snapshot

FUZZ = settings(max_examples=60, deadline=None, database=None, derandomize=False,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large, HealthCheck.large_base_example])
FUZZ_JSON = settings(FUZZ, max_examples=100)
MB = 1024 * 1024


@pytest.fixture
def objects(world):
    from sessions.tests.test_url_matrix import Objects

    objects = Objects(world)
    objects.section.text = "Äiti kertoi 😀 että lääkäri ei kuunnellut. The patient called every night."
    objects.section.save()
    objects.scheduled = Meeting.objects.create(group=world.group, number=5,
                                               starts_at=timezone.now() + timedelta(days=7))
    return objects


def fast_state() -> tuple:
    """Row counts and the latest update of every table, in one query."""
    parts = []
    for model in apps.get_models():
        if model is Session or model._meta.proxy:
            continue
        table = connection.ops.quote_name(model._meta.db_table)
        parts.append(f"(SELECT COUNT(*) FROM {table})")
        for field in ("updated_at", "version", "revision"):
            if any(f.name == field for f in model._meta.concrete_fields):
                parts.append(f"(SELECT MAX({connection.ops.quote_name(field)}) FROM {table})")
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(parts))
        return tuple(cursor.fetchone())


def rolled_back(request):
    """Make the request in a transaction that is undone; returns (response, state before, state after)."""
    with transaction.atomic():
        before = fast_state()
        response = request()
        after = fast_state()
        transaction.set_rollback(True)
    return response, before, after


def assert_json_refusal(response):
    assert response["Content-Type"].startswith("application/json"), response.content[:200]
    body = response.json()
    assert body["error"] and len(body["message"]) > 10, body


# --- By name ---------------------------------------------------------------------------


def _autosave(client, note, body, content_type="application/json"):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return client.post(reverse("fieldnotes:note_autosave", args=[note.pk]), data=data, content_type=content_type)


BAD_JSON_BODIES = [
    b"", b"{", b"\xff\xfe\x00\x00", b"[1, 2]", b"null", b'"text"', b"{}",
    b"[" * 50_000 + b"]" * 50_000,  # nested deeper than the parser's recursion limit
    b'{"version": Infinity, "sections": {}}', b'{"version": NaN, "sections": {}}',
    b'{"version": -1, "sections": {}}', b'{"version": "zero", "sections": {}}',
    b'{"version": [0], "sections": {}}', b'{"version": 0, "sections": []}', b'{"version": 0, "sections": "x"}',
    b'{"version": 0, "sections": {"-1": "x"}}', b'{"version": 0, "sections": {"99999999999999999999999": "x"}}',
    b'{"version": 0, "sections": {"abc": "x"}}',
]


@pytest.mark.parametrize("body", BAD_JSON_BODIES, ids=lambda b: repr(b[:24]))
def test_autosave_refuses_malformed_json_clearly(client, world, objects, body):
    client.force_login(world.coleader1)
    response, before, after = rolled_back(lambda: _autosave(client, objects.draft, body))
    assert response.status_code in (400, 409), response.status_code
    assert_json_refusal(response)
    assert before == after


def test_autosave_strips_what_cannot_be_stored(client, world, objects):
    """NUL, other control characters and lone surrogates (JSON can carry "\\ud800") are dropped, not a 500."""
    client.force_login(world.coleader1)
    discussion = objects.draft.sections.get(kind="discussion")
    body = json.dumps({"version": 0, "sections": {str(discussion.pk): "a\x00b\ud800c\x07d\udfffe"}})
    response = _autosave(client, objects.draft, body)
    assert response.status_code == 200
    discussion.refresh_from_db()
    assert discussion.text == "abcde"


def test_autosave_of_a_million_characters_is_refused_with_its_size(client, world, objects):
    client.force_login(world.coleader1)
    discussion = objects.draft.sections.get(kind="discussion")
    before = db_snapshot()
    response = _autosave(client, objects.draft, {"version": 0, "sections": {str(discussion.pk): "x" * 1_000_000}})
    assert response.status_code == 413
    assert_json_refusal(response)
    assert f"{MAX_SECTION_CHARS:,}" in response.json()["message"]
    assert db_changes(before, db_snapshot()) == {}


def test_note_form_with_a_million_characters_is_refused_and_keeps_the_text(client, world, objects):
    client.force_login(world.coleader1)
    discussion = objects.draft.sections.get(kind="discussion")
    before = db_snapshot()
    text = "Kept " + "x" * 1_000_000
    response = client.post(reverse("fieldnotes:note_edit", args=[objects.draft.pk]),
                           {"version": 0, f"section-{discussion.pk}": text})
    assert response.status_code == 400
    assert "at most" in response.text and text in response.text  # the message, and the typed text back
    assert db_changes(before, db_snapshot()) == {}


@pytest.mark.parametrize("content_type, wants_json", [
    ("application/json", True), ("application/x-www-form-urlencoded", False), ("text/plain", False),
])
def test_a_body_over_the_limit_gets_413_before_anything_reads_it(client, world, objects, content_type, wants_json):
    client.force_login(world.coleader1)
    before = db_snapshot()
    huge = b"x" * (3 * MB)
    response = client.post(reverse("fieldnotes:note_autosave", args=[objects.draft.pk]), data=huge,
                           content_type=content_type)
    assert response.status_code == 413
    if wants_json:
        assert_json_refusal(response)
        assert "too large" in response.json()["message"]
    else:
        assert "too large" in response.content.decode() and "Nothing was saved" in response.content.decode()
    assert db_changes(before, db_snapshot()) == {}
    # And for a form: the memo page, with the body as urlencoded fields.
    client.force_login(world.researcher1)
    response = client.post(reverse("analysis:memo_new", args=[world.course.pk]),
                           data=b"text=" + huge, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 413 and not Memo.objects.filter(text__startswith="xxx").exists()


def test_an_uploaded_file_is_not_refused_by_the_body_limit(client, world, objects):
    """Multipart uploads have their own limits, checked by the import views."""
    client.force_login(world.leader)
    upload = SimpleUploadedFile("big.txt", b"word " * (700 * 1024), content_type="text/plain")
    response = client.post(reverse("fieldnotes:note_import", args=[objects.scheduled.pk]),
                           {"coleader": world.coleader2.pk, "file": upload})
    assert response.status_code != 413


def test_bad_utf8_in_a_form_is_read_with_replacement_characters(client, world, objects):
    client.force_login(world.coleader1)
    discussion = objects.draft.sections.get(kind="discussion")
    body = f"version=0&section-{discussion.pk}=".encode() + b"caf\xe9 \xff\xfe ok"
    response = client.post(reverse("fieldnotes:note_edit", args=[objects.draft.pk]), data=body,
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 302
    discussion.refresh_from_db()
    assert discussion.text.endswith(" ok") and "\x00" not in discussion.text


SEGMENT_BODIES = [
    {"code": "1", "start": 0, "end": 3}, {"code": 1.5, "start": 0, "end": 3}, {"code": True, "start": 0, "end": 3},
    {"code": None, "start": 0, "end": 3}, {"code": [1], "start": 0, "end": 3}, {"start": 0, "end": 3},
    {"code": 10**30, "start": 0, "end": 3}, {"code": -1, "start": 0, "end": 3},
    {"code": "CODE", "start": -5, "end": 3}, {"code": "CODE", "start": 3, "end": 3},
    {"code": "CODE", "start": 5, "end": 2}, {"code": "CODE", "start": 0, "end": 10**30},
    {"code": "CODE", "start": 10**30, "end": 10**31}, {"code": "CODE", "start": 0, "end": 3, "round": 10**30},
    {"code": "CODE", "start": 0, "end": 3, "round": "1"}, {"code": "FOREIGN", "start": 0, "end": 3},
]


@pytest.mark.parametrize("body", SEGMENT_BODIES, ids=repr)
def test_segment_endpoints_refuse_wrong_types_and_ranges(client, world, objects, body):
    client.force_login(world.researcher1)
    from analysis.models import Category, Code

    foreign = None
    if body.get("code") == "FOREIGN":
        category = Category.objects.create(course=world.course2, name="Theirs", unit="session", order=1)
        foreign = Code.objects.create(course=world.course2, category=category, name="Elsewhere",
                                      created_by=world.admin2)
    ids = {"CODE": objects.code.pk, "FOREIGN": foreign.pk if foreign else None}
    body = {k: ids.get(v, v) if isinstance(v, str) else v for k, v in body.items()}
    for url in (reverse("analysis:segment_create", args=[objects.section.pk]),
                reverse("analysis:segment_update", args=[objects.segment.pk])):
        response, before, after = rolled_back(
            lambda: client.post(url, data=json.dumps(body), content_type="application/json"))
        updating = url.endswith(f"/segments/{objects.segment.pk}/")
        if updating and (body.get("code") is None or "round" in body):
            continue  # an update without a code keeps the code, and takes no round: a valid request
        assert response.status_code in (400, 404), (url, body, response.status_code, response.content[:300])
        assert_json_refusal(response)
        assert before == after


@pytest.mark.parametrize("path", [
    "/notes/-1/", "/notes/0/", "/notes/99999999999999999999999999/", "/notes/1e3/", "/notes/%ff%fe/",
    "/notes/%00/", "/analysis/codes/99999999999999999999999999/", "/analysis/segments/-3/delete/",
    "/notes/1/versions/99999999999999999999999999/", "/calendar/feed/%00.ics", "/calendar/feed/" + "a" * 5000 + ".ics",
    "/calendar/feed/..%2F..%2Fetc%2Fpasswd.ics", "/sessions/99999999999999999999999999/",
])
def test_odd_ids_in_urls_are_a_404(client, world, objects, path):
    client.force_login(world.coleader1)
    assert client.get(path).status_code == 404


@pytest.mark.parametrize("user, name, args, data", [
    ("researcher1", "analysis:memo_list", "course", {"q": "a\x00b"}),
    ("researcher1", "analysis:segment_search", "course", {"codes": ["\x00", "99999999999999999999"],
                                                          "date_from": "0000-00-00", "page": "-1"}),
    ("researcher1", "analysis:coding_index", "course", {"round": "99999999999999999999", "page": "\x00"}),
    ("researcher1", "analysis:memo_new", "course", {"target": "segment", "target_id": "\x00"}),
    ("researcher1", "analysis:cooccurrence", "course", {"rows": "\x00", "cols": "99999999999999999999"}),
    ("admin", "sessions:audit_log", "course", {"page": "99999999999999999999"}),
])
def test_odd_query_strings_are_answered(client, world, objects, user, name, args, data):
    client.force_login(getattr(world, user))
    response = client.get(reverse(name, args=[world.course.pk]), data)
    assert response.status_code in (200, 302, 404)


@pytest.mark.parametrize("user, name, target, data", [
    ("researcher1", "analysis:case_coding_set", "case", {"code": "CODE", "why": "a\x00b"}),
    ("researcher1", "analysis:case_coding_set", "case", {"code": "99999999999999999999", "why": "x"}),
    ("leader", "sessions:attendance", "meeting", {"present": ["²", "١", "-1", "99999999999999999999"]}),
    ("leader", "sessions:meeting_new", "group", {"date": "9999-12-31", "start_time": "23:59",
                                                 "duration_minutes": "600"}),
    ("leader", "sessions:meeting_new", "group", {"date": "0001-01-01", "start_time": "00:00",
                                                 "duration_minutes": "60"}),
    ("leader", "sessions:series_new", "group", {"first_date": "9999-12-01", "start_time": "17:00", "count": "100",
                                                "every_weeks": "52", "duration_minutes": "60"}),
    ("leader", "sessions:participant_new", "group", {"pseudonym": "S9", "name": "x", "study_year": "1e400"}),
    ("admin", "sessions:course_edit", "course", {"name": "C", "time_zone": "../../../../etc/passwd"}),
    ("admin", "sessions:role_add_other", None, {"role": "\x00", "group": "99999999999999999999"}),
])
def test_odd_form_values_are_answered(client, world, objects, user, name, target, data):
    client.force_login(getattr(world, user))
    if name == "sessions:role_add_other":
        url = reverse("sessions:role_add", args=[world.course.pk, world.coleader2.pk])
    else:
        url = reverse(name, args=[{"case": objects.case, "meeting": objects.meeting, "group": world.group,
                                   "course": world.course}[target].pk])
    data = {k: objects.code.pk if v == "CODE" else v for k, v in data.items()}
    response = client.post(url, data)
    assert response.status_code in (200, 302, 400)


def test_an_overlong_username_is_refused_without_touching_the_lockout_records(client, world):
    from axes.models import AccessAttempt

    for url in (reverse("login"), "/admin/login/"):
        response = client.post(url, {"username": "a" * 100_000, "password": "b" * 100_000})
        assert response.status_code == 200 and "at most 150 characters" in response.text
    assert not AccessAttempt.objects.exists()
    for username in ("a\x00b", "\x00"):
        assert client.post(reverse("login"), {"username": username, "password": "x"}).status_code == 200
    assert client.post(reverse("login"), {"username": "leader", "password": PASSWORD}).status_code == 302


# --- Hypothesis: JSON endpoints --------------------------------------------------------

ODD_CHARACTERS = ["\x00", "\ud800", "\udfff", "\u2028", "\u202e", "\ufeff", "\r", "\r\n", "\x7f", "\x85", "<", ">",
                  "&", '"', "'", "\\", "😀", "e\u0301", "\U0010ffff"]
texts = st.lists(st.one_of(st.characters(exclude_categories=()), st.sampled_from(ODD_CHARACTERS)),
                 max_size=60).map("".join)
# What a browser can send in a form: UTF-8, so no lone surrogates.
form_texts = st.lists(st.one_of(st.characters(codec="utf-8"), st.sampled_from(ODD_CHARACTERS[:1] + ODD_CHARACTERS[3:])),
                      max_size=60).map("".join)
big_ints = st.integers(min_value=-(2**70), max_value=2**70)
junk = st.one_of(st.none(), st.booleans(), big_ints, st.floats(), texts, st.lists(big_ints, max_size=3),
                 st.dictionaries(texts, big_ints, max_size=2))


def _json_bytes(value) -> bytes:
    return json.dumps(value).encode()  # NaN and Infinity as JavaScript writes them; surrogates escaped


@FUZZ_JSON
@given(data=st.data())
def test_fuzz_autosave(client, world, objects, data):
    client.force_login(world.coleader1)
    own = [str(pk) for pk in objects.draft.sections.values_list("pk", flat=True)]
    others = [str(pk) for pk in objects.note.sections.values_list("pk", flat=True)]
    section_keys = st.one_of(st.sampled_from(own + others), texts, big_ints.map(str))
    sections = st.one_of(st.dictionaries(section_keys, st.one_of(texts, junk), max_size=4), junk)
    version = st.one_of(st.sampled_from([0, 1, "0"]), junk)
    body = data.draw(st.one_of(
        st.fixed_dictionaries({"version": version, "sections": sections},
                              optional={"status": junk, "author": junk, "extra": junk}).map(_json_bytes),
        junk.map(_json_bytes),
        st.binary(max_size=200),
    ))
    response, before, after = rolled_back(lambda: _autosave(client, objects.draft, body))
    assert response.status_code in (200, 400, 409, 413), response.status_code
    if response.status_code == 200:
        stored = NoteSection.objects.filter(note=objects.draft).values_list("text", flat=True)
        assert all("\x00" not in t and not any("\ud800" <= c <= "\udfff" for c in t) for t in stored)
    else:
        assert_json_refusal(response)
        assert before == after


@FUZZ_JSON
@given(data=st.data())
def test_fuzz_segment_create_and_update(client, world, objects, data):
    client.force_login(world.researcher1)
    length = len(objects.section.text)
    offsets = st.one_of(st.integers(min_value=-2, max_value=length + 2), junk)
    codes = st.one_of(st.sampled_from([objects.code.pk, objects.code.pk + 1000]), junk)
    body = data.draw(st.one_of(
        st.fixed_dictionaries({"code": codes, "start": offsets, "end": offsets},
                              optional={"round": st.one_of(st.sampled_from([objects.round.pk]), junk),
                                        "coder": junk, "quote": junk, "section": junk}).map(_json_bytes),
        junk.map(_json_bytes),
        st.binary(max_size=120),
    ))
    update = data.draw(st.booleans())
    url = (reverse("analysis:segment_update", args=[objects.segment.pk]) if update
           else reverse("analysis:segment_create", args=[objects.section.pk]))
    response, before, after = rolled_back(
        lambda: client.post(url, data=body, content_type="application/json"))
    assert response.status_code in (200, 201, 400, 404), response.status_code
    if response.status_code in (200, 201):
        segment = response.json()["segment"]
        assert 0 <= segment["start"] < segment["end"] <= length
        assert segment["quote"] == objects.section.text[segment["start"]:segment["end"]]
        assert CodedSegment.objects.filter(section=objects.section, coder=world.researcher1).exists()
    else:
        assert_json_refusal(response)
        assert before == after


# --- Hypothesis: forms -----------------------------------------------------------------

def _form_routes(objects, world):
    """name: (user, url, {field: plausible values}); generated values mix these with junk."""
    o = objects
    draft_sections = {f"section-{pk}": [] for pk in o.draft.sections.values_list("pk", flat=True)}
    note_sections = {f"section-{pk}": [] for pk in o.note.sections.values_list("pk", flat=True)}
    ids = lambda *objs: [str(x.pk) for x in objs]  # noqa: E731
    dates = ["2027-03-02", "2026-10-25", "1999-12-31", "2101-01-01", "31.12.2026", "2027-02-30"]
    times = ["17:00", "03:30", "24:00", "17:00:59"]
    return {
        "memo_new": (world.researcher1, reverse("analysis:memo_new", args=[world.course.pk]),
                     {"title": [], "text": [], "target": ["code", "segment", "section", "case", "round", "x"],
                      "target_id": ids(o.code, o.segment, o.section, o.case), "next": ["/", "https://evil.example/",
                                                                                       "//evil.example"]}),
        "memo_edit": (world.researcher1, reverse("analysis:memo_edit", args=[o.memo.pk]),
                      {"title": [], "text": [], "next": ["/", "javascript:alert(1)"]}),
        "category_new": (world.researcher1, reverse("analysis:category_new", args=[world.course.pk]),
                         {"name": [], "description": [], "unit": ["session", "case", "x"], "order": ["1", "-1"],
                          "why": []}),
        "code_new": (world.researcher1, reverse("analysis:code_new", args=[world.course.pk]),
                     {"name": [], "category": ids(o.code.category), "parent": ids(o.code), "definition": [],
                      "when_to_use": [], "when_not_to_use": [], "example": [],
                      "colour": ["#123456", "red", "#12345g", "</style>"], "shortcut": ["a", "0", "ä"], "why": []}),
        "code_edit": (world.researcher1, reverse("analysis:code_edit", args=[o.code.pk]),
                      {"name": [], "category": ids(o.code.category), "parent": ids(o.code), "colour": ["#000000"],
                       "why": []}),
        "code_split": (world.researcher1, reverse("analysis:code_split", args=[o.code.pk]),
                       {"name": [], "definition": [], "segments": ids(o.segment), "why": []}),
        "code_retire": (world.researcher1, reverse("analysis:code_retire", args=[o.code.pk]), {"why": []}),
        "case_coding_set": (world.researcher1, reverse("analysis:case_coding_set", args=[o.case.pk]),
                            {"code": ids(o.code), "why": []}),
        "round_new": (world.researcher1, reverse("analysis:round_new", args=[world.course.pk]),
                      {"name": [], "coders": ids(world.researcher1, world.researcher2, world.admin),
                       "sections": ids(o.section), "codes": ids(o.code)}),
        "disagreement": (world.researcher1, reverse("analysis:disagreement",
                                                    args=[o.closed_round.pk, o.section.pk, o.code.pk]),
                         {"kept": ids(world.researcher1) + ["none"], "why": []}),
        "report_new": (world.researcher1, reverse("analysis:report_new", args=[world.course.pk]),
                       {"kinds": ["csv", "qdc", "x"], "include_memos": ["on"]}),
        "participant_new": (world.leader, reverse("sessions:participant_new", args=[world.group.pk]),
                            {"pseudonym": ["S1", "S99"], "name": [], "email": ["a@b.fi", "x"],
                             "study_year": ["1", "7", "-1"]}),
        "consent_record": (world.leader, reverse("sessions:consent_record", args=[o.participant.pk]),
                           {"decision": ["given", "declined", "withdrawn"], "form": ids(world.form),
                            "decided_at": ["2026-10-01T10:00", "2099-01-01T00:00", "0001-01-01T00:00"],
                            "method": ["paper", "email", "x"]}),
        "consent_withdraw": (world.leader, reverse("sessions:consent_withdraw", args=[o.participant.pk]),
                             {"scope": ["future", "all", "x"], "decided_at": ["2026-10-01T10:00"],
                              "method": ["paper"]}),
        "meeting_new": (world.leader, reverse("sessions:meeting_new", args=[world.group.pk]),
                        {"date": dates, "start_time": times, "duration_minutes": ["90", "0", "100000"],
                         "place": [], "schedule_anyway": ["on"]}),
        "series_new": (world.leader, reverse("sessions:series_new", args=[world.group.pk]),
                       {"first_date": dates, "start_time": times, "count": ["3", "100", "101"],
                        "every_weeks": ["1", "52"], "duration_minutes": ["90"], "place": [],
                        "skip_dates": ["2027-03-09", "2027-13-01"], "schedule_anyway": ["on"]}),
        "meeting_reschedule": (world.leader, reverse("sessions:meeting_reschedule", args=[o.scheduled.pk]),
                               {"date": dates, "start_time": times, "duration_minutes": ["90"], "place": []}),
        "meeting_cancel": (world.leader, reverse("sessions:meeting_cancel", args=[o.scheduled.pk]), {"reason": []}),
        "attendance": (world.leader, reverse("sessions:attendance", args=[o.meeting.pk]),
                       {"present": ids(*world.participants)}),
        "case_add": (world.leader, reverse("sessions:case_add", args=[o.meeting.pk]),
                     {"presenter": ids(*world.participants), "order": ["1", "2", "99", "100"], "title": []}),
        "case_edit": (world.leader, reverse("sessions:case_edit", args=[o.case.pk]),
                      {"presenter": ids(*world.participants), "order": ["1", "2"], "title": []}),
        "group_new": (world.admin, reverse("sessions:group_new", args=[world.course.pk]),
                      {"name": ["Group A", "Group Q"], "capacity": ["9", "0"], "default_place": [],
                       "default_duration_minutes": ["90", "1"]}),
        "course_edit": (world.admin, reverse("sessions:course_edit", args=[world.course.pk]),
                        {"name": [], "institution": [], "starts_on": dates, "ends_on": dates,
                         "time_zone": ["Europe/Helsinki", "Mars/Base", "UTC"], "description": []}),
        "person_add": (world.admin, reverse("sessions:person_add", args=[world.course.pk]),
                       {"email": ["new@example.org", "leader@example.org", "x@"], "first_name": [], "last_name": [],
                        "role": ["admin", "researcher", "leader", "coleader", "x"], "group": ids(world.group)}),
        "consent_form_new": (world.admin, reverse("sessions:consent_form_new", args=[world.course.pk]),
                             {"title": [], "text": [], "effective_date": dates}),
        "note_edit": (world.coleader1, reverse("fieldnotes:note_edit", args=[o.draft.pk]),
                      {"version": ["0", "1", "-1"], **draft_sections}),
        "note_submit": (world.coleader1, reverse("fieldnotes:note_submit", args=[o.draft.pk]),
                        {"version": ["0"], **draft_sections}),
        "note_amend": (world.coleader1, reverse("fieldnotes:note_amend", args=[o.note.pk]),
                       {"version": ["2", "3"], "reason": [], **note_sections}),
        "identifier_confirm": (world.coleader1, reverse("fieldnotes:identifier_confirm", args=[o.draft.pk]),
                               {"text": []}),
    }


@pytest.fixture
def form_routes(objects, world):
    return _form_routes(objects, world)


FORM_NAMES = sorted([
    "memo_new", "memo_edit", "category_new", "code_new", "code_edit", "code_split", "code_retire", "case_coding_set",
    "round_new", "disagreement", "report_new", "participant_new", "consent_record", "consent_withdraw",
    "meeting_new", "series_new", "meeting_reschedule", "meeting_cancel", "attendance", "case_add", "case_edit",
    "group_new", "course_edit", "person_add", "consent_form_new", "note_edit", "note_submit", "note_amend",
    "identifier_confirm",
])


def _values(plausible: list[str]):
    single = st.one_of(st.sampled_from(plausible), form_texts) if plausible else form_texts
    return st.one_of(single, st.lists(single, min_size=1, max_size=3))


@pytest.mark.parametrize("name", FORM_NAMES)
def test_fuzz_form(client, world, form_routes, name):
    user, url, fields = form_routes[name]
    client.force_login(user)

    @FUZZ
    @given(data=st.data())
    def run(data):
        chosen = data.draw(st.fixed_dictionaries({}, optional={field: _values(values)
                                                               for field, values in fields.items()}))
        extra = data.draw(st.dictionaries(st.sampled_from(["author", "course", "role", "version", "status", "id"]),
                                          form_texts, max_size=2))
        payload = {**extra, **chosen}
        response, before, after = rolled_back(lambda: client.post(url, payload))
        assert response.status_code in (200, 302, 400, 404, 409, 413), (name, response.status_code)
        if response.status_code != 302:
            assert before == after, f"{name}: refused ({response.status_code}) but something was written"

    run()


@FUZZ
@given(data=st.data())
def test_fuzz_note_import_upload(client, world, objects, data):
    client.force_login(world.leader)
    name = data.draw(st.one_of(st.sampled_from(["note.txt", "note.docx", "note.odt", "../../etc/passwd",
                                                "<img src=x>.txt", "note.exe"]), form_texts.filter(bool)))
    content = data.draw(st.one_of(st.binary(max_size=300), st.sampled_from([b"PK\x03\x04" + b"\x00" * 40,
                                                                           "Teksti\u00e4".encode("utf-16")])))
    upload = SimpleUploadedFile(name.replace("\x00", "") or "x", content)
    payload = {"coleader": data.draw(st.sampled_from([str(world.coleader1.pk), str(world.coleader2.pk), "x"])),
               "file": upload}
    response, before, after = rolled_back(
        lambda: client.post(reverse("fieldnotes:note_import", args=[objects.scheduled.pk]), payload))
    assert response.status_code in (302, 400)
    if response.status_code != 302:
        assert before == after


@FUZZ
@given(data=st.data())
def test_fuzz_qda_import_upload(client, world, objects, data):
    client.force_login(world.researcher1)
    name = data.draw(st.sampled_from(["book.qdc", "project.qdpx", "x.txt"]))
    content = data.draw(st.one_of(
        st.binary(max_size=300),
        st.sampled_from([b"<?xml version='1.0'?><CodeBook/>", b"<CodeBook xmlns='urn:QDA-XML:codebook:1.0'>",
                         b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><CodeBook>&e;</CodeBook>',
                         b"PK\x03\x04" + b"\x00" * 60]),
    ))
    payload = {"file": SimpleUploadedFile(name, content), "group_name": data.draw(form_texts)}
    response, before, after = rolled_back(
        lambda: client.post(reverse("analysis:qda_import", args=[world.course.pk]), payload))
    assert response.status_code in (302, 400)
    if response.status_code != 302:
        assert before == after


@FUZZ
@given(username=form_texts, password=form_texts)
def test_fuzz_login(client, world, username, password):
    response, _, _ = rolled_back(lambda: client.post(reverse("login"), {"username": username, "password": password}))
    assert response.status_code in (200, 429)


@FUZZ
@given(data=st.data())
def test_fuzz_query_strings(client, world, objects, data):
    client.force_login(world.researcher1)
    name = data.draw(st.sampled_from(["analysis:memo_list", "analysis:segment_search", "analysis:coding_index",
                                      "analysis:cooccurrence", "analysis:code_new", "analysis:memo_new",
                                      "analysis:round_list"]))
    keys = st.sampled_from(["q", "page", "round", "codes", "mode", "category", "group", "session", "case", "coder",
                            "date_from", "date_to", "rows", "cols", "target", "target_id", "compare", "code"])
    params = data.draw(st.dictionaries(keys, st.one_of(form_texts, st.lists(form_texts, max_size=3)), max_size=5))
    response, before, after = rolled_back(lambda: client.get(reverse(name, args=[world.course.pk]), params))
    assert response.status_code in (200, 302, 404)
    assert before == after
