"""Accounts: password reset and change, set-password for new accounts, login lockout."""

import re

from django.core import mail
from django.template.loader import render_to_string
from django.test import Client
from django.urls import reverse

from conftest import PASSWORD

NEW_PASSWORD = "a-fresh-passphrase-for-2026"


def _login(client, username, password):
    return client.post(reverse("login"), {"username": username, "password": password})


def _link_in(message) -> str:
    match = re.search(r"http://testserver(/accounts/reset/\S+/)", message.body)
    assert match, message.body
    return match.group(1)


def _set_password_through(client, link: str, password: str):
    """Follow an e-mailed link and choose a password, as a person would."""
    response = client.get(link, follow=True)  # Django swaps the token for a session and redirects
    assert response.status_code == 200 and "Choose a password" in response.text
    set_url = response.redirect_chain[-1][0]
    return client.post(set_url, {"new_password1": password, "new_password2": password}, follow=True)


def test_login_form_lands_on_the_dashboard(client, world):
    response = _login(client, "leader", PASSWORD)
    assert response.status_code == 302 and response["Location"] == reverse("sessions:dashboard")


def test_password_reset_works_end_to_end(client, world):
    response = client.post(reverse("password_reset"), {"email": "leader@example.org"}, follow=True)
    assert "Check your e-mail" in response.text
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.subject == "Balint groups: choose a new password"
    assert "Your username: leader" in message.body

    done = _set_password_through(Client(), _link_in(message), NEW_PASSWORD)
    assert "Your password is set" in done.text

    fresh = Client()
    assert _login(fresh, "leader", PASSWORD).status_code == 200  # the old one no longer works
    assert _login(fresh, "leader", NEW_PASSWORD)["Location"] == reverse("sessions:dashboard")


def test_reset_link_works_only_once(client, world):
    client.post(reverse("password_reset"), {"email": "leader@example.org"})
    link = _link_in(mail.outbox[0])
    _set_password_through(Client(), link, NEW_PASSWORD)
    again = Client().get(link, follow=True)
    assert "This link no longer works" in again.text


def test_reset_for_an_unknown_address_says_the_same_and_sends_nothing(client, world):
    response = client.post(reverse("password_reset"), {"email": "nobody@example.org"}, follow=True)
    assert "Check your e-mail" in response.text
    assert mail.outbox == []


def test_new_account_sets_its_password_from_the_email_and_logs_in(client, world, django_capture_on_commit_callbacks):
    client.force_login(world.admin)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            reverse("sessions:person_add", args=[world.course.pk]),
            {"email": "new.leader@example.org", "first_name": "Noora", "last_name": "Uusi", "role": "leader",
             "group": world.other_group.pk},
        )
    message = mail.outbox[0]
    assert world.course.name in message.subject
    assert "username new.leader@example.org" in message.body
    done = _set_password_through(Client(), _link_in(message), NEW_PASSWORD)
    assert "Your password is set" in done.text
    assert _login(Client(), "new.leader@example.org", NEW_PASSWORD)["Location"] == reverse("sessions:dashboard")


def test_password_change(client, world):
    client.force_login(world.coleader1)
    page = client.get(reverse("password_change"))
    assert page.status_code == 200 and "Change your password" in page.text
    response = client.post(
        reverse("password_change"),
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
        follow=True,
    )
    assert "Password changed" in response.text
    world.coleader1.refresh_from_db()
    assert world.coleader1.check_password(NEW_PASSWORD)


def test_weak_new_password_is_refused(client, world):
    client.force_login(world.coleader1)
    response = client.post(
        reverse("password_change"), {"old_password": PASSWORD, "new_password1": "12345", "new_password2": "12345"}
    )
    assert response.status_code == 200
    world.coleader1.refresh_from_db()
    assert world.coleader1.check_password(PASSWORD)


def test_password_change_needs_login(client, world):
    assert client.get(reverse("password_change"))["Location"].startswith("/accounts/login/")


def test_logout_ends_the_session(client, world):
    client.force_login(world.leader)
    response = client.post(reverse("logout"))
    assert response.status_code == 302
    assert client.get(reverse("password_change"))["Location"].startswith("/accounts/login/")


def test_logged_out_page_renders():
    assert "You are logged out" in render_to_string("registration/logged_out.html")


def test_sixth_login_after_five_failures_is_locked_out_even_with_the_right_password(client, world):
    for attempt in range(1, 6):
        response = _login(client, "leader", "wrong-password")
        if attempt < 5:
            assert response.status_code == 200 and "Please enter a correct username and password" in response.text
    # The fifth failure itself already answers with the lockout page.
    assert response.status_code == 429
    response = _login(client, "leader", PASSWORD)
    assert response.status_code == 429
    assert "Too many failed attempts" in response.text
    assert "try again in 15 minutes" in response.text.lower()
    assert "_auth_user_id" not in client.session
    # Another user from the same address is not locked out.
    assert _login(Client(), "coleader1", PASSWORD).status_code == 302


def test_lockout_page_has_no_inline_script(client, world):
    for _ in range(6):
        response = _login(client, "leader", "wrong-password")
    assert response.status_code == 429
    assert "<script>" not in response.text and " style=" not in response.text
