"""Shared fixtures: a course with a group and one user per role, a second
course to be an outsider to, and a Playwright browser on the system Chromium."""

import os
import shutil
import zoneinfo
from dataclasses import dataclass
from datetime import date, datetime

import pytest
from django.contrib.auth import get_user_model

from sessions.models import ConsentForm, Course, Group, Membership, Participant, Role

PASSWORD = "correct-horse-battery-42"
HELSINKI = zoneinfo.ZoneInfo("Europe/Helsinki")


@dataclass
class World:
    course: Course
    group: Group
    other_group: Group  # a second group of the same course, with its own leader
    admin: object
    leader: object
    coleader1: object
    coleader2: object
    researcher1: object
    researcher2: object
    other_leader: object
    outsider: object  # a user with no membership anywhere
    form: ConsentForm
    participants: list
    # A second course, with its own admin and group, to be outside of.
    course2: Course
    group2: Group
    admin2: object
    leader2: object


def make_user(username, **extra):
    user = get_user_model().objects.create_user(
        username=username, email=f"{username}@example.org", password=PASSWORD, **extra
    )
    return user


DATABASE_FIXTURES = {"db", "transactional_db"}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """After every passing test that used the database: the stored research
    decision of every note section equals the one decided from the facts.
    Every service, view and admin path the suite exercises is thereby checked
    for leaving `NoteSection.research_ok` stale (fieldnotes/eligibility.py)."""
    result = yield
    if DATABASE_FIXTURES & set(item.fixturenames) or item.get_closest_marker("django_db"):
        from fieldnotes import eligibility

        drift = eligibility.differences()
        assert not drift, f"research_ok is out of date for note sections {drift}"
    return result


@pytest.fixture
def world(db) -> World:
    course = Course.objects.create(
        name="Student Balint groups 2026",
        institution="University of Helsinki",
        starts_on=date(2026, 9, 1),
        ends_on=date(2027, 5, 31),
    )
    group = Group.objects.create(course=course, name="Group A", default_place="Room 101")
    other_group = Group.objects.create(course=course, name="Group B", default_place="Room 102")
    users = {name: make_user(name) for name in [
        "admin", "leader", "coleader1", "coleader2", "researcher1", "researcher2", "otherleader", "outsider",
        "admin2", "leader2",
    ]}
    Membership.objects.create(user=users["admin"], course=course, role=Role.ADMIN)
    Membership.objects.create(user=users["researcher1"], course=course, role=Role.RESEARCHER)
    Membership.objects.create(user=users["researcher2"], course=course, role=Role.RESEARCHER)
    Membership.objects.create(user=users["leader"], course=course, group=group, role=Role.LEADER)
    Membership.objects.create(user=users["coleader1"], course=course, group=group, role=Role.COLEADER)
    Membership.objects.create(user=users["coleader2"], course=course, group=group, role=Role.COLEADER)
    Membership.objects.create(user=users["otherleader"], course=course, group=other_group, role=Role.LEADER)

    form = ConsentForm.objects.create(
        course=course, version=1, text="I agree that field notes about me may be used for research.",
        effective_date=date(2026, 8, 1), created_by=users["admin"],
    )
    participants = [
        Participant.objects.create(
            course=course, group=group, pseudonym=f"S{i}", name=name, email=f"s{i}@students.example.org",
            study_year=3 + i % 4,
        )
        for i, name in enumerate(["Aino Virtanen", "Eero Korhonen", "Helmi Mäkinen"], start=1)
    ]

    course2 = Course.objects.create(name="Another university's course", institution="Elsewhere")
    group2 = Group.objects.create(course=course2, name="Group Z")
    Membership.objects.create(user=users["admin2"], course=course2, role=Role.ADMIN)
    Membership.objects.create(user=users["leader2"], course=course2, group=group2, role=Role.LEADER)
    Participant.objects.create(course=course2, group=group2, pseudonym="S1", name="Outi Ulkopuolinen")

    return World(
        course=course, group=group, other_group=other_group,
        admin=users["admin"], leader=users["leader"], coleader1=users["coleader1"], coleader2=users["coleader2"],
        researcher1=users["researcher1"], researcher2=users["researcher2"], other_leader=users["otherleader"],
        outsider=users["outsider"], form=form, participants=participants,
        course2=course2, group2=group2, admin2=users["admin2"], leader2=users["leader2"],
    )


def helsinki(year, month, day, hour=0, minute=0) -> datetime:
    """An aware datetime at Helsinki local time."""
    return datetime(year, month, day, hour, minute, tzinfo=HELSINKI)


# --- Browser tests -----------------------------------------------------------

# Playwright's sync API runs an event loop in the test thread; the database
# calls the tests make there are still synchronous.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")


def browser_required() -> bool:
    return os.environ.get("BROWSER_TESTS", "").lower() == "required"


@pytest.fixture(scope="session")
def chromium():
    """The system Chromium under Playwright.

    Without it, browser tests are skipped locally (a fresh laptop may not have
    Chromium) but fail in CI, where BROWSER_TESTS=required.
    """
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        if browser_required():
            pytest.fail(f"Chromium not found at {CHROMIUM}, and BROWSER_TESTS=required")
        pytest.skip(f"Chromium not found at {CHROMIUM}; install Debian's chromium to run browser tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(chromium, live_server):
    """A fresh browser context (own cookies) on the live server."""
    context = chromium.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def login(live_server):
    """Log a Playwright page in through the real login form."""

    def do_login(page, user, password=PASSWORD):
        page.goto("/accounts/login/")
        page.get_by_label("Username").fill(user.get_username())
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"{live_server.url}/")
        return page

    return do_login
