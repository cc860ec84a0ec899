"""Role × URL matrix: every URL, every role, in its own course and another.

Each route in the project must appear in MATRIX (or PUBLIC); a new view that
is not listed here fails `test_every_url_is_in_the_matrix`, so nothing slips
past the scoping rules. The objects are all in `world.course`; users of
`world.course2` are "the same role in another course" and must get a 404.
"""

from datetime import timedelta

import pytest
from django.db import transaction
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from analysis.models import CaseCoding, Code, CodedSegment, CodingRound, Memo, Report, ReportFile
from analysis.services import codebook_start_from_study
from fieldnotes.services import note_open, note_submit
from sessions.models import Attendance, CalendarFeed, CasePresentation, Consent, Meeting, Membership, Role

# Who may use each route. "any" = every signed-in user. Subjects not listed
# get a 404 (or 403 where there is no object to hide, as for course_new).
ADMIN, RESEARCHER, LEADER, COLEADER, OTHER_LEADER = "admin", "researcher1", "leader", "coleader1", "other_leader"
IN_COURSE = {ADMIN, RESEARCHER, LEADER, COLEADER, OTHER_LEADER}
IN_GROUP = {ADMIN, RESEARCHER, LEADER, COLEADER}
MANAGES_GROUP = {ADMIN, LEADER}
CODEBOOK_READERS = {ADMIN, RESEARCHER, LEADER, OTHER_LEADER}
ONLY_ADMIN = {ADMIN}

SUBJECTS = [
    "anonymous", "outsider", ADMIN, RESEARCHER, LEADER, COLEADER, OTHER_LEADER,
    # the same roles in another course
    "admin2", "leader2",
]

# name: (kwargs builder, methods, who may)
MATRIX = {
    "sessions:dashboard": (lambda o: {}, ["GET"], "any"),
    "sessions:course_new": (lambda o: {}, ["GET", "POST"], "superuser"),
    "sessions:course_detail": (lambda o: {"pk": o.course.pk}, ["GET"], IN_COURSE),
    "sessions:course_edit": (lambda o: {"pk": o.course.pk}, ["GET", "POST"], ONLY_ADMIN),
    "sessions:group_new": (lambda o: {"pk": o.course.pk}, ["GET", "POST"], ONLY_ADMIN),
    "sessions:audit_log": (lambda o: {"pk": o.course.pk}, ["GET"], ONLY_ADMIN),
    "sessions:group_detail": (lambda o: {"pk": o.group.pk}, ["GET"], IN_GROUP),
    "sessions:group_edit": (lambda o: {"pk": o.group.pk}, ["GET", "POST"], ONLY_ADMIN),
    "sessions:people": (lambda o: {"pk": o.course.pk}, ["GET"], ONLY_ADMIN),
    "sessions:person_add": (lambda o: {"pk": o.course.pk}, ["GET", "POST"], ONLY_ADMIN),
    "sessions:role_remove": (lambda o: {"pk": o.course.pk, "membership_pk": o.coleader2_membership.pk}, ["POST"], ONLY_ADMIN),
    "sessions:role_add": (lambda o: {"pk": o.course.pk, "user_pk": o.coleader2.pk}, ["POST"], ONLY_ADMIN),
    "sessions:person_deactivate": (lambda o: {"pk": o.course.pk, "user_pk": o.coleader2.pk}, ["POST"], ONLY_ADMIN),
    "sessions:participant_new": (lambda o: {"pk": o.group.pk}, ["GET", "POST"], MANAGES_GROUP),
    "sessions:participant_detail": (lambda o: {"pk": o.participant.pk}, ["GET"], MANAGES_GROUP),
    "sessions:participant_edit": (lambda o: {"pk": o.participant.pk}, ["GET", "POST"], MANAGES_GROUP),
    "sessions:consent_record": (lambda o: {"pk": o.participant.pk}, ["GET", "POST"], MANAGES_GROUP),
    "sessions:consent_withdraw": (lambda o: {"pk": o.participant.pk}, ["GET", "POST"], MANAGES_GROUP),
    "sessions:consent_forms": (lambda o: {"pk": o.course.pk}, ["GET"], {ADMIN, LEADER, OTHER_LEADER}),
    "sessions:consent_form_new": (lambda o: {"pk": o.course.pk}, ["GET", "POST"], ONLY_ADMIN),
    "sessions:consent_form_detail": (lambda o: {"pk": o.form.pk}, ["GET"], {ADMIN, LEADER, OTHER_LEADER}),
    "sessions:meeting_new": (lambda o: {"pk": o.group.pk}, ["GET", "POST"], MANAGES_GROUP),
    "sessions:series_new": (lambda o: {"pk": o.group.pk}, ["GET", "POST"], MANAGES_GROUP),
    "sessions:meeting_detail": (lambda o: {"pk": o.meeting.pk}, ["GET"], IN_GROUP),
    "sessions:meeting_reschedule": (lambda o: {"pk": o.meeting.pk}, ["GET", "POST"], MANAGES_GROUP),
    "sessions:meeting_cancel": (lambda o: {"pk": o.meeting.pk}, ["GET", "POST"], MANAGES_GROUP),
    "sessions:attendance": (lambda o: {"pk": o.meeting.pk}, ["GET", "POST"], MANAGES_GROUP),
    "sessions:case_add": (lambda o: {"pk": o.meeting.pk}, ["GET", "POST"], MANAGES_GROUP),
    "sessions:case_edit": (lambda o: {"pk": o.case.pk}, ["GET", "POST"], MANAGES_GROUP),
    "sessions:case_delete": (lambda o: {"pk": o.case.pk}, ["GET", "POST"], MANAGES_GROUP),
    "sessions:group_ics": (lambda o: {"pk": o.group.pk}, ["GET"], IN_GROUP),
    "sessions:calendar_settings": (lambda o: {}, ["GET"], "any"),
    "sessions:calendar_revoke": (lambda o: {}, ["POST"], "any"),
    # Field notes. `note` is coleader1's submitted note, `draft` their draft of another session.
    "fieldnotes:note_write": (lambda o: {"pk": o.meeting.pk}, ["GET"], {COLEADER}),
    "fieldnotes:note_import": (lambda o: {"pk": o.meeting.pk}, ["GET", "POST"], MANAGES_GROUP),
    "fieldnotes:note_detail": (lambda o: {"pk": o.note.pk}, ["GET"], {COLEADER, LEADER, RESEARCHER}),
    "fieldnotes:note_edit": (lambda o: {"pk": o.draft.pk}, ["GET", "POST"], {COLEADER}),
    "fieldnotes:note_autosave": (lambda o: {"pk": o.draft.pk}, ["POST"], {COLEADER}),
    "fieldnotes:note_submit": (lambda o: {"pk": o.draft.pk}, ["POST"], {COLEADER}),
    "fieldnotes:note_amend": (lambda o: {"pk": o.note.pk}, ["GET", "POST"], {COLEADER}),
    "fieldnotes:note_history": (lambda o: {"pk": o.note.pk}, ["GET"], {COLEADER}),
    "fieldnotes:note_version": (lambda o: {"pk": o.note.pk, "version": 1}, ["GET"], {COLEADER}),
    "fieldnotes:identifier_confirm": (lambda o: {"pk": o.draft.pk}, ["POST"], {COLEADER}),
    # Analysis: researchers of the course; the codebook is readable by its admin and leaders too.
    "analysis:codebook": (lambda o: {"pk": o.course.pk}, ["GET"], CODEBOOK_READERS),
    "analysis:codebook_start": (lambda o: {"pk": o.course.pk}, ["POST"], {RESEARCHER}),
    "analysis:codebook_history": (lambda o: {"pk": o.course.pk}, ["GET"], CODEBOOK_READERS),
    "analysis:category_new": (lambda o: {"pk": o.course.pk}, ["GET", "POST"], {RESEARCHER}),
    "analysis:category_edit": (lambda o: {"pk": o.code.category_id}, ["GET", "POST"], {RESEARCHER}),
    "analysis:code_new": (lambda o: {"pk": o.course.pk}, ["GET", "POST"], {RESEARCHER}),
    "analysis:code_detail": (lambda o: {"pk": o.code.pk}, ["GET"], CODEBOOK_READERS),
    "analysis:code_edit": (lambda o: {"pk": o.code.pk}, ["GET", "POST"], {RESEARCHER}),
    "analysis:code_merge": (lambda o: {"pk": o.code.pk}, ["GET", "POST"], {RESEARCHER}),
    "analysis:code_split": (lambda o: {"pk": o.code.pk}, ["GET", "POST"], {RESEARCHER}),
    "analysis:code_retire": (lambda o: {"pk": o.code.pk}, ["GET", "POST"], {RESEARCHER}),
    "analysis:codes_css": (lambda o: {"pk": o.course.pk}, ["GET"], CODEBOOK_READERS),
    "analysis:coding_index": (lambda o: {"pk": o.course.pk}, ["GET"], {RESEARCHER}),
    "analysis:coding_page": (lambda o: {"pk": o.section.pk}, ["GET"], {RESEARCHER}),
    "analysis:segment_create": (lambda o: {"pk": o.section.pk}, ["POST"], {RESEARCHER}),
    "analysis:segment_update": (lambda o: {"pk": o.segment.pk}, ["POST"], {RESEARCHER}),
    "analysis:segment_delete": (lambda o: {"pk": o.segment.pk}, ["POST"], {RESEARCHER}),
    "analysis:case_analysis": (lambda o: {"pk": o.case.pk}, ["GET"], {RESEARCHER}),
    "analysis:case_coding_set": (lambda o: {"pk": o.case.pk}, ["POST"], {RESEARCHER}),
    "analysis:case_coding_delete": (lambda o: {"pk": o.case_coding.pk}, ["POST"], {RESEARCHER}),
    "analysis:memo_list": (lambda o: {"pk": o.course.pk}, ["GET"], {RESEARCHER}),
    "analysis:memo_new": (lambda o: {"pk": o.course.pk}, ["GET", "POST"], {RESEARCHER}),
    "analysis:memo_edit": (lambda o: {"pk": o.memo.pk}, ["GET", "POST"], {RESEARCHER}),
    "analysis:segment_search": (lambda o: {"pk": o.course.pk}, ["GET"], {RESEARCHER}),
    "analysis:matrix": (lambda o: {"pk": o.course.pk}, ["GET"], {RESEARCHER}),
    "analysis:cooccurrence": (lambda o: {"pk": o.course.pk}, ["GET"], {RESEARCHER}),
    "analysis:saturation": (lambda o: {"pk": o.course.pk}, ["GET"], {RESEARCHER}),
    "analysis:round_list": (lambda o: {"pk": o.course.pk}, ["GET"], {RESEARCHER}),
    "analysis:round_new": (lambda o: {"pk": o.course.pk}, ["GET", "POST"], {RESEARCHER}),
    "analysis:round_detail": (lambda o: {"pk": o.round.pk}, ["GET"], {RESEARCHER}),
    "analysis:round_close": (lambda o: {"pk": o.round.pk}, ["POST"], {RESEARCHER}),
    "analysis:round_agreement": (lambda o: {"pk": o.closed_round.pk}, ["GET"], {RESEARCHER}),
    "analysis:disagreement": (
        lambda o: {"pk": o.closed_round.pk, "section_pk": o.section.pk, "code_pk": o.code.pk}, ["GET", "POST"],
        {RESEARCHER},
    ),
    # Reports and exports: course admins and researchers.
    "analysis:report_list": (lambda o: {"pk": o.course.pk}, ["GET"], {ADMIN, RESEARCHER}),
    "analysis:report_new": (lambda o: {"pk": o.course.pk}, ["POST"], {ADMIN, RESEARCHER}),
    "analysis:report_detail": (lambda o: {"pk": o.report.pk}, ["GET"], {ADMIN, RESEARCHER}),
    "analysis:report_status": (lambda o: {"pk": o.report.pk}, ["GET"], {ADMIN, RESEARCHER}),
    "analysis:report_download": (lambda o: {"pk": o.report.pk, "name": "codebook.qdc"}, ["GET"], {ADMIN, RESEARCHER}),
    "analysis:qda_import": (lambda o: {"pk": o.course.pk}, ["GET", "POST"], {ADMIN, RESEARCHER}),
}

# An allowed request answers 200 or 302, but an empty POST to these is bad
# input (no version, no body): a clear 400 is the right answer there.
BAD_INPUT_OK = {"fieldnotes:note_autosave", "fieldnotes:note_submit", "fieldnotes:note_amend",
                "fieldnotes:note_edit", "fieldnotes:note_import", "analysis:segment_create",
                "analysis:segment_update", "analysis:disagreement", "analysis:round_new", "analysis:category_new",
                "analysis:category_edit", "analysis:code_new", "analysis:code_edit", "analysis:code_merge",
                "analysis:code_split", "analysis:code_retire", "analysis:memo_new", "analysis:memo_edit",
                "analysis:report_new", "analysis:qda_import"}
# JSON endpoints tell an expired login by a 401, so the page can keep what was typed.
JSON_ENDPOINTS = {"fieldnotes:note_autosave", "analysis:segment_create", "analysis:segment_update",
                  "analysis:segment_delete"}

# Routes open without a login, tested on their own (token feeds, health, auth pages).
PUBLIC = {
    "healthz", "login", "logout", "password_change", "password_change_done", "password_reset",
    "password_reset_done", "password_reset_confirm", "password_reset_complete", "sessions:feed_ics",
}
ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def _route_names(patterns, prefix=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            if pattern.namespace == "admin":
                continue  # Django's own admin, for superusers; it has its own checks
            ns = f"{prefix}{pattern.namespace}:" if pattern.namespace else prefix
            yield from _route_names(pattern.url_patterns, ns)
        elif isinstance(pattern, URLPattern) and pattern.name:
            yield f"{prefix}{pattern.name}"


def test_every_url_is_in_the_matrix():
    names = set(_route_names(get_resolver().url_patterns))
    missing = names - set(MATRIX) - PUBLIC
    assert not missing, f"URLs without a row in the role × URL matrix: {sorted(missing)}"


class Objects:
    def __init__(self, world):
        self.course, self.group, self.form = world.course, world.group, world.form
        self.participant = world.participants[0]
        self.coleader2 = world.coleader2
        self.coleader2_membership = Membership.objects.get(user=world.coleader2, group=world.group)
        # A session that has been held, with attendance and a case.
        self.meeting = Meeting.objects.create(
            group=world.group, number=1, starts_at=timezone.now() - timedelta(days=1), status=Meeting.Status.HELD
        )
        Attendance.objects.create(meeting=self.meeting, participant=self.participant, present=True)
        self.case = CasePresentation.objects.create(
            meeting=self.meeting, presenter=self.participant, order=1, title="A patient who would not stop calling"
        )
        self.note = note_open(meeting=self.meeting, author=world.coleader1)
        note_submit(note=self.note, base_version=0, texts={}, actor=world.coleader1)
        later = Meeting.objects.create(
            group=world.group, number=2, starts_at=timezone.now() - timedelta(hours=2), status=Meeting.Status.HELD
        )
        self.draft = note_open(meeting=later, author=world.coleader1)
        # Research data: consent in force for the presenter, who attended, so the case section is eligible.
        Consent.objects.create(participant=self.participant, form=world.form, form_version=1, decision="given",
                               method="paper", decided_at=self.meeting.starts_at - timedelta(days=1),
                               recorded_by=world.leader)
        self.section = self.note.sections.get(kind="case")
        codebook_start_from_study(course=world.course, actor=world.researcher1)
        self.code = Code.objects.get(course=world.course, name="Role confusion")
        self.segment = CodedSegment.objects.create(section=self.section, code=self.code, coder=world.researcher1,
                                                   start=0, end=1, quote="x", section_revision=0)
        self.case_coding = CaseCoding.objects.create(case=self.case, code=self.code, set_by=world.researcher1,
                                                     why="Because")
        self.memo = Memo.objects.create(course=world.course, author=world.researcher1, text="A thought")
        self.round = CodingRound.objects.create(course=world.course, name="Open round", created_by=world.researcher1)
        self.round.coders.set([world.researcher1, world.researcher2])
        self.round.sections.set([self.section])
        self.closed_round = CodingRound.objects.create(course=world.course, name="Closed round", status="closed",
                                                       closed_at=timezone.now(), created_by=world.researcher1)
        self.closed_round.coders.set([world.researcher1, world.researcher2])
        self.closed_round.sections.set([self.section])
        self.report = Report.objects.create(course=world.course, requested_by=world.admin, kinds=["qdc"],
                                            status=Report.Status.DONE, progress=100)
        ReportFile.objects.create(report=self.report, name="codebook.qdc", content_type="application/xml",
                                  content=b"<CodeBook/>", size=11, sha256="0" * 64)


def _subject_user(world, subject):
    return {
        "outsider": world.outsider, ADMIN: world.admin, RESEARCHER: world.researcher1, LEADER: world.leader,
        COLEADER: world.coleader1, OTHER_LEADER: world.other_leader, "admin2": world.admin2, "leader2": world.leader2,
    }[subject]


def _may(subject, who) -> bool:
    if who == "any":
        return subject != "anonymous"
    if who == "superuser":
        return False  # no fixture user is a superuser; tested separately
    return subject in who


@pytest.mark.parametrize("name", sorted(MATRIX))
def test_role_matrix(client, world, name):
    objects = Objects(world)
    build, methods, who = MATRIX[name]
    url = reverse(name, kwargs=build(objects))
    for subject in SUBJECTS:
        client.logout()
        if subject != "anonymous":
            client.force_login(_subject_user(world, subject))
        for method in methods:
            response = _request_rolled_back(client, method, url)
            where = f"{subject} {method} {url}"
            if subject == "anonymous" and name in JSON_ENDPOINTS:
                assert response.status_code == 401 and response.json()["error"] == "login_required", where
            elif subject == "anonymous":
                assert response.status_code == 302 and response["Location"].startswith("/accounts/login/"), where
            elif _may(subject, who):
                ok = (200, 302, 400) if method == "POST" and name in BAD_INPUT_OK else (200, 302)
                assert response.status_code in ok, f"{where} -> {response.status_code}"
            else:
                expected = 403 if who == "superuser" else 404
                assert response.status_code == expected, f"{where} -> {response.status_code}, expected {expected}"
        # Methods the route does not take are refused, whoever asks.
        if subject == ADMIN:
            for method in set(ALL_METHODS) - set(methods):
                assert _request_rolled_back(client, method, url).status_code == 405, f"{subject} {method} {url}"


def _request_rolled_back(client, method, url):
    """Make the request, then undo what it wrote, so every subject meets the same objects."""
    with transaction.atomic():
        response = client.generic(method, url)
        transaction.set_rollback(True)
    return response


def test_superuser_may_create_a_course(client, world, django_user_model):
    root = django_user_model.objects.create_superuser("root", "root@example.org", "x-long-password-1")
    client.force_login(root)
    assert client.get(reverse("sessions:course_new")).status_code == 200


def test_calendar_feed_needs_the_secret_token(client, world):
    feed = CalendarFeed.objects.create(user=world.coleader1)
    assert client.get(reverse("sessions:feed_ics", kwargs={"token": feed.token})).status_code == 200
    assert client.get(reverse("sessions:feed_ics", kwargs={"token": "not-the-token"})).status_code == 404


def test_roles_in_another_course_reach_nothing_here(world):
    """Sanity of the fixture the matrix relies on."""
    assert not Membership.objects.filter(user__in=[world.admin2, world.leader2], course=world.course).exists()
    assert Membership.objects.filter(user=world.leader2, role=Role.LEADER, group=world.group2).exists()
