"""Calendars (RFC 5545) of sessions, and the personal feed's secret token.

Events carry the course's local time with its TZID and a VTIMEZONE, so a
calendar app shows 17:00 on both sides of a daylight-saving change. They never
carry participant identities, nor the free-text cancel reason (which may name
someone): a feed URL can end up in places a page never would.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import date, timedelta
from datetime import timezone as dt_timezone

import icalendar
from django.db import transaction

from .. import audit
from ..models import GROUP_ROLES, CalendarFeed, Group, Meeting, Membership, new_feed_token

PRODID = "-//Balint groups//Sessions//EN"
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")  # what new_feed_token (token_urlsafe) makes
UID_DOMAIN = "balint-groups"


def meeting_uid(meeting: Meeting) -> str:
    """Stable across edits, so a rescheduled session moves rather than duplicates."""
    return f"meeting-{meeting.pk}@{UID_DOMAIN}"


def meeting_summary(meeting: Meeting) -> str:
    return f"Balint {meeting.group.name} – session {meeting.number}"


def build_calendar(
    *, meetings: Iterable[Meeting], name: str, link: Callable[[Meeting], str] | None = None
) -> bytes:
    """An iCalendar file of `meetings` (with group and course loaded)."""
    cal = icalendar.Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("x-wr-calname", name)
    days: list[date] = []
    for meeting in meetings:
        course = meeting.group.course
        start = meeting.local_start()
        event = icalendar.Event()
        event.add("uid", meeting_uid(meeting))
        # Without a METHOD, DTSTAMP is when the event was last revised.
        event.add("dtstamp", meeting.updated_at.astimezone(dt_timezone.utc))
        event.add("last-modified", meeting.updated_at.astimezone(dt_timezone.utc))
        event.add("dtstart", start)
        event.add("dtend", start + timedelta(minutes=meeting.duration_minutes))
        event.add("summary", meeting_summary(meeting))
        if meeting.place:
            event.add("location", meeting.place)
        description = f"{course.name}: {meeting.group.name}, session {meeting.number}."
        if meeting.status == Meeting.Status.CANCELLED:
            event.add("status", "CANCELLED")
            description = f"Cancelled. {description}"
        else:
            event.add("status", "CONFIRMED")
        event.add("description", description)
        if link is not None:
            event.add("url", link(meeting))
        cal.add_component(event)
        days.append(start.date())
    if days:
        # Transitions for the years the events span, not the default 1970–2038.
        cal.add_missing_timezones(
            first_date=date(min(days).year - 1, 1, 1), last_date=date(max(days).year + 2, 1, 1)
        )
    return cal.to_ical()


def group_meetings(group: Group):
    return group.meetings.select_related("group__course").order_by("starts_at", "number")


def feed_meetings(feed: CalendarFeed):
    """Sessions of every group where the feed's owner leads or co-leads."""
    group_ids = Membership.objects.filter(user=feed.user, role__in=GROUP_ROLES).values("group_id")
    return Meeting.objects.filter(group_id__in=group_ids).select_related("group__course").order_by("starts_at")


def feed_for_token(token: str) -> CalendarFeed | None:
    """The feed at `token`, or None when it is unknown, revoked, or its owner deactivated."""
    if not _TOKEN.fullmatch(token):  # e.g. a NUL byte, which PostgreSQL would refuse with an error
        return None
    feed = CalendarFeed.objects.select_related("user").filter(token=token).first()
    if feed is None or not feed.user.is_active:
        return None
    return feed


def feed_get_or_create(*, user) -> CalendarFeed:
    feed, _ = CalendarFeed.objects.get_or_create(user=user)
    return feed


@transaction.atomic
def feed_revoke(*, user) -> CalendarFeed:
    """Replace the user's feed token: the old URL stops working at once."""
    feed, created = CalendarFeed.objects.select_for_update().get_or_create(user=user)
    if not created:
        feed.token = new_feed_token()
        feed.save(update_fields=["token", "created_at"])
    audit.record(actor=user, action="calendar_feed.revoke", obj=feed, summary="Replaced the personal calendar feed URL")
    return feed
