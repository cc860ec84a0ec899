"""Calendars: the group .ics download, the personal feed at a secret URL,
and its revocation. Every file is parsed back with icalendar."""

from datetime import datetime, timedelta

import icalendar
import pytest
from django.urls import reverse

from conftest import HELSINKI, helsinki
from sessions.models import AuditEvent, CalendarFeed, Meeting, Membership, Role

pytestmark = pytest.mark.django_db


def make_meeting(group, starts_at, number, **extra):
    return Meeting.objects.create(group=group, number=number, starts_at=starts_at, **extra)


def parse(response) -> icalendar.Calendar:
    assert response["Content-Type"].startswith("text/calendar")
    return icalendar.Calendar.from_ical(b"".join(response) if response.streaming else response.content)


def events_by_summary(cal):
    return {str(event["SUMMARY"]): event for event in cal.walk("VEVENT")}


@pytest.fixture
def schedule(world):
    """Sessions on both sides of Finland's DST change (2026-10-25), one cancelled."""
    return [
        make_meeting(world.group, helsinki(2026, 10, 20, 17), 1, place="Room 101"),
        make_meeting(world.group, helsinki(2026, 10, 27, 17), 2, place="Room 101"),
        make_meeting(world.group, helsinki(2026, 11, 3, 17), 3, place="Room 101",
                     status=Meeting.Status.CANCELLED, cancel_reason="Aino Virtanen is ill"),
    ]


# --- Group calendar ---------------------------------------------------------


def test_group_calendar_downloads_with_local_times_and_the_time_zone(client, world, schedule):
    client.force_login(world.coleader1)
    response = client.get(reverse("sessions:group_ics", args=[world.group.pk]))
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="student-balint-groups-2026-group-a.ics"'
    cal = parse(response)
    events = events_by_summary(cal)
    assert set(events) == {f"Balint Group A – session {n}" for n in (1, 2, 3)}
    for event in events.values():
        start = event.decoded("DTSTART")
        assert event["DTSTART"].params["TZID"] == "Europe/Helsinki"
        assert (start.hour, start.minute) == (17, 0)
        assert event.decoded("DTEND") - start == timedelta(minutes=90)
        assert str(event["LOCATION"]) == "Room 101"
    before, after = events["Balint Group A – session 1"], events["Balint Group A – session 2"]
    assert before.decoded("DTSTART").utcoffset() == timedelta(hours=3)
    assert after.decoded("DTSTART").utcoffset() == timedelta(hours=2)
    assert before.decoded("DTSTART") == datetime(2026, 10, 20, 17, tzinfo=HELSINKI)
    assert [str(tz["TZID"]) for tz in cal.walk("VTIMEZONE")] == ["Europe/Helsinki"]


def test_uids_are_stable_and_cancelled_sessions_say_so(client, world, schedule):
    client.force_login(world.leader)
    url = reverse("sessions:group_ics", args=[world.group.pk])
    first = events_by_summary(parse(client.get(url)))
    schedule[0].starts_at += timedelta(days=1)
    schedule[0].save()
    second = events_by_summary(parse(client.get(url)))
    assert {str(e["UID"]) for e in first.values()} == {str(e["UID"]) for e in second.values()}
    assert len({str(e["UID"]) for e in first.values()}) == 3
    assert str(first["Balint Group A – session 3"]["STATUS"]) == "CANCELLED"
    assert str(first["Balint Group A – session 1"]["STATUS"]) == "CONFIRMED"


def test_calendars_carry_no_participant_identities_nor_cancel_reasons(client, world, schedule):
    client.force_login(world.admin)
    body = client.get(reverse("sessions:group_ics", args=[world.group.pk])).content.decode()
    for participant in world.participants:
        assert participant.name not in body and participant.email not in body
    assert "is ill" not in body


@pytest.mark.parametrize("who", ["admin", "researcher1", "leader", "coleader1"])
def test_everyone_in_the_group_may_download_its_calendar(client, world, schedule, who):
    client.force_login(getattr(world, who))
    assert client.get(reverse("sessions:group_ics", args=[world.group.pk])).status_code == 200


def test_an_empty_group_calendar_is_still_valid(client, world):
    client.force_login(world.leader)
    cal = parse(client.get(reverse("sessions:group_ics", args=[world.group.pk])))
    assert cal.walk("VEVENT") == [] and str(cal["VERSION"]) == "2.0"


def test_group_calendar_needs_a_login(client, world):
    response = client.get(reverse("sessions:group_ics", args=[world.group.pk]))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("who", ["outsider", "leader2", "other_leader"])
def test_group_calendar_is_404_outside_the_group(client, world, who):
    client.force_login(getattr(world, who))
    assert client.get(reverse("sessions:group_ics", args=[world.group.pk])).status_code == 404


def test_group_calendar_is_get_only(client, world):
    client.force_login(world.leader)
    assert client.post(reverse("sessions:group_ics", args=[world.group.pk])).status_code == 405


# --- Personal feed ----------------------------------------------------------


def feed_url(user):
    return reverse("sessions:feed_ics", args=[CalendarFeed.objects.get(user=user).token])


def test_calendar_settings_creates_the_feed_and_shows_its_address(client, world):
    client.force_login(world.coleader1)
    response = client.get(reverse("sessions:calendar_settings"))
    assert response.status_code == 200
    token = CalendarFeed.objects.get(user=world.coleader1).token
    html = response.content.decode()
    assert f"http://testserver/calendar/feed/{token}.ics" in html
    assert f"webcal://testserver/calendar/feed/{token}.ics" in html
    assert reverse("sessions:group_ics", args=[world.group.pk]) in html
    # A second visit shows the same address.
    client.get(reverse("sessions:calendar_settings"))
    assert CalendarFeed.objects.get(user=world.coleader1).token == token


def test_the_feed_lists_the_sessions_of_every_group_the_user_leads_or_coleads(client, world, schedule):
    Membership.objects.create(user=world.coleader1, course=world.course2, group=world.group2, role=Role.COLEADER)
    make_meeting(world.group2, helsinki(2026, 10, 21, 9), 1)
    make_meeting(world.other_group, helsinki(2026, 10, 22, 9), 1)  # not coleader1's group
    client.force_login(world.coleader1)
    client.get(reverse("sessions:calendar_settings"))
    client.logout()

    response = client.get(feed_url(world.coleader1))  # no login
    assert response.status_code == 200
    assert set(events_by_summary(parse(response))) == {
        "Balint Group A – session 1", "Balint Group A – session 2", "Balint Group A – session 3",
        "Balint Group Z – session 1",
    }


def test_a_course_role_alone_puts_nothing_in_the_feed(client, world, schedule):
    client.force_login(world.researcher1)
    client.get(reverse("sessions:calendar_settings"))
    assert parse(client.get(feed_url(world.researcher1))).walk("VEVENT") == []


def test_an_unknown_token_is_404(client, world):
    assert client.get(reverse("sessions:feed_ics", args=["not-a-real-token"])).status_code == 404


def test_revoking_replaces_the_address_and_the_old_one_stops_at_once(client, world, schedule):
    client.force_login(world.leader)
    client.get(reverse("sessions:calendar_settings"))
    old_url = feed_url(world.leader)
    assert client.get(old_url).status_code == 200

    response = client.post(reverse("sessions:calendar_revoke"), follow=True)
    assert response.redirect_chain == [(reverse("sessions:calendar_settings"), 302)]
    assert "new address" in response.content.decode()
    new_url = feed_url(world.leader)
    assert new_url != old_url
    assert client.get(old_url).status_code == 404
    assert client.get(new_url).status_code == 200
    assert AuditEvent.objects.filter(action="calendar_feed.revoke", actor=world.leader).count() == 1


def test_a_deactivated_users_feed_stops_working(client, world, schedule):
    client.force_login(world.leader)
    client.get(reverse("sessions:calendar_settings"))
    url = feed_url(world.leader)
    world.leader.is_active = False
    world.leader.save()
    assert client.get(url).status_code == 404


def test_calendar_pages_need_a_login(client, world):
    response = client.get(reverse("sessions:calendar_settings"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    response = client.post(reverse("sessions:calendar_revoke"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert not CalendarFeed.objects.exists()


def test_calendar_methods(client, world):
    client.force_login(world.leader)
    assert client.post(reverse("sessions:calendar_settings")).status_code == 405
    assert client.get(reverse("sessions:calendar_revoke")).status_code == 405
    assert not CalendarFeed.objects.exists()  # a refused revoke made no feed either
    client.get(reverse("sessions:calendar_settings"))
    assert client.post(feed_url(world.leader)).status_code == 405
