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

from sessions.models import Attendance, CalendarFeed, CasePresentation, Meeting, Membership, Role

# Who may use each route. "any" = every signed-in user. Subjects not listed
# get a 404 (or 403 where there is no object to hide, as for course_new).
ADMIN, RESEARCHER, LEADER, COLEADER, OTHER_LEADER = "admin", "researcher1", "leader", "coleader1", "other_leader"
IN_COURSE = {ADMIN, RESEARCHER, LEADER, COLEADER, OTHER_LEADER}
IN_GROUP = {ADMIN, RESEARCHER, LEADER, COLEADER}
MANAGES_GROUP = {ADMIN, LEADER}
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
}

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
            if subject == "anonymous":
                assert response.status_code == 302 and response["Location"].startswith("/accounts/login/"), where
            elif _may(subject, who):
                assert response.status_code in (200, 302), f"{where} -> {response.status_code}"
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
