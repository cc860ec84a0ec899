"""Consent: recording decisions, withdrawal scopes, and versioned consent forms."""

from datetime import date, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from conftest import helsinki
from sessions.models import AuditEvent, Consent, ConsentForm
from sessions.services import consent as consent_service


def _record_url(participant):
    return reverse("sessions:consent_record", args=[participant.pk])


def _withdraw_url(participant):
    return reverse("sessions:consent_withdraw", args=[participant.pk])


def _give(world, participant, *, when=None, form=None):
    return consent_service.consent_record(
        participant=participant, form=form or world.form, decision=Consent.Decision.GIVEN,
        decided_at=when or timezone.now() - timedelta(days=30), method=Consent.Method.PAPER, actor=world.leader,
    )


# --- recording ---------------------------------------------------------------


def test_leader_records_consent_in_the_course_time_zone(client, world):
    participant = world.participants[0]
    client.force_login(world.leader)
    response = client.post(
        _record_url(participant),
        {"decision": "given", "form": world.form.pk, "decided_at": "2026-09-01T18:30", "method": "paper"},
    )
    assert response.status_code == 302
    consent = Consent.objects.get(participant=participant)
    assert consent.decided_at == helsinki(2026, 9, 1, 18, 30)
    assert (consent.decision, consent.method, consent.recorded_by) == ("given", "paper", world.leader)
    assert (consent.form, consent.form_version, consent.form_text) == (world.form, 1, world.form.text)
    event = AuditEvent.objects.get(action="consent.record")
    assert "S1" in event.summary and "Virtanen" not in event.summary


def test_course_time_zone_is_used_not_the_servers(client, world):
    world.course.time_zone = "America/New_York"
    world.course.save()
    client.force_login(world.admin)
    client.post(
        _record_url(world.participants[0]),
        {"decision": "declined", "form": world.form.pk, "decided_at": "2026-09-01T18:30", "method": "electronic"},
    )
    consent = Consent.objects.get()
    assert consent.decided_at.astimezone(world.course.tz).hour == 18
    assert consent.decision == "declined"


def test_record_form_defaults_to_now_and_the_latest_effective_version(client, world):
    future = ConsentForm.objects.create(
        course=world.course, version=2, text="Not yet", effective_date=date.today() + timedelta(days=60),
        created_by=world.admin,
    )
    client.force_login(world.leader)
    response = client.get(_record_url(world.participants[0]))
    assert response.status_code == 200
    form = response.context["form"]
    assert form["form"].value() == world.form.pk  # v1 is in effect, v2 only later
    assert f'value="{future.pk}"' in response.text  # but v2 may be chosen
    now_local = timezone.localtime(timezone.now(), world.course.tz)
    assert form["decided_at"].value().date() == now_local.date()


def test_time_in_the_current_minute_means_now(client, world):
    client.force_login(world.leader)
    now_local = timezone.localtime(timezone.now(), world.course.tz).strftime("%Y-%m-%dT%H:%M")
    before = timezone.now()
    client.post(
        _record_url(world.participants[0]),
        {"decision": "given", "form": world.form.pk, "decided_at": now_local, "method": "paper"},
    )
    consent = Consent.objects.get()
    # Either the exact moment, or (if the minute turned meanwhile) the start of that minute.
    assert consent.decided_at >= before - timedelta(minutes=1)


def test_future_time_is_refused_and_nothing_is_stored(client, world):
    client.force_login(world.leader)
    later = (timezone.localtime(timezone.now(), world.course.tz) + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
    response = client.post(
        _record_url(world.participants[0]),
        {"decision": "given", "form": world.form.pk, "decided_at": later, "method": "paper"},
    )
    assert response.status_code == 200
    assert "cannot be in the future" in response.text
    assert not Consent.objects.exists() and not AuditEvent.objects.exists()


def test_form_of_another_course_cannot_be_chosen(client, world):
    foreign = ConsentForm.objects.create(
        course=world.course2, version=1, text="Elsewhere", effective_date=date(2026, 1, 1), created_by=world.admin2
    )
    client.force_login(world.leader)
    response = client.post(
        _record_url(world.participants[0]),
        {"decision": "given", "form": foreign.pk, "decided_at": "2026-09-01T10:00", "method": "paper"},
    )
    assert response.status_code == 200
    assert "Choose one of this course&#x27;s consent form versions." in response.text
    assert not Consent.objects.exists()


def test_record_page_without_any_form_says_so(client, world):
    ConsentForm.objects.all().delete()
    client.force_login(world.admin)
    response = client.get(_record_url(world.participants[0]))
    assert "This course has no consent form yet" in response.text
    assert reverse("sessions:consent_form_new", args=[world.course.pk]) in response.text


def test_event_dated_before_the_latest_one_is_refused(world):
    participant = world.participants[0]
    _give(world, participant, when=timezone.now() - timedelta(days=2))
    with pytest.raises(ValidationError, match="kept in order"):
        consent_service.consent_record(
            participant=participant, form=world.form, decision=Consent.Decision.DECLINED,
            decided_at=timezone.now() - timedelta(days=3), method=Consent.Method.PAPER, actor=world.leader,
        )
    assert Consent.objects.count() == 1


def test_a_withdrawal_typed_in_the_minute_of_the_consent_comes_after_it(world):
    """Times are typed to the minute: the form showed 10:15 while the consent
    was recorded at 10:15:40, and the leader pressed the button at 10:16."""
    participant = world.participants[0]
    consented = timezone.now().replace(second=40, microsecond=0) - timedelta(minutes=5)
    _give(world, participant, when=consented)
    withdrawal = consent_service.consent_withdraw(
        participant=participant, scope="past", decided_at=consented.replace(second=0),
        method=Consent.Method.PAPER, actor=world.leader,
    )
    assert withdrawal.decided_at == consented
    assert participant.current_consent == withdrawal  # recorded after the consent, so in force
    # a time a minute or more earlier is still refused
    with pytest.raises(ValidationError, match="kept in order"):
        consent_service.consent_record(
            participant=participant, form=world.form, decision=Consent.Decision.GIVEN,
            decided_at=consented.replace(second=0) - timedelta(minutes=1), method=Consent.Method.PAPER,
            actor=world.leader,
        )


def test_same_moment_correction_wins_over_the_earlier_record(world):
    participant = world.participants[0]
    moment = timezone.now() - timedelta(days=1)
    _give(world, participant, when=moment)
    consent_service.consent_record(
        participant=participant, form=world.form, decision=Consent.Decision.DECLINED, decided_at=moment,
        method=Consent.Method.PAPER, actor=world.leader,
    )
    # Whatever order the rows come in, the later-recorded one is in force.
    for rows in (list(participant.consents.all()), list(participant.consents.order_by("id"))):
        assert consent_service.consent_in_force(rows, timezone.now()).decision == "declined"


# --- withdrawal --------------------------------------------------------------


@pytest.mark.parametrize("scope", ["future", "past"])
def test_withdrawal_records_its_scope(client, world, scope):
    participant = world.participants[0]
    given = _give(world, participant)
    client.force_login(world.leader)
    yesterday = (timezone.localtime(timezone.now(), world.course.tz) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    response = client.post(
        _withdraw_url(participant), {"scope": scope, "decided_at": yesterday, "method": "electronic"}
    )
    assert response.status_code == 302, response.content
    withdrawal = Consent.objects.get(decision="withdrawn")
    assert withdrawal.withdrawal_scope == scope
    assert withdrawal.form_version == given.form_version == 1
    assert consent_service.consent_in_force(participant.consents.all(), timezone.now()) == withdrawal
    # Consent was in force before the withdrawal, not after.
    assert participant.consent_state_at(withdrawal.decided_at - timedelta(minutes=1)) == given
    event = AuditEvent.objects.get(action="consent.withdraw")
    assert event.changes["withdrawal_scope"] == [None, scope]
    detail = client.get(reverse("sessions:participant_detail", args=[participant.pk])).text
    assert Consent.WithdrawalScope(scope).label in detail


def test_withdrawal_needs_a_scope(client, world):
    participant = world.participants[0]
    _give(world, participant)
    client.force_login(world.leader)
    response = client.post(_withdraw_url(participant), {"decided_at": "2026-01-15T12:00", "method": "paper"})
    assert response.status_code == 200
    assert "Say what the withdrawal covers" in response.text
    assert not Consent.objects.filter(decision="withdrawn").exists()


@pytest.mark.parametrize("state", [None, "declined", "withdrawn"])
def test_nothing_to_withdraw_is_refused_and_changes_nothing(client, world, state):
    participant = world.participants[0]
    if state == "declined":
        consent_service.consent_record(
            participant=participant, form=world.form, decision=Consent.Decision.DECLINED,
            decided_at=timezone.now() - timedelta(days=30), method=Consent.Method.PAPER, actor=world.leader,
        )
    elif state == "withdrawn":
        _give(world, participant)
        consent_service.consent_withdraw(
            participant=participant, scope="future", decided_at=timezone.now() - timedelta(days=5),
            method=Consent.Method.PAPER, actor=world.leader,
        )
    before = (Consent.objects.count(), AuditEvent.objects.count())
    client.force_login(world.leader)
    assert client.get(_withdraw_url(participant)).status_code == 302
    response = client.post(
        _withdraw_url(participant), {"scope": "past", "decided_at": "2026-01-15T12:00", "method": "paper"},
        follow=True,
    )
    assert "nothing to withdraw" in response.text
    assert (Consent.objects.count(), AuditEvent.objects.count()) == before


def test_withdraw_service_refuses_without_consent_in_force(world):
    with pytest.raises(ValidationError, match="no consent in force"):
        consent_service.consent_withdraw(
            participant=world.participants[1], scope="future", decided_at=timezone.now(),
            method=Consent.Method.PAPER, actor=world.leader,
        )
    assert not Consent.objects.exists()


def test_withdrawal_cannot_predate_the_consent_it_withdraws(world):
    participant = world.participants[0]
    _give(world, participant, when=timezone.now() - timedelta(days=2))
    with pytest.raises(ValidationError, match="kept in order"):
        consent_service.consent_withdraw(
            participant=participant, scope="past", decided_at=timezone.now() - timedelta(days=3),
            method=Consent.Method.PAPER, actor=world.leader,
        )


@pytest.mark.parametrize("who", ["coleader1", "researcher1", "other_leader", "outsider", "admin2", "leader2"])
def test_others_cannot_record_or_withdraw(client, world, who):
    participant = world.participants[0]
    _give(world, participant)
    client.force_login(getattr(world, who))
    data = {"decision": "declined", "form": world.form.pk, "decided_at": "2026-01-15T12:00", "method": "paper",
            "scope": "past"}
    assert client.post(_record_url(participant), data).status_code == 404
    assert client.post(_withdraw_url(participant), data).status_code == 404
    assert Consent.objects.count() == 1


def test_consent_pages_need_login_and_the_right_method(client, world):
    participant = world.participants[0]
    for url in [_record_url(participant), _withdraw_url(participant)]:
        assert client.get(url)["Location"].startswith("/accounts/login/")
    client.force_login(world.leader)
    assert client.put(_record_url(participant)).status_code == 405
    assert client.delete(_withdraw_url(participant)).status_code == 405


# --- consent form versions ---------------------------------------------------


def test_new_version_keeps_old_records_version_and_text(client, world):
    participant = world.participants[0]
    old = _give(world, participant)
    client.force_login(world.admin)
    page = client.get(reverse("sessions:consent_form_new", args=[world.course.pk]))
    assert world.form.text in page.text  # pre-filled with the latest text
    assert "Save as version 2" in page.text
    response = client.post(
        reverse("sessions:consent_form_new", args=[world.course.pk]),
        {"title": "Consent, revised", "text": "New wording about pseudonyms.", "effective_date": "2026-10-01"},
    )
    new = ConsentForm.objects.get(course=world.course, version=2)
    assert response.status_code == 302 and response["Location"] == reverse("sessions:consent_form_detail", args=[new.pk])
    world.form.refresh_from_db()
    old.refresh_from_db()
    assert world.form.text == "I agree that field notes about me may be used for research."  # v1 untouched
    assert (old.form_version, old.form_text) == (1, world.form.text)
    assert AuditEvent.objects.filter(action="consent_form.create", object_id=str(new.pk)).exists()
    # A later consent on v2 freezes v2's text.
    newer = consent_service.consent_record(
        participant=participant, form=new, decision=Consent.Decision.GIVEN, decided_at=timezone.now(),
        method=Consent.Method.ELECTRONIC, actor=world.leader,
    )
    assert (newer.form_version, newer.form_text) == (2, "New wording about pseudonyms.")


def test_records_keep_their_frozen_text_even_if_a_form_row_is_altered(world):
    participant = world.participants[0]
    old = _give(world, participant)
    ConsentForm.objects.filter(pk=world.form.pk).update(text="Tampered")
    old.refresh_from_db()
    assert old.form_text == "I agree that field notes about me may be used for research."


def test_first_version_of_a_course_without_forms(client, world):
    client.force_login(world.admin2)
    response = client.post(
        reverse("sessions:consent_form_new", args=[world.course2.pk]),
        {"title": "Consent", "text": "Text", "effective_date": "2026-01-01"},
    )
    assert response.status_code == 302
    assert ConsentForm.objects.get(course=world.course2).version == 1


def test_empty_text_is_refused(client, world):
    client.force_login(world.admin)
    response = client.post(
        reverse("sessions:consent_form_new", args=[world.course.pk]),
        {"title": "Consent", "text": "   ", "effective_date": "2026-01-01"},
    )
    assert response.status_code == 200
    assert ConsentForm.objects.count() == 1 and not AuditEvent.objects.exists()


@pytest.mark.parametrize("who", ["leader", "other_leader", "coleader1", "researcher1", "outsider", "admin2"])
def test_only_the_course_admin_makes_new_versions(client, world, who):
    client.force_login(getattr(world, who))
    url = reverse("sessions:consent_form_new", args=[world.course.pk])
    assert client.get(url).status_code == 404
    assert client.post(url, {"title": "X", "text": "Y", "effective_date": "2026-01-01"}).status_code == 404
    assert ConsentForm.objects.count() == 1


@pytest.mark.parametrize("who", ["admin", "leader", "other_leader"])
def test_admin_and_leaders_read_the_forms(client, world, who):
    _give(world, world.participants[0])
    _give(world, world.participants[1])
    client.force_login(getattr(world, who))
    listing = client.get(reverse("sessions:consent_forms", args=[world.course.pk]))
    assert listing.status_code == 200 and "v1" in listing.text
    detail = client.get(reverse("sessions:consent_form_detail", args=[world.form.pk]))
    assert detail.status_code == 200
    assert world.form.text in detail.text
    assert "2 consent records refer to this version" in detail.text
    assert ("Edit as a new version" in detail.text) == (who == "admin")


@pytest.mark.parametrize("who", ["coleader1", "researcher1", "outsider", "admin2", "leader2"])
def test_others_do_not_read_the_forms(client, world, who):
    client.force_login(getattr(world, who))
    assert client.get(reverse("sessions:consent_forms", args=[world.course.pk])).status_code == 404
    assert client.get(reverse("sessions:consent_form_detail", args=[world.form.pk])).status_code == 404


def test_consent_form_pages_need_login_and_get(client, world):
    urls = [
        reverse("sessions:consent_forms", args=[world.course.pk]),
        reverse("sessions:consent_form_detail", args=[world.form.pk]),
        reverse("sessions:consent_form_new", args=[world.course.pk]),
    ]
    for url in urls:
        assert client.get(url)["Location"].startswith("/accounts/login/")
    client.force_login(world.admin)
    assert client.post(urls[0]).status_code == 405
    assert client.post(urls[1]).status_code == 405
    assert client.put(urls[2]).status_code == 405
