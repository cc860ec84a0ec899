"""Participants: adding, seeing and editing them, and who may."""

from datetime import timedelta

import pytest
from django.contrib.admin.sites import site as admin_site
from django.urls import reverse
from django.utils import timezone

from sessions.models import Attendance, AuditEvent, Consent, Meeting, Participant

NAMES = ["Aino Virtanen", "Eero Korhonen", "Helmi Mäkinen"]


def _new_url(world):
    return reverse("sessions:participant_new", args=[world.group.pk])


def _detail_url(participant):
    return reverse("sessions:participant_detail", args=[participant.pk])


def _edit_url(participant):
    return reverse("sessions:participant_edit", args=[participant.pk])


# --- participant_new ---------------------------------------------------------


def test_new_participant_form_offers_the_next_free_pseudonym(client, world):
    client.force_login(world.leader)
    response = client.get(_new_url(world))
    assert response.status_code == 200
    assert 'value="S4"' in response.text
    assert "3 of 9 places taken" in response.text


def test_leader_adds_a_participant_and_it_is_audited_without_the_name(client, world):
    client.force_login(world.leader)
    response = client.post(
        _new_url(world), {"pseudonym": "S4", "name": "Ilmari  Nieminen", "email": "i@example.org", "study_year": 4}
    )
    participant = Participant.objects.get(course=world.course, pseudonym="S4")
    assert response.status_code == 302 and response["Location"] == _detail_url(participant)
    assert (participant.group, participant.name, participant.study_year) == (world.group, "Ilmari Nieminen", 4)
    event = AuditEvent.objects.get(action="participant.create")
    assert event.actor == world.leader and event.course == world.course
    assert "S4" in event.summary
    assert "Nieminen" not in event.summary and "Nieminen" not in str(event.changes)


def test_course_admin_adds_a_participant_to_any_group(client, world):
    client.force_login(world.admin)
    response = client.post(
        reverse("sessions:participant_new", args=[world.other_group.pk]), {"pseudonym": "S4", "name": "Kaisa Laine"}
    )
    assert response.status_code == 302
    assert Participant.objects.get(pseudonym="S4").group == world.other_group


def test_pseudonym_taken_in_the_course_is_refused_with_a_clear_error(client, world):
    client.force_login(world.admin)
    # S1 is taken in Group A; Group B is in the same course.
    response = client.post(
        reverse("sessions:participant_new", args=[world.other_group.pk]), {"pseudonym": "s1", "name": "Kaisa Laine"}
    )
    assert response.status_code == 200
    assert "s1 is already used in this course; try S4." in response.text
    assert Participant.objects.filter(course=world.course).count() == 3
    assert not AuditEvent.objects.exists()


def test_same_pseudonym_in_another_course_is_fine(client, world):
    client.force_login(world.leader2)
    response = client.post(
        reverse("sessions:participant_new", args=[world.group2.pk]), {"pseudonym": "S2", "name": "Outi Toinen"}
    )
    assert response.status_code == 302


def test_study_year_must_be_one_to_six(client, world):
    client.force_login(world.leader)
    response = client.post(_new_url(world), {"pseudonym": "S4", "name": "Kaisa Laine", "study_year": 7})
    assert response.status_code == 200
    assert not Participant.objects.filter(pseudonym="S4").exists()


def test_full_group_warns_but_still_adds(client, world):
    world.group.capacity = 3
    world.group.save()
    client.force_login(world.leader)
    page = client.get(_new_url(world))
    assert "is at its capacity of 3" in page.text
    response = client.post(_new_url(world), {"pseudonym": "S4", "name": "Kaisa Laine"}, follow=True)
    assert Participant.objects.filter(pseudonym="S4", group=world.group).exists()
    assert "now has 4 participants; its capacity is 3" in response.text


@pytest.mark.parametrize("who", ["coleader1", "researcher1", "other_leader", "outsider", "admin2", "leader2"])
def test_others_cannot_add_participants(client, world, who):
    client.force_login(getattr(world, who))
    assert client.get(_new_url(world)).status_code == 404
    assert client.post(_new_url(world), {"pseudonym": "S9", "name": "X Y"}).status_code == 404
    assert not Participant.objects.filter(pseudonym="S9").exists()


def test_anonymous_is_sent_to_login(client, world):
    participant = world.participants[0]
    for url in [_new_url(world), _detail_url(participant), _edit_url(participant)]:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_wrong_methods_are_refused(client, world):
    client.force_login(world.leader)
    participant = world.participants[0]
    assert client.put(_new_url(world)).status_code == 405
    assert client.post(_detail_url(participant)).status_code == 405
    assert client.delete(_edit_url(participant)).status_code == 405


# --- participant_detail ----------------------------------------------------


def test_leader_sees_identity_history_and_attendance(client, world):
    participant = world.participants[0]
    meeting = Meeting.objects.create(
        group=world.group, number=1, starts_at=timezone.now() - timedelta(days=7), status=Meeting.Status.HELD
    )
    Attendance.objects.create(meeting=meeting, participant=participant, present=True)
    Consent.objects.create(
        participant=participant, form=world.form, form_version=1, form_text=world.form.text,
        decision=Consent.Decision.GIVEN, method=Consent.Method.PAPER, recorded_by=world.leader,
        decided_at=timezone.now() - timedelta(days=3),
    )
    client.force_login(world.leader)
    response = client.get(_detail_url(participant))
    assert response.status_code == 200
    html = response.text
    assert "Aino Virtanen" in html and "s1@students.example.org" in html
    assert "1 session" in html
    assert "Record withdrawal" in html
    assert "Paper form" in html and "v1" in html


@pytest.mark.parametrize("who", ["coleader1", "coleader2", "researcher1", "researcher2"])
def test_coleaders_and_researchers_never_get_participant_pages(client, world, who):
    """Identity pages are a 404 for them, and the 404 carries no identity either."""
    client.force_login(getattr(world, who))
    participant = world.participants[0]
    urls = [
        _detail_url(participant), _edit_url(participant),
        reverse("sessions:consent_record", args=[participant.pk]),
        reverse("sessions:consent_withdraw", args=[participant.pk]),
        _new_url(world),
    ]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 404, url
        for name in NAMES:
            assert name not in response.content.decode()


@pytest.mark.parametrize("who", ["other_leader", "outsider", "admin2", "leader2"])
def test_outsiders_get_404_on_participant_pages(client, world, who):
    client.force_login(getattr(world, who))
    participant = world.participants[0]
    assert client.get(_detail_url(participant)).status_code == 404
    assert client.get(_edit_url(participant)).status_code == 404


def test_participant_detail_queries_do_not_grow_with_history(client, world, django_assert_num_queries):
    participant = world.participants[0]
    client.force_login(world.leader)
    url = _detail_url(participant)
    client.get(url)  # warm up anything cached per process
    with django_assert_num_queries(6):
        client.get(url)
    for day in range(6):
        Consent.objects.create(
            participant=participant, form=world.form, form_version=1, form_text=world.form.text,
            decision=Consent.Decision.GIVEN if day % 2 else Consent.Decision.DECLINED,
            method=Consent.Method.ELECTRONIC, recorded_by=world.admin if day % 2 else world.leader,
            decided_at=timezone.now() - timedelta(days=10 - day),
        )
        meeting = Meeting.objects.create(
            group=world.group, number=day + 1, starts_at=timezone.now() - timedelta(days=20 - day)
        )
        Attendance.objects.create(meeting=meeting, participant=participant, present=True)
    with django_assert_num_queries(6):
        response = client.get(url)
    assert response.text.count("<tr>") == 1 + 6


# --- participant_edit ------------------------------------------------------


def test_edit_is_audited_with_before_and_after(client, world):
    participant = world.participants[1]
    client.force_login(world.admin)
    response = client.post(
        _edit_url(participant), {"pseudonym": "S2b", "name": "Eero Korhonen-Laine", "email": "", "study_year": 6}
    )
    assert response.status_code == 302
    participant.refresh_from_db()
    assert (participant.pseudonym, participant.name, participant.study_year) == ("S2b", "Eero Korhonen-Laine", 6)
    event = AuditEvent.objects.get(action="participant.update")
    assert event.changes["pseudonym"] == ["S2", "S2b"]
    assert event.changes["study_year"] == [5, 6]
    # Names and e-mails are kept out of the permanent trail; that they changed is recorded.
    assert "name" in event.changes and "email" in event.changes
    assert "Korhonen" not in str(event.changes) and "Korhonen" not in event.summary


def test_edit_to_a_taken_pseudonym_changes_nothing(client, world):
    participant = world.participants[1]
    client.force_login(world.leader)
    response = client.post(_edit_url(participant), {"pseudonym": "S1", "name": "Eero Korhonen"})
    assert response.status_code == 200
    assert "S1 is already used in this course" in response.text
    participant.refresh_from_db()
    assert participant.pseudonym == "S2"
    assert not AuditEvent.objects.exists()


def test_edit_form_keeps_own_pseudonym_valid(client, world):
    participant = world.participants[0]
    client.force_login(world.leader)
    response = client.post(_edit_url(participant), {"pseudonym": "S1", "name": "Aino Virtanen", "email": "s1@students.example.org", "study_year": 5})
    assert response.status_code == 302
    assert AuditEvent.objects.get(action="participant.update").changes == {"study_year": [4, 5]}


# --- Django admin ------------------------------------------------------------


def test_admin_lists_participants_by_pseudonym_not_name(client, world, django_user_model):
    root = django_user_model.objects.create_superuser("root", "root@example.org", "x-long-password-1")
    client.force_login(root)
    response = client.get(reverse("admin:balint_sessions_participant_changelist"))
    assert response.status_code == 200
    assert "S1" in response.text and "Group A" in response.text
    for name in NAMES:
        assert name not in response.text


def test_every_model_is_in_the_admin_and_the_audit_trail_is_read_only(client, world, django_user_model):
    from django.apps import apps

    for model in apps.get_app_config("balint_sessions").get_models():
        assert admin_site.is_registered(model), model
    root = django_user_model.objects.create_superuser("root", "root@example.org", "x-long-password-1")
    client.force_login(root)
    event = AuditEvent.objects.create(action="x", object_type="course", summary="something")
    assert client.get(reverse("admin:balint_sessions_auditevent_changelist")).status_code == 200
    assert client.get(reverse("admin:balint_sessions_auditevent_add")).status_code == 403
    change = client.post(reverse("admin:balint_sessions_auditevent_change", args=[event.pk]), {"summary": "edited"})
    assert change.status_code == 403
    assert client.post(reverse("admin:balint_sessions_auditevent_delete", args=[event.pk]), {"post": "yes"}).status_code == 403
    event.refresh_from_db()
    assert event.summary == "something"


def test_staff_without_superuser_sees_nothing_of_the_app_in_admin(client, world, django_user_model):
    staff = django_user_model.objects.create_user("staff", "staff@example.org", "x-long-password-1", is_staff=True)
    client.force_login(staff)
    assert client.get(reverse("admin:balint_sessions_participant_changelist")).status_code == 403
