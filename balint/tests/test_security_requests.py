"""State changes only by POST, only with a CSRF token, only to what the form is for.

Every route comes from the role × URL matrix (sessions/tests/test_url_matrix.py),
so a new view is covered here as soon as it has its row there:
- every POST route refuses a request without a CSRF token (403) and nothing changes;
- every GET route leaves the database as it was, whoever asks;
- every response to a signed-in user says `Cache-Control: no-store, private`;
- extra form fields and JSON keys (author, role, course, version...) change nothing.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.apps import apps
from django.db import transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from analysis.models import CaseCoding, Category, Code, CodedSegment, CodingRound, Memo
from conftest import PASSWORD
from fieldnotes.models import FieldNote, NoteSection
from sessions.models import (
    CalendarFeed,
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
from sessions.tests.test_url_matrix import (
    ADMIN,
    COLEADER,
    LEADER,
    MATRIX,
    OTHER_LEADER,
    RESEARCHER,
    SUBJECTS,
    Objects,
    _may,
    _subject_user,
)

# --- Helpers shared by the security tests -------------------------------------------

# Sessions change on every login and are not application state.
NOT_STATE = {"sessions.session"}


def _hashable(value):
    return json.dumps(value, sort_keys=True, default=str) if isinstance(value, (dict, list)) else value


def db_snapshot() -> dict[str, list[tuple]]:
    """Every row of every model (the test database is small), updated times included."""
    return {
        model._meta.label_lower: [tuple(map(_hashable, row)) for row in model.objects.order_by("pk").values_list()]
        for model in apps.get_models()
        if model._meta.label_lower not in NOT_STATE and not model._meta.proxy
    }


def db_changes(before: dict, after: dict) -> dict[str, dict[str, list]]:
    changes = {}
    for label in before:
        old, new = set(before[label]), set(after[label])
        if old != new:
            changes[label] = {"added": sorted(new - old, key=repr), "removed": sorted(old - new, key=repr)}
    return changes


def permitted_user(world, who, django_user_model=None):
    """One user the matrix lets through, preferring the broadest role."""
    if who == "any":
        return world.leader
    if who == "superuser":
        return django_user_model.objects.create_superuser("root", "root@example.org", "x-long-password-1")
    for subject in (ADMIN, RESEARCHER, LEADER, COLEADER, OTHER_LEADER):
        if subject in who:
            return _subject_user(world, subject)
    raise AssertionError(f"nobody may use {who}")


def routes(method: str) -> list[str]:
    return sorted(name for name, (_, methods, _) in MATRIX.items() if method in methods)


def url_of(name: str, objects: Objects) -> str:
    build, _, _ = MATRIX[name]
    return reverse(name, kwargs=build(objects))


# --- CSRF -----------------------------------------------------------------------------

JSON_ROUTES = {"fieldnotes:note_autosave", "analysis:segment_create", "analysis:segment_update",
               "analysis:segment_delete"}


def _csrf_client(user) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def _post(client, name, url, **extra):
    if name in JSON_ROUTES:
        return client.post(url, data=json.dumps({"version": 0, "sections": {}, "code": 1, "start": 0, "end": 1}),
                           content_type="application/json", **extra)
    return client.post(url, {"name": "Sneaky", "text": "Sneaky", "why": "Sneaky", "confirm": "1"}, **extra)


@pytest.mark.parametrize("name", routes("POST"))
def test_post_without_csrf_token_is_refused_and_changes_nothing(world, django_user_model, name):
    objects = Objects(world)
    user = permitted_user(world, MATRIX[name][2], django_user_model)
    url = url_of(name, objects)
    client = _csrf_client(user)
    client.get(reverse("sessions:dashboard"))  # the CSRF cookie is set, but the token is not sent
    assert "csrftoken" in client.cookies

    before = db_snapshot()
    response = _post(client, name, url)
    assert response.status_code == 403, f"{name}: {response.status_code}"
    forged = _post(client, name, url, HTTP_X_CSRFTOKEN="x" * 32)
    assert forged.status_code == 403, f"{name} with a wrong token: {forged.status_code}"
    assert db_changes(before, db_snapshot()) == {}

    # Control: the same request with the token gets past the CSRF check.
    with transaction.atomic():
        allowed = _post(client, name, url, HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value)
        transaction.set_rollback(True)
    assert allowed.status_code != 403, f"{name} refused even with a token"


@pytest.mark.parametrize("name, data", [
    ("login", {"username": "leader", "password": PASSWORD}),
    ("logout", {}),
    ("password_change", {"old_password": PASSWORD, "new_password1": "an-entirely-new-pass-77",
                         "new_password2": "an-entirely-new-pass-77"}),
    ("password_reset", {"email": "leader@example.org"}),
])
def test_account_forms_need_a_csrf_token(world, mailoutbox, name, data):
    client = Client(enforce_csrf_checks=True)
    if name != "login":
        client.force_login(world.leader)
    before = db_snapshot()
    response = client.post(reverse(name), data)
    assert response.status_code == 403
    assert db_changes(before, db_snapshot()) == {}
    assert mailoutbox == []
    if name != "login":  # still signed in: logout did not happen
        assert client.get(reverse("password_change")).status_code == 200


# --- No state change on GET -----------------------------------------------------------

# GET routes that may create the requester's own empty record on first visit:
# the calendar page makes the user's feed token, "Write field note" opens the
# author's (empty) note with its sections. Both are idempotent and hold no content.
LAZY_CREATES = {
    "sessions:calendar_settings": {"balint_sessions.calendarfeed"},
    "fieldnotes:note_write": {"fieldnotes.fieldnote", "fieldnotes.notesection"},
    "fieldnotes:note_edit": {"fieldnotes.notesection"},
}

# Downloads are recorded in the audit log ("exports and report downloads are
# logged too"): an audit row per download is the only write they may make.
AUDITED_GETS = {"analysis:report_download"}

# A few GET routes read query parameters; those are exercised too.
QUERIES = {
    "analysis:coding_page": lambda o: {"round": o.round.pk},
    "analysis:coding_index": lambda o: {"round": o.round.pk, "page": "2"},
    "analysis:memo_new": lambda o: {"target": "code", "target_id": o.code.pk},
    "analysis:code_new": lambda o: {"category": o.code.category_id},
    "analysis:round_agreement": lambda o: {"compare": "1", "code": o.code.pk},
    "analysis:segment_search": lambda o: {"codes": o.code.pk, "mode": "and", "page": "1"},
    "analysis:memo_list": lambda o: {"q": "thought"},
    "analysis:cooccurrence": lambda o: {"rows": o.code.category_id, "cols": o.code.category_id},
    "sessions:audit_log": lambda o: {"page": "1"},
}


@pytest.mark.parametrize("name", routes("GET"))
def test_get_changes_nothing(client, world, name):
    objects = Objects(world)
    url = url_of(name, objects)
    who = MATRIX[name][2]
    subjects = [s for s in SUBJECTS if s in ("anonymous", "outsider", "admin2") or _may(s, who)]
    for subject in subjects:
        client.logout()
        if subject != "anonymous":
            client.force_login(_subject_user(world, subject))
        for params in ({}, QUERIES[name](objects) if name in QUERIES else None):
            if params is None:
                continue
            before = db_snapshot()
            response = client.get(url, params)
            assert response.status_code < 500
            changes = db_changes(before, db_snapshot())
            if name in AUDITED_GETS:
                changes.pop("balint_sessions.auditevent", None)
            lazy = LAZY_CREATES.get(name, set())
            assert set(changes) <= lazy, f"{subject} GET {url} {params} changed {sorted(changes)}"
            assert all(not c["removed"] for c in changes.values()), f"{subject} GET {url} removed rows"
            if changes:  # a lazy create happens once: asking again changes nothing
                again = db_snapshot()
                client.get(url, params)
                assert db_changes(again, db_snapshot()) == {}, f"{subject} GET {url} is not idempotent"


def test_lazy_creations_on_get_are_the_requesters_own_empty_records(client, world):
    """The two GETs that create anything make an empty note or a feed token for the requester only."""
    meeting = Meeting.objects.create(group=world.group, number=7, starts_at=timezone.now() - timedelta(hours=3),
                                     status=Meeting.Status.HELD)
    client.force_login(world.coleader2)
    client.get(reverse("fieldnotes:note_write", args=[meeting.pk]))
    note = FieldNote.objects.get(meeting=meeting)
    assert note.author == world.coleader2 and note.status == FieldNote.Status.DRAFT and note.version == 0
    assert not NoteSection.objects.filter(note=note).exclude(text="").exists()
    client.get(reverse("sessions:calendar_settings"))
    assert list(CalendarFeed.objects.values_list("user", flat=True)) == [world.coleader2.pk]


# --- Cache-Control --------------------------------------------------------------------

@pytest.mark.parametrize("name", routes("GET"))
def test_signed_in_responses_are_not_stored(client, world, django_user_model, name):
    """Pages with note text (note detail/edit/amend/history/version, coding, case
    analysis, segment search, disagreement, memos, report downloads) and every other."""
    objects = Objects(world)
    client.force_login(permitted_user(world, MATRIX[name][2], django_user_model))
    response = client.get(url_of(name, objects))
    cache_control = {part.strip() for part in response.get("Cache-Control", "").split(",")}
    assert {"no-store", "private"} <= cache_control, f"{name}: {response.get('Cache-Control')!r}"
    assert "public" not in cache_control


def test_json_answers_and_refusals_are_not_stored_either(client, world):
    objects = Objects(world)
    client.force_login(world.coleader1)
    response = client.post(reverse("fieldnotes:note_autosave", args=[objects.draft.pk]),
                           data=json.dumps({"version": 0, "sections": {}}), content_type="application/json")
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    outsider = client.get(reverse("fieldnotes:note_detail", args=[objects.note.pk]))
    assert "no-store" in outsider["Cache-Control"]  # the author's own page
    client.force_login(world.leader2)
    refused = client.get(reverse("fieldnotes:note_detail", args=[objects.note.pk]))
    assert refused.status_code == 404 and "no-store" in refused["Cache-Control"]


def test_static_files_stay_cacheable_for_signed_in_users(client, world):
    """WhiteNoise answers before the no-store rule: stylesheets and scripts hold nothing private."""
    client.force_login(world.leader)
    response = client.get("/static/css/app.css")
    assert response.status_code == 200
    assert "no-store" not in response.get("Cache-Control", "")


# --- Mass assignment -------------------------------------------------------------------

EXTRA_FIELDS = {
    # Fields a crafted form could add, pointing at other people and another course.
    "author": None, "author_id": None, "user": None, "coder": None, "created_by": None, "recorded_by": None,
    "set_by": None, "requested_by": None, "decided_by": None, "saved_by": None,
    "course": None, "course_id": None, "group": None, "meeting": "1", "section": "1", "note": "1",
    "role": "admin", "is_staff": "on", "is_superuser": "on", "is_active": "on", "status": "submitted",
    "version": "99", "form_version": "99", "number": "99", "id": "999", "pk": "999",
}


def _extra(world, **override) -> dict:
    """EXTRA_FIELDS with the ids filled in: everything points at course2 and at admin2."""
    values = dict(EXTRA_FIELDS)
    for key in ("author", "author_id", "user", "coder", "created_by", "recorded_by", "set_by", "requested_by",
                "decided_by", "saved_by"):
        values[key] = str(world.admin2.pk)
    values.update(course=str(world.course2.pk), course_id=str(world.course2.pk), group=str(world.group2.pk))
    values.update(override)
    return values


def test_memo_extra_fields_change_nothing(client, world):
    objects = Objects(world)
    client.force_login(world.researcher1)
    response = client.post(reverse("analysis:memo_new", args=[world.course.pk]),
                           {"title": "T", "text": "Body", **_extra(world, code=str(objects.code.pk))})
    assert response.status_code == 302
    memo = Memo.objects.get(title="T")
    assert (memo.course, memo.author, memo.code) == (world.course, world.researcher1, None)
    # Editing: still the author's memo in the same course.
    response = client.post(reverse("analysis:memo_edit", args=[memo.pk]),
                           {"title": "T2", "text": "Body 2", **_extra(world)})
    memo.refresh_from_db()
    assert (memo.title, memo.course, memo.author) == ("T2", world.course, world.researcher1)


def test_codebook_extra_fields_change_nothing(client, world):
    objects = Objects(world)
    client.force_login(world.researcher1)
    client.post(reverse("analysis:category_new", args=[world.course.pk]),
                {"name": "Mine", "unit": "session", "order": 9, **_extra(world)})
    category = Category.objects.get(name="Mine")
    assert category.course == world.course
    client.post(reverse("analysis:code_new", args=[world.course.pk]),
                {"name": "New code", "category": category.pk, "colour": "#123456", **_extra(world)})
    code = Code.objects.get(name="New code")
    assert (code.course, code.created_by, code.category) == (world.course, world.researcher1, category)
    client.post(reverse("analysis:code_edit", args=[objects.code.pk]),
                {"name": objects.code.name, "category": objects.code.category_id, "colour": "#654321",
                 **_extra(world, retired_at="2020-01-01", merged_into=str(code.pk))})
    objects.code.refresh_from_db()
    assert objects.code.course == world.course and objects.code.retired_at is None
    assert objects.code.merged_into_id is None and objects.code.colour == "#654321"


def test_course_and_group_extra_fields_change_nothing(client, world):
    client.force_login(world.admin)
    client.post(reverse("sessions:group_new", args=[world.course.pk]),
                {"name": "Group C", "capacity": 9, "default_duration_minutes": 90, **_extra(world)})
    assert Group.objects.get(name="Group C").course == world.course
    client.post(reverse("sessions:course_edit", args=[world.course.pk]),
                {"name": "Renamed", "time_zone": "Europe/Helsinki", **_extra(world, created_at="2000-01-01")})
    world.course.refresh_from_db()
    assert world.course.name == "Renamed" and world.course.created_at.year != 2000
    assert Course.objects.get(pk=world.course2.pk).name == "Another university's course"


def test_people_extra_fields_grant_no_privilege(client, world):
    client.force_login(world.admin)
    client.post(reverse("sessions:person_add", args=[world.course.pk]),
                _extra(world, email="new.person@example.org", first_name="New", role="researcher", group="",
                       is_staff="on", is_superuser="on", password="chosen-by-attacker-1"))
    user = Membership.objects.get(user__email="new.person@example.org").user
    assert not user.is_staff and not user.is_superuser and not user.check_password("chosen-by-attacker-1")
    assert list(Membership.objects.filter(user=user).values_list("course", "role")) == [
        (world.course.pk, Role.RESEARCHER)]


def test_participant_and_consent_extra_fields_change_nothing(client, world):
    client.force_login(world.leader)
    client.post(reverse("sessions:participant_new", args=[world.group.pk]),
                {"pseudonym": "S77", "name": "New Person", **_extra(world)})
    participant = Participant.objects.get(pseudonym="S77")
    assert (participant.course, participant.group) == (world.course, world.group)
    client.post(reverse("sessions:consent_record", args=[participant.pk]), {
        "decision": "given", "form": world.form.pk, "method": "paper",
        "decided_at": timezone.localtime(timezone.now() - timedelta(days=1), world.course.tz).strftime("%Y-%m-%dT%H:%M"),
        **_extra(world, form_text="Something else entirely", withdrawal_scope="all"),
    })
    consent = Consent.objects.get(participant=participant)
    assert consent.recorded_by == world.leader and consent.form_version == world.form.version
    assert consent.form_text != "Something else entirely" and consent.withdrawal_scope == ""
    client.force_login(world.admin)
    client.post(reverse("sessions:consent_form_new", args=[world.course.pk]),
                {"title": "v2", "text": "New text", "effective_date": "2026-09-01", **_extra(world)})
    new_form = ConsentForm.objects.get(title="v2")
    assert (new_form.course, new_form.version, new_form.created_by) == (world.course, 2, world.admin)


def test_scheduling_extra_fields_change_nothing(client, world):
    objects = Objects(world)
    client.force_login(world.leader)
    client.post(reverse("sessions:meeting_new", args=[world.group.pk]), {
        "date": "2027-03-02", "start_time": "17:00", "duration_minutes": 90, "place": "Room 1",
        **_extra(world, status="held", cancel_reason="x", starts_at="2000-01-01T00:00"),
    })
    meeting = Meeting.objects.get(place="Room 1")
    assert (meeting.group, meeting.status, meeting.number) == (world.group, Meeting.Status.SCHEDULED, 2 + 1)
    client.post(reverse("sessions:case_add", args=[objects.meeting.pk]), {
        "presenter": objects.participant.pk, "order": 2, "title": "Another case",
        **_extra(world, meeting=str(meeting.pk)),
    })
    assert CasePresentation.objects.get(title="Another case").meeting == objects.meeting


def test_note_form_extra_fields_change_nothing(client, world):
    objects = Objects(world)
    draft = objects.draft
    discussion = draft.sections.get(kind="discussion")
    foreign = objects.note.sections.get(kind="discussion")
    client.force_login(world.coleader1)
    response = client.post(reverse("fieldnotes:note_edit", args=[draft.pk]), {
        "version": 0, f"section-{discussion.pk}": "Mine.", f"section-{foreign.pk}": "Overwritten!",
        **_extra(world, status="submitted", version="0", submitted_at="2020-01-01"),
    })
    assert response.status_code == 302
    draft.refresh_from_db()
    assert (draft.author, draft.status, draft.version, draft.meeting_id) == (
        world.coleader1, FieldNote.Status.DRAFT, 1, objects.draft.meeting_id)
    foreign.refresh_from_db()
    assert foreign.text != "Overwritten!"


def test_autosave_extra_keys_change_nothing(client, world):
    objects = Objects(world)
    draft = objects.draft
    discussion = draft.sections.get(kind="discussion")
    client.force_login(world.coleader1)
    body = {"version": 0, "sections": {str(discussion.pk): "Saved."}, "status": "submitted",
            "author": world.admin2.pk, "meeting": objects.meeting.pk, "submitted_at": "2020-01-01"}
    response = client.post(reverse("fieldnotes:note_autosave", args=[draft.pk]), data=json.dumps(body),
                           content_type="application/json")
    assert response.status_code == 200
    draft.refresh_from_db()
    assert (draft.author, draft.status, draft.meeting_id) == (world.coleader1, FieldNote.Status.DRAFT,
                                                              objects.draft.meeting_id)
    # A section of another note in the body: refused as a whole, nothing written.
    other = objects.note.sections.get(kind="discussion")
    before = db_snapshot()
    response = client.post(reverse("fieldnotes:note_autosave", args=[draft.pk]), content_type="application/json",
                           data=json.dumps({"version": 1, "sections": {str(discussion.pk): "Changed",
                                                                       str(other.pk): "Overwritten!"}}))
    assert response.status_code == 400 and response.json()["error"] == "invalid"
    assert db_changes(before, db_snapshot()) == {}


def test_segment_extra_keys_change_nothing(client, world):
    objects = Objects(world)
    objects.section.text = "The patient called every night."
    objects.section.save()
    client.force_login(world.researcher1)
    body = {"code": objects.code.pk, "start": 4, "end": 11, "coder": world.researcher2.pk, "quote": "forged",
            "section": objects.note.sections.get(kind="discussion").pk, "needs_review": True, "round": None,
            "section_revision": 99, "resolution": 1}
    response = client.post(reverse("analysis:segment_create", args=[objects.section.pk]), data=json.dumps(body),
                           content_type="application/json")
    assert response.status_code == 201, response.content
    segment = CodedSegment.objects.get(pk=response.json()["segment"]["id"])
    assert (segment.coder, segment.section, segment.quote, segment.needs_review, segment.resolution_id) == (
        world.researcher1, objects.section, "patient", False, None)
    response = client.post(reverse("analysis:segment_update", args=[segment.pk]), content_type="application/json",
                           data=json.dumps({**body, "start": 4, "end": 18}))
    assert response.status_code == 200
    segment.refresh_from_db()
    assert (segment.coder, segment.section, segment.quote) == (world.researcher1, objects.section, "patient called")


def test_case_coding_and_round_extra_fields_change_nothing(client, world):
    objects = Objects(world)
    case_code = Code.objects.filter(course=world.course, category__unit="case").exclude(
        pk=objects.case_coding.code_id).first()
    client.force_login(world.researcher1)
    client.post(reverse("analysis:case_coding_set", args=[objects.case.pk]),
                {"code": case_code.pk, "why": "Because.", **_extra(world, set_by=str(world.researcher2.pk))})
    coding = CaseCoding.objects.get(case=objects.case, code=case_code)
    assert coding.set_by == world.researcher1
    objects.section.text = "Some text to code."
    objects.section.save()
    client.post(reverse("analysis:round_new", args=[world.course.pk]), {
        "name": "Round three", "coders": [world.researcher1.pk, world.researcher2.pk],
        "sections": [objects.section.pk], **_extra(world, status="closed", closed_at="2020-01-01"),
    })
    new_round = CodingRound.objects.get(name="Round three")
    assert (new_round.course, new_round.created_by, new_round.status, new_round.closed_at) == (
        world.course, world.researcher1, CodingRound.Status.OPEN, None)


def test_public_routes_refuse_the_methods_they_do_not_take(client, world):
    """The routes outside the matrix (no login needed) refuse other methods too, and change nothing."""
    feed = CalendarFeed.objects.create(user=world.coleader1)
    before = db_snapshot()
    for url in (reverse("healthz"), reverse("sessions:feed_ics", args=[feed.token])):
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            assert client.generic(method, url).status_code == 405, f"{method} {url}"
    assert client.get(reverse("logout")).status_code == 405
    assert db_changes(before, db_snapshot()) == {}
