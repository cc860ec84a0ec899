"""The landing page after login: what each of the user's roles needs now."""

from django.contrib.auth.decorators import login_required
from django.db.models import Count, Prefetch
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from fieldnotes.reminders import notes_to_write

from ..access import courses_for, get_access, groups_for
from .courses import can_create_course
from ..models import Consent, Meeting, Participant, Role

UPCOMING_LIMIT = 8


@login_required
@require_GET
def dashboard(request):
    access = get_access(request)
    roles = access.roles()
    now = timezone.now()
    context = {"roles": roles, "now": now, "can_create_course": can_create_course(request.user)}

    if Role.ADMIN in roles or Role.RESEARCHER in roles:
        context["courses"] = courses_for(request, Role.ADMIN, Role.RESEARCHER).annotate(
            group_count=Count("groups", distinct=True)
        )
        context["admin_course_ids"] = access.course_ids(Role.ADMIN)

    if Role.LEADER in roles:
        led = groups_for(request, Role.LEADER)
        context["led_groups"] = led.select_related("course")
        context["leader_upcoming"] = (
            Meeting.objects.filter(group__in=led).upcoming().select_related("group__course")[:UPCOMING_LIMIT]
        )
        context["attendance_due"] = (
            Meeting.objects.filter(group__in=led, status=Meeting.Status.SCHEDULED, starts_at__lte=now)
            .select_related("group__course")
            .order_by("starts_at")
        )
        participants = Participant.objects.filter(group__in=led).select_related("group").prefetch_related(
            Prefetch("consents", queryset=Consent.objects.order_by("-decided_at", "-id"))
        )
        context["consent_gaps"] = [p for p in participants if p.current_consent is None]

    if Role.COLEADER in roles:
        coled = groups_for(request, Role.COLEADER)
        context["coleader_upcoming"] = (
            Meeting.objects.filter(group__in=coled).upcoming().select_related("group__course")[:UPCOMING_LIMIT]
        )
        context["notes_to_write"] = notes_to_write(request.user, coled, now)

    return render(request, "sessions/dashboard.html", context)
