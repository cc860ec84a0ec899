"""Calendars: a group's .ics download, and each user's personal feed at a
secret, revocable URL that calendar apps subscribe to without logging in."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_POST

from ..access import get_group_for, groups_for
from ..services import calendar as services


def _ics_response(body: bytes, *, filename: str | None = None) -> HttpResponse:
    response = HttpResponse(body, content_type="text/calendar; charset=utf-8")
    if filename:
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
    # Calendars carry the schedule of named groups: keep them out of shared caches.
    response["Cache-Control"] = "private, no-cache"
    return response


def _link(request):
    return lambda meeting: request.build_absolute_uri(reverse("sessions:meeting_detail", args=[meeting.pk]))


@login_required
@require_GET
def group_ics(request, pk):
    group = get_group_for(request, pk)
    body = services.build_calendar(
        meetings=services.group_meetings(group), name=f"{group.course.name} – {group.name}", link=_link(request)
    )
    filename = f"{slugify(group.course.name)}-{slugify(group.name)}.ics"
    return _ics_response(body, filename=filename)


@require_GET
def feed_ics(request, token):
    """No login: the token is the credential, so a calendar app can poll it."""
    feed = services.feed_for_token(token)
    if feed is None:
        raise Http404("No such calendar.")
    body = services.build_calendar(
        meetings=services.feed_meetings(feed), name="Balint group sessions", link=_link(request)
    )
    return _ics_response(body)


@login_required
@require_GET
def calendar_settings(request):
    feed = services.feed_get_or_create(user=request.user)
    feed_url = request.build_absolute_uri(reverse("sessions:feed_ics", args=[feed.token]))
    groups = groups_for(request).select_related("course").order_by("course__name", "name")
    return render(
        request,
        "sessions/calendar_settings.html",
        {
            "feed_url": feed_url,
            # webcal:// makes most desktop and phone calendars offer to subscribe.
            "webcal_url": "webcal://" + feed_url.split("://", 1)[1],
            "groups": groups,
        },
    )


@login_required
@require_POST
def calendar_revoke(request):
    services.feed_revoke(user=request.user)
    messages.success(
        request,
        "Your calendar feed has a new address. The old one no longer works: "
        "subscribe again with the new address below.",
    )
    return redirect("sessions:calendar_settings")
