"""Logging in and staying logged in: lockout and its cool-off, no hint whether an
account exists, a new session id at login, sessions that end at logout, at
deactivation and after two idle hours."""

from __future__ import annotations

import json
import re
from contextlib import contextmanager
from datetime import timedelta
from unittest import mock

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from conftest import PASSWORD
from fieldnotes.services import note_open
from sessions.models import Meeting


def _login(client, username, password):
    return client.post(reverse("login"), {"username": username, "password": password})


@contextmanager
def clock(at):
    """Every clock the session and lockout code reads, set to `at`."""
    with mock.patch("django.utils.timezone.now", return_value=at), \
            mock.patch("axes.handlers.proxy.now", return_value=at), \
            mock.patch("axes.attempts.now", return_value=at):
        yield


def _signed_in(client) -> bool:
    return client.get(reverse("password_change")).status_code == 200


# --- Login messages and lockout --------------------------------------------------------


def _comparable(response, username) -> str:
    """The page with what legitimately differs (the typed name, the CSRF token) taken out."""
    text = response.content.decode()
    text = text.replace(f'value="{username}"', 'value="…"')
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", text)


def test_unknown_user_wrong_password_and_inactive_account_read_the_same(client, world):
    world.coleader2.is_active = False
    world.coleader2.save()
    wrong_password = _login(Client(), "leader", "not-the-password")
    unknown = _login(Client(), "nobody-by-this-name", "not-the-password")
    inactive = _login(Client(), "coleader2", PASSWORD)  # the right password of a switched-off account
    assert wrong_password.status_code == unknown.status_code == inactive.status_code == 200
    assert "Please enter a correct username and password" in wrong_password.text
    assert _comparable(wrong_password, "leader") == _comparable(unknown, "nobody-by-this-name")
    assert _comparable(wrong_password, "leader") == _comparable(inactive, "coleader2")


def test_unknown_users_are_locked_out_like_real_ones(world):
    """Otherwise the lockout itself would tell which usernames exist."""
    answers = {}
    for username in ("leader", "nobody-by-this-name"):
        client = Client()
        answers[username] = [_login(client, username, "wrong").status_code for _ in range(6)]
    assert answers["leader"] == answers["nobody-by-this-name"] == [200, 200, 200, 200, 429, 429]


def test_lockout_ends_after_the_cool_off(world):
    start = timezone.now()
    client = Client()
    with clock(start):
        for _ in range(5):
            _login(client, "leader", "wrong")
        assert _login(client, "leader", PASSWORD).status_code == 429
    cool_off = timedelta(hours=settings.AXES_COOLOFF_TIME)
    # Attempts during the lockout are refused but do not restart the cool-off,
    # so "try again in 15 minutes" is true (AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT).
    with clock(start + timedelta(minutes=10)):
        assert _login(client, "leader", PASSWORD).status_code == 429
    with clock(start + cool_off - timedelta(minutes=1)):
        assert _login(Client(), "leader", PASSWORD).status_code == 429  # from a fresh browser too
    with clock(start + cool_off + timedelta(minutes=1)):
        response = _login(client, "leader", PASSWORD)
        assert response.status_code == 302 and response["Location"] == reverse("sessions:dashboard")
    # A success resets the count: one new failure does not lock again.
    with clock(start + cool_off + timedelta(minutes=2)):
        client.post(reverse("logout"))
        assert _login(client, "leader", "wrong").status_code == 200
        assert _login(client, "leader", PASSWORD).status_code == 302


def test_lockout_is_recorded_without_the_password(world):
    client = Client()
    for _ in range(5):
        _login(client, "leader", "my-secret-guess")
    attempt = AccessAttempt.objects.get(username="leader")
    assert "my-secret-guess" not in json.dumps([attempt.get_data, attempt.post_data])


# --- Sessions --------------------------------------------------------------------------


def test_session_id_changes_at_login(world):
    client = Client()
    anonymous = client.session
    anonymous["before-login"] = "x"
    anonymous.save()
    client.cookies[settings.SESSION_COOKIE_NAME] = anonymous.session_key
    old_key = anonymous.session_key

    response = _login(client, "leader", PASSWORD)
    assert response.status_code == 302
    new_key = client.cookies[settings.SESSION_COOKIE_NAME].value
    assert new_key != old_key
    assert not Session.objects.filter(session_key=old_key).exists()  # the fixed id is worthless
    fixed = Client()
    fixed.cookies[settings.SESSION_COOKIE_NAME] = old_key
    assert not _signed_in(fixed)


def test_session_cookie_is_http_only_and_lax():
    assert settings.SESSION_COOKIE_HTTPONLY
    assert settings.SESSION_COOKIE_SAMESITE in ("Lax", "Strict")


def test_logout_deletes_the_session_so_a_copied_cookie_is_worthless(world):
    client = Client()
    _login(client, "leader", PASSWORD)
    key = client.cookies[settings.SESSION_COOKIE_NAME].value
    copy = Client()
    copy.cookies[settings.SESSION_COOKIE_NAME] = key
    assert _signed_in(copy)

    assert client.post(reverse("logout")).status_code == 302
    assert not Session.objects.filter(session_key=key).exists()
    assert not _signed_in(copy)
    assert client.get(reverse("logout")).status_code == 405  # logging out is a POST (CSRF-protected)


def test_a_signed_in_request_reads_its_user_as_the_orm_would(world, django_assert_num_queries):
    """The backend a login records reads the user with one query a request
    (`balint.auth`): every field as the ORM gives it, and not once the
    account is deactivated."""
    client = Client()
    _login(client, "leader", PASSWORD)
    assert client.session[BACKEND_SESSION_KEY] == "balint.auth.ModelBackend"
    fields = [f.attname for f in User._meta.concrete_fields]
    stored = User.objects.get(pk=world.leader.pk)
    with django_assert_num_queries(3):  # the session, the user, the memberships (the navigation bar)
        response = client.get(reverse("password_change"))
    user = response.wsgi_request.user
    assert response.status_code == 200 and user.pk == world.leader.pk
    assert {f: getattr(user, f) for f in fields} == {f: getattr(stored, f) for f in fields}
    assert user.last_login is not None and user.last_login.tzinfo is not None

    User.objects.filter(pk=world.leader.pk).update(is_active=False)
    assert not _signed_in(client)


def test_deactivation_ends_a_session_in_the_middle_of_writing(client, world):
    """The deactivated co-leader's next autosave is refused as logged out, and nothing is saved."""
    meeting = Meeting.objects.create(group=world.group, number=1, starts_at=timezone.now() - timedelta(hours=2),
                                     status=Meeting.Status.HELD)
    note = note_open(meeting=meeting, author=world.coleader2)
    section = note.sections.get(kind="discussion")
    writer = Client()
    writer.force_login(world.coleader2)
    url = reverse("fieldnotes:note_autosave", args=[note.pk])

    def autosave(version):
        return writer.post(url, data=json.dumps({"version": version, "sections": {str(section.pk): "Typed."}}),
                           content_type="application/json")

    assert autosave(0).status_code == 200
    client.force_login(world.admin)
    client.post(reverse("sessions:person_deactivate", args=[world.course.pk, world.coleader2.pk]))
    response = autosave(1)
    assert response.status_code == 401 and response.json()["error"] == "login_required"
    note.refresh_from_db()
    assert note.version == 1
    assert _login(Client(), "coleader2", PASSWORD).status_code == 200  # and cannot log in again


# --- Idle timeout ----------------------------------------------------------------------


def _session_row(client) -> Session:
    return Session.objects.get(session_key=client.cookies[settings.SESSION_COOKIE_NAME].value)


def test_idle_timeout_is_two_hours_by_default():
    assert settings.SESSION_COOKIE_AGE == 2 * 60 * 60
    assert settings.SESSION_ENGINE == "balint.session_store"
    assert "balint.middleware.IdleSessionRefreshMiddleware" in settings.MIDDLEWARE


def test_a_session_left_idle_for_two_hours_ends(world):
    start = timezone.now()
    client = Client()
    with clock(start):
        _login(client, "leader", PASSWORD)
        assert _signed_in(client)
    with clock(start + timedelta(hours=2, minutes=1)):
        response = client.get(reverse("sessions:dashboard"))
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_activity_keeps_a_session_alive_past_two_hours(world):
    start = timezone.now()
    client = Client()
    with clock(start):
        _login(client, "leader", PASSWORD)
    # A request every 70 minutes for five hours: never idle for two hours.
    for minutes in range(70, 5 * 60, 70):
        with clock(start + timedelta(minutes=minutes)):
            assert _signed_in(client), f"logged out after {minutes} minutes of activity"
    last = start + timedelta(minutes=280)
    with clock(last + timedelta(hours=2, minutes=1)):
        assert not _signed_in(client)


def test_the_expiry_moves_every_few_minutes_not_on_every_request(world):
    start = timezone.now()
    client = Client()
    with clock(start):
        _login(client, "leader", PASSWORD)
    expiry = _session_row(client).expire_date
    with clock(start + timedelta(minutes=1)):
        client.get(reverse("password_change"))
    assert _session_row(client).expire_date == expiry  # no write a minute later
    with clock(start + timedelta(minutes=6)):
        client.get(reverse("password_change"))
    assert _session_row(client).expire_date == start + timedelta(minutes=6, seconds=settings.SESSION_COOKIE_AGE)


@pytest.mark.parametrize("json_endpoint", [True, False])
def test_an_expired_session_on_a_json_endpoint_answers_401(world, json_endpoint):
    meeting = Meeting.objects.create(group=world.group, number=1, starts_at=timezone.now() - timedelta(hours=2),
                                     status=Meeting.Status.HELD)
    note = note_open(meeting=meeting, author=world.coleader1)
    start = timezone.now()
    client = Client()
    with clock(start):
        _login(client, "coleader1", PASSWORD)
    with clock(start + timedelta(hours=3)):
        if json_endpoint:
            response = client.post(reverse("fieldnotes:note_autosave", args=[note.pk]), content_type="application/json",
                                   data=json.dumps({"version": 0, "sections": {}}))
            assert response.status_code == 401  # the editor keeps the text and asks to log in again
        else:
            response = client.get(reverse("fieldnotes:note_edit", args=[note.pk]))
            assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
