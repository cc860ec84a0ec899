"""Browser tests: logging in, and a leader recording a consent and its withdrawal."""

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from sessions.models import AuditEvent, Consent

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_login_through_the_form_lands_on_the_dashboard(page, login, world, live_server):
    login(page, world.leader)
    assert page.url == f"{live_server.url}/"
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


def test_leader_records_consent_then_a_withdrawal_and_sees_both_in_the_history(page, login, world):
    participant = world.participants[0]
    login(page, world.leader)
    page.goto(reverse("sessions:participant_detail", args=[participant.pk]))
    expect(page.locator("#consent-status")).to_contain_text("Not recorded")

    page.get_by_role("link", name="Record consent decision").click()
    page.get_by_label("Consent given").check()
    expect(page.get_by_label("Consent form version")).to_contain_text("Version 1")
    page.get_by_label("Paper form").check()
    page.get_by_role("button", name="Record consent decision").click()

    expect(page.get_by_role("alert")).to_contain_text("S1 – consent given on form version 1")
    expect(page.locator("#consent-status")).to_contain_text("Given")
    expect(page.locator("#consent-history tbody tr")).to_have_count(1)

    page.get_by_role("link", name="Record withdrawal").click()
    page.get_by_label("Also remove my past data").check()
    page.get_by_label("Electronic").check()
    page.get_by_role("button", name="Record withdrawal").click()

    expect(page.get_by_role("alert")).to_contain_text("S1 withdrew consent – also remove my past data")
    expect(page.locator("#consent-status")).to_contain_text("Withdrawn")
    rows = page.locator("#consent-history tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("Withdrawn")  # newest first
    expect(rows.nth(0)).to_contain_text("Also remove my past data")
    expect(rows.nth(0)).to_contain_text("Electronic")
    expect(rows.nth(1)).to_contain_text("Given")
    expect(rows.nth(1)).to_contain_text("Paper form")
    expect(page.get_by_role("link", name="Record withdrawal")).to_have_count(0)

    decisions = list(participant.consents.order_by("decided_at", "id").values_list("decision", "withdrawal_scope"))
    assert decisions == [(Consent.Decision.GIVEN, ""), (Consent.Decision.WITHDRAWN, "past")]
    assert AuditEvent.objects.filter(action__in=["consent.record", "consent.withdraw"]).count() == 2

