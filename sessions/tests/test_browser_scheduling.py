"""Browser tests for scheduling: a leader plans the course and takes the
register, a co-leader reads the schedule, and a calendar is downloaded."""

import re
from datetime import timedelta

import icalendar
import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from conftest import helsinki
from sessions.models import Attendance, Meeting

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_leader_schedules_a_15_session_series(page, login, world):
    login(page, world.leader)
    page.goto(reverse("sessions:series_new", args=[world.group.pk]))
    page.get_by_label("First session").fill("2026-10-13")
    page.get_by_label("Starts at").fill("17:00")
    expect(page.get_by_label("Number of sessions")).to_have_value("15")
    page.get_by_label("Dates to skip").fill("2026-12-22\n2026-12-29")
    page.get_by_role("button", name="Schedule the series").click()

    expect(page.get_by_role("alert")).to_contain_text("15 sessions scheduled")
    meetings = list(world.group.meetings.order_by("starts_at"))
    assert len(meetings) == 15
    assert {m.local_start().strftime("%H:%M") for m in meetings} == {"17:00"}

    page.goto(reverse("sessions:meeting_detail", args=[meetings[0].pk]))
    expect(page.locator("#schedule a")).to_have_count(15)
    expect(page.locator("#meeting-when")).to_contain_text("Tuesday 13 October 2026, 17:00–18:30")


def test_leader_takes_attendance_by_ticking_boxes(page, login, world):
    meeting = Meeting.objects.create(group=world.group, number=1, starts_at=timezone.now() - timedelta(minutes=5))
    login(page, world.leader)
    page.goto(reverse("sessions:meeting_detail", args=[meeting.pk]))
    page.get_by_role("link", name="Take attendance").click()
    page.get_by_role("checkbox", name="S1").check()
    page.get_by_role("checkbox", name="S3").check()
    page.get_by_role("button", name="Save attendance").click()

    expect(page.get_by_role("alert")).to_contain_text("Attendance saved: 2 of 3 present")
    expect(page.locator("#attendance-summary")).to_contain_text("2 present, 1 absent")
    meeting.refresh_from_db()
    assert meeting.status == Meeting.Status.HELD
    present = set(Attendance.objects.filter(meeting=meeting, present=True).values_list("participant__pseudonym",
                                                                                        flat=True))
    assert present == {"S1", "S3"}


def test_everyone_present_button_ticks_the_whole_register(page, login, world):
    meeting = Meeting.objects.create(group=world.group, number=1, starts_at=timezone.now())
    login(page, world.leader)
    page.goto(reverse("sessions:attendance", args=[meeting.pk]))
    page.get_by_role("button", name="Everyone present").click()
    expect(page.get_by_role("checkbox", checked=True)).to_have_count(3)


def test_coleader_sees_the_session_and_the_schedule(page, login, world):
    first = Meeting.objects.create(group=world.group, number=1, starts_at=timezone.now() + timedelta(days=1),
                                   place="Room 101")
    Meeting.objects.create(group=world.group, number=2, starts_at=timezone.now() + timedelta(days=8))
    login(page, world.coleader1)
    page.goto(reverse("sessions:meeting_detail", args=[first.pk]))
    expect(page.get_by_role("heading", level=1)).to_have_text("Group A · session 1")
    expect(page.locator("#schedule a")).to_have_count(2)
    expect(page.get_by_text("Room 101")).to_be_visible()
    expect(page.get_by_role("link", name="Reschedule")).to_have_count(0)
    assert "Aino Virtanen" not in page.content()


def test_calendar_download(page, login, world):
    Meeting.objects.create(group=world.group, number=1, starts_at=timezone.now() + timedelta(days=1))
    login(page, world.leader)
    page.goto(reverse("sessions:calendar_settings"))
    expect(page.locator("#feed-url")).to_have_value(re.compile(r"/calendar/feed/.+\.ics$"))
    with page.expect_download() as info:
        page.locator("#group-calendars li", has_text="Group A").get_by_role("link", name="Download .ics").click()
    download = info.value
    assert download.suggested_filename == "student-balint-groups-2026-group-a.ics"
    with open(download.path(), "rb") as f:
        cal = icalendar.Calendar.from_ical(f.read())
    [event] = cal.walk("VEVENT")
    assert str(event["SUMMARY"]) == "Balint Group A – session 1"
    assert event["DTSTART"].params["TZID"] == "Europe/Helsinki"


def test_leader_reschedules_a_session_keeping_the_prefilled_date(page, login, world):
    meeting = Meeting.objects.create(group=world.group, number=1, starts_at=helsinki(2026, 12, 3, 17, 0))
    login(page, world.leader)
    page.goto(reverse("sessions:meeting_detail", args=[meeting.pk]))
    page.get_by_role("link", name="Reschedule").click()
    expect(page.get_by_label("Date")).to_have_value("2026-12-03")
    page.get_by_label("Starts at").fill("18:15")
    page.get_by_role("button", name="Save new time").click()

    expect(page.locator("#meeting-when")).to_contain_text("Thursday 3 December 2026, 18:15–19:45")
    meeting.refresh_from_db()
    assert meeting.starts_at == helsinki(2026, 12, 3, 18, 15)
