"""Courses, groups, the dashboard and the audit log."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from sessions.models import AuditEvent, Consent, Course, Group, Meeting, Membership, Participant, Role


def _meetings(group, count, *, start=None, first=1):
    start = start or timezone.now() + timedelta(days=1)
    return [
        Meeting.objects.create(group=group, number=n, starts_at=start + timedelta(weeks=n - first))
        for n in range(first, first + count)
    ]


def test_course_page_lists_its_groups_for_a_researcher(client, world):
    client.force_login(world.researcher1)
    response = client.get(reverse("sessions:course_detail", args=[world.course.pk]))
    assert response.status_code == 200
    assert "Group A" in response.text and "Group B" in response.text
    assert "People and roles" not in response.text  # admin tools are the admin's


def test_leader_sees_only_own_group_on_course_page(client, world):
    client.force_login(world.leader)
    response = client.get(reverse("sessions:course_detail", args=[world.course.pk]))
    assert "Group A" in response.text and "Group B" not in response.text


def test_admin_edits_course_and_it_is_audited(client, world):
    client.force_login(world.admin)
    url = reverse("sessions:course_edit", args=[world.course.pk])
    response = client.post(url, {"name": "Balint 2026–27", "institution": "UH", "time_zone": "Europe/Helsinki"})
    assert response.status_code == 302
    world.course.refresh_from_db()
    assert world.course.name == "Balint 2026–27"
    event = AuditEvent.objects.get(action="course.update")
    assert event.actor == world.admin and event.changes["name"] == ["Student Balint groups 2026", "Balint 2026–27"]


def test_bad_time_zone_is_refused_and_nothing_changes(client, world):
    client.force_login(world.admin)
    url = reverse("sessions:course_edit", args=[world.course.pk])
    response = client.post(url, {"name": "X", "time_zone": "Mars/Olympus"})
    assert response.status_code == 200
    assert "is not a known time zone" in response.text
    world.course.refresh_from_db()
    assert world.course.name == "Student Balint groups 2026"
    assert not AuditEvent.objects.exists()


def test_admin_creates_group_with_defaults(client, world):
    client.force_login(world.admin)
    response = client.post(
        reverse("sessions:group_new", args=[world.course.pk]),
        {"name": "Group C", "capacity": 9, "default_place": "Meilahti 3", "default_duration_minutes": 90},
    )
    group = Group.objects.get(name="Group C")
    assert response.status_code == 302 and response["Location"] == reverse("sessions:group_detail", args=[group.pk])
    assert group.course == world.course and group.capacity == 9
    assert AuditEvent.objects.filter(action="group.create", course=world.course).exists()


def test_duplicate_group_name_gets_a_clear_message(client, world):
    client.force_login(world.admin)
    response = client.post(
        reverse("sessions:group_new", args=[world.course.pk]),
        {"name": "group a", "capacity": 9, "default_duration_minutes": 90},
    )
    assert "already has a group with that name" in response.text
    assert Group.objects.filter(course=world.course).count() == 2


def test_superuser_creates_course_and_becomes_its_admin(client, django_user_model):
    root = django_user_model.objects.create_superuser("root", "root@example.org", "x-long-password-1")
    client.force_login(root)
    response = client.post(reverse("sessions:course_new"), {"name": "Spring course", "time_zone": "Europe/Helsinki"})
    course = Course.objects.get(name="Spring course")
    assert response.status_code == 302
    assert Membership.objects.filter(user=root, course=course, role=Role.ADMIN).exists()


@pytest.mark.parametrize("viewer", ["coleader1", "researcher1"])
def test_group_page_hides_identities_and_consent_from_coleaders_and_researchers(client, world, viewer):
    Consent.objects.create(
        participant=world.participants[0], form=world.form, form_version=1, form_text=world.form.text,
        decision=Consent.Decision.WITHDRAWN, withdrawal_scope="past", method="paper", recorded_by=world.leader,
    )
    client.force_login(getattr(world, viewer))
    html = client.get(reverse("sessions:group_detail", args=[world.group.pk])).text
    assert "S1" in html and "S2" in html
    for p in world.participants:
        assert p.name not in html and p.email not in html
    assert "Withdrawn" not in html  # nobody outside admin and leader learns who withdrew


def test_group_page_shows_identities_and_consent_to_leader(client, world):
    client.force_login(world.leader)
    html = client.get(reverse("sessions:group_detail", args=[world.group.pk])).text
    assert "Aino Virtanen" in html and "Not recorded" in html


def test_group_page_query_count_does_not_grow_with_rows(client, world, django_assert_num_queries):
    client.force_login(world.leader)
    url = reverse("sessions:group_detail", args=[world.group.pk])
    client.get(url)  # warm the session
    # session, user, memberships, group, meetings, participants, consents, staff
    with django_assert_num_queries(8):
        client.get(url)
    _meetings(world.group, 15)
    for i in range(10, 16):
        Participant.objects.create(course=world.course, group=world.group, pseudonym=f"S{i}", name=f"Name {i}")
    with django_assert_num_queries(8):
        client.get(url)


def test_leader_dashboard_shows_attendance_due_consent_gaps_and_next_sessions(client, world):
    past = Meeting.objects.create(group=world.group, number=1, starts_at=timezone.now() - timedelta(days=2))
    Meeting.objects.create(group=world.group, number=2, starts_at=timezone.now() + timedelta(days=5), place="Room 7")
    client.force_login(world.leader)
    response = client.get(reverse("sessions:dashboard"))
    html = response.text
    assert reverse("sessions:attendance", args=[past.pk]) in html
    assert "Aino Virtanen" in html  # consent not recorded yet
    assert "session 2" in html and "Room 7" in html


def test_coleader_dashboard_shows_upcoming_sessions_only(client, world):
    Meeting.objects.create(group=world.group, number=1, starts_at=timezone.now() + timedelta(days=3), place="Room 9")
    Meeting.objects.create(group=world.other_group, number=1, starts_at=timezone.now() + timedelta(days=3), place="Elsewhere")
    client.force_login(world.coleader1)
    html = client.get(reverse("sessions:dashboard")).text
    assert "Room 9" in html and "Elsewhere" not in html
    assert "Aino Virtanen" not in html and "Take attendance" not in html


def test_researcher_dashboard_lists_courses(client, world):
    client.force_login(world.researcher1)
    html = client.get(reverse("sessions:dashboard")).text
    assert world.course.name in html and world.course2.name not in html


def test_user_without_roles_is_told_so(client, world):
    client.force_login(world.outsider)
    assert "no role in any course" in client.get(reverse("sessions:dashboard")).text


def test_dashboard_query_count_is_fixed(client, world, django_assert_num_queries):
    world.coleader1.memberships.create(course=world.course, role=Role.RESEARCHER)  # several panels at once
    client.force_login(world.leader)
    url = reverse("sessions:dashboard")
    client.get(url)
    # session, user, memberships, led groups, upcoming, attendance due, participants, consents
    with django_assert_num_queries(8):
        client.get(url)
    _meetings(world.group, 5)
    _meetings(world.group, 3, start=timezone.now() - timedelta(weeks=10), first=6)
    with django_assert_num_queries(8):
        client.get(url)


def test_audit_log_lists_changes_newest_first_and_is_paged(client, world):
    for i in range(55):
        AuditEvent.objects.create(course=world.course, actor_name="leader", action="x", object_type="meeting",
                                  summary=f"change {i}", at=timezone.now() + timedelta(seconds=i))
    AuditEvent.objects.create(course=world.course2, actor_name="admin2", action="x", object_type="meeting",
                              summary="elsewhere")
    client.force_login(world.admin)
    html = client.get(reverse("sessions:audit_log", args=[world.course.pk])).text
    assert ">change 54 <" in html and ">change 4 <" not in html and "elsewhere" not in html
    html = client.get(reverse("sessions:audit_log", args=[world.course.pk]) + "?page=2").text
    assert ">change 4 <" in html
