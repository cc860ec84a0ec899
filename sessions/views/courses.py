"""Courses and groups: their pages, their settings, and the course's audit log."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, Prefetch, Q
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from .. import audit
from ..access import get_access, get_course_for, get_group_for
from ..forms.courses import CourseForm, GroupForm
from ..models import AuditEvent, Consent, Meeting, Membership, Role
from ..services import courses as services

ADMIN = (Role.ADMIN,)


def can_create_course(user) -> bool:
    """Only site staff with the permission create courses (superusers have it)."""
    return user.is_staff and user.has_perm("balint_sessions.add_course")


@login_required
@require_http_methods(["GET", "POST"])
def course_new(request):
    """The creator becomes the new course's admin."""
    if not can_create_course(request.user):
        raise PermissionDenied
    form = CourseForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        course = services.course_create(course=form.save(commit=False), created_by=request.user)
        messages.success(request, f"Course “{course.name}” created. You are its course admin.")
        return redirect("sessions:course_detail", pk=course.pk)
    return render(request, "sessions/course_form.html", {"form": form, "course": None})


@login_required
@require_GET
def course_detail(request, pk):
    course = get_course_for(request, pk)
    access = get_access(request)
    roles = access.roles_in_course(course.pk)
    groups = course.groups.annotate(
        participant_count=Count("participants", distinct=True),
        meeting_count=Count("meetings", filter=~Q(meetings__status=Meeting.Status.CANCELLED), distinct=True),
        held_count=Count("meetings", filter=Q(meetings__status=Meeting.Status.HELD), distinct=True),
    )
    if not roles & {Role.ADMIN, Role.RESEARCHER}:
        groups = groups.filter(pk__in=[gid for gid, cid in access.group_course.items() if cid == course.pk])
    return render(
        request,
        "sessions/course_detail.html",
        {"course": course, "groups": groups, "is_admin": Role.ADMIN in roles, "is_leader": Role.LEADER in roles,
         "is_researcher": Role.RESEARCHER in roles},
    )


@login_required
@require_http_methods(["GET", "POST"])
def course_edit(request, pk):
    course = get_course_for(request, pk, *ADMIN)
    before = audit.snapshot(course, services.COURSE_FIELDS)
    form = CourseForm(request.POST or None, instance=course)
    if request.method == "POST" and form.is_valid():
        services.course_update(course=form.save(commit=False), before=before, updated_by=request.user)
        messages.success(request, "Course saved.")
        return redirect("sessions:course_detail", pk=course.pk)
    return render(request, "sessions/course_form.html", {"form": form, "course": course})


@login_required
@require_http_methods(["GET", "POST"])
def group_new(request, pk):
    course = get_course_for(request, pk, *ADMIN)
    form = GroupForm(request.POST or None, course=course)
    if request.method == "POST" and form.is_valid():
        group = form.save(commit=False)
        group.course = course
        services.group_save(group=group, before=None, saved_by=request.user)
        messages.success(request, f"Group “{group.name}” created. Add its leader and co-leaders under People.")
        return redirect("sessions:group_detail", pk=group.pk)
    return render(request, "sessions/group_form.html", {"form": form, "course": course, "group": None})


@login_required
@require_http_methods(["GET", "POST"])
def group_edit(request, pk):
    group = get_group_for(request, pk, *ADMIN)
    before = audit.snapshot(group, services.GROUP_FIELDS)
    form = GroupForm(request.POST or None, instance=group, course=group.course)
    if request.method == "POST" and form.is_valid():
        services.group_save(group=form.save(commit=False), before=before, saved_by=request.user)
        messages.success(request, "Group saved.")
        return redirect("sessions:group_detail", pk=group.pk)
    return render(request, "sessions/group_form.html", {"form": form, "course": group.course, "group": group})


@login_required
@require_GET
def group_detail(request, pk):
    group = get_group_for(request, pk)
    access = get_access(request)
    roles = access.roles_in_group(group)
    can_manage = bool(roles & {Role.ADMIN, Role.LEADER})
    meetings = group.meetings.annotate(
        present_count=Count("attendance", filter=Q(attendance__present=True), distinct=True),
        case_count=Count("cases", distinct=True),
    ).order_by("starts_at", "number")
    participants = group.participants.prefetch_related(
        Prefetch("consents", queryset=Consent.objects.order_by("-decided_at", "-id"))
    )
    staff = Membership.objects.filter(group=group).select_related("user").order_by("role", "user__last_name")
    return render(
        request,
        "sessions/group_detail.html",
        {
            "course": group.course,
            "group": group,
            "meetings": meetings,
            "participants": participants,
            "staff": staff,
            "can_manage": can_manage,
            "is_admin": Role.ADMIN in roles,
            "show_identities": access.can_see_identities(group),
        },
    )


@login_required
@require_GET
def audit_log(request, pk):
    course = get_course_for(request, pk, *ADMIN)
    events = AuditEvent.objects.filter(course=course).order_by("-at", "-id")
    page = Paginator(events, 50).get_page(request.GET.get("page"))
    return render(request, "sessions/audit_log.html", {"course": course, "page": page})

