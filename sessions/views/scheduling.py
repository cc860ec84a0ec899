"""Scheduling sessions (one-off and series), rescheduling and cancelling them,
the attendance register and the case presentations of a session.

Leaders of the group and course admins make the changes; everyone who reaches
the group sees a session's page. Real names appear only where
`can_see_identities` allows.
"""

from __future__ import annotations

import zoneinfo
from datetime import datetime

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.dateformat import format as date_format
from django.views.decorators.http import require_GET, require_http_methods

from fieldnotes.panels import meeting_notes_panel

from ..access import get_access, get_group_for, get_meeting_for, groups_for, meetings_for
from ..forms.scheduling import AttendanceForm, CancelForm, CaseForm, MeetingForm, SeriesForm
from ..models import CasePresentation, Meeting, Role
from ..services import scheduling as services
from ..services.scheduling import SchedulingRefused

MANAGE = (Role.ADMIN, Role.LEADER)


# --- Helpers ------------------------------------------------------------------


def _clash_report(request, found: dict[datetime, list[services.Clash]], tz: zoneinfo.ZoneInfo) -> list[dict]:
    """Clashes per proposed start, in words, for the warning box.

    A clash in a group the user cannot open (the same leader's group in
    another course, say) is described by its time only.
    """
    if not found:
        return []
    visible = set(groups_for(request).values_list("pk", flat=True))
    report = []
    for start in sorted(found):
        items = []
        for clash in found[start]:
            other = clash.meeting
            begins, ends = timezone.localtime(other.starts_at, tz), timezone.localtime(other.ends_at, tz)
            when = f"{date_format(begins, 'D j M Y, H:i')}–{date_format(ends, 'H:i')}"
            shown = other.group_id in visible
            if shown:
                label = f"{other.group.name} · session {other.number}, {when}"
                if other.place:
                    label += f", {other.place}"
            else:
                label = f"A session of another group, {when}"
            items.append(
                {"label": label, "reasons": ", ".join(clash.reasons), "meeting_pk": other.pk if shown else None}
            )
        report.append({"when": timezone.localtime(start, tz), "items": items})
    return report


def _refuse(request, message: str, meeting: Meeting):
    messages.error(request, message)
    return redirect("sessions:meeting_detail", pk=meeting.pk)


def _can_manage(request, group) -> bool:
    return bool(get_access(request).roles_in_group(group) & set(MANAGE))


def _get_case_for(request, pk: int) -> CasePresentation:
    """A case presentation in a group the user manages (404 otherwise)."""
    try:
        return (
            CasePresentation.objects.filter(meeting__in=meetings_for(request, *MANAGE))
            .select_related("meeting__group__course", "presenter")
            .get(pk=pk)
        )
    except CasePresentation.DoesNotExist:
        raise Http404("No such case.") from None


def _presenters(meeting: Meeting, *, keep=None):
    """Who can be chosen as presenter: those present, once attendance is taken.

    Before attendance is recorded everyone in the group can be chosen. `keep`
    is the current presenter of a case being edited, who stays choosable.
    """
    participants = meeting.group.participants.all()
    if meeting.attendance.exists():
        wanted = Q(attendance__meeting=meeting, attendance__present=True)
        if keep is not None:
            wanted |= Q(pk=keep.pk)
        participants = participants.filter(wanted).distinct()
    return participants.order_by("pseudonym")


# --- Scheduling ---------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def meeting_new(request, pk):
    group = get_group_for(request, pk, *MANAGE)
    tz = group.course.tz
    form = MeetingForm(request.POST or None, tz=tz, initial=MeetingForm.initial_for_group(group))
    clashes = []
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        found = services.find_clashes(
            group=group, slots=[(data["starts_at"], data["duration_minutes"])], place=data["place"]
        )
        if not found or data["schedule_anyway"]:
            meeting = services.meeting_create(
                group=group, starts_at=data["starts_at"], duration_minutes=data["duration_minutes"],
                place=data["place"], actor=request.user,
            )
            messages.success(request, f"Session {meeting.number} scheduled.")
            return redirect("sessions:meeting_detail", pk=meeting.pk)
        clashes = _clash_report(request, found, tz)
    return render(
        request, "sessions/meeting_form.html",
        {"form": form, "group": group, "course": group.course, "meeting": None, "clashes": clashes},
    )


@login_required
@require_http_methods(["GET", "POST"])
def series_new(request, pk):
    group = get_group_for(request, pk, *MANAGE)
    tz = group.course.tz
    form = SeriesForm(request.POST or None, tz=tz, initial=SeriesForm.initial_for_group(group))
    clashes = []
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        found = services.find_clashes(
            group=group, slots=[(start, data["duration_minutes"]) for start in data["starts"]], place=data["place"]
        )
        if not found or data["schedule_anyway"]:
            meetings = services.series_create(
                group=group, starts=data["starts"], duration_minutes=data["duration_minutes"],
                place=data["place"], actor=request.user,
            )
            first, last = meetings[0].local_start(), meetings[-1].local_start()
            messages.success(
                request,
                f"{len(meetings)} sessions scheduled, {date_format(first, 'j M Y')} to {date_format(last, 'j M Y')}, "
                f"at {date_format(first, 'H:i')}.",
            )
            return redirect("sessions:group_detail", pk=group.pk)
        clashes = _clash_report(request, found, tz)
    return render(
        request, "sessions/series_form.html",
        {"form": form, "group": group, "course": group.course, "clashes": clashes},
    )


@login_required
@require_GET
def meeting_detail(request, pk):
    meeting = get_meeting_for(request, pk)
    group, course = meeting.group, meeting.group.course
    access = get_access(request)
    can_manage = _can_manage(request, group)
    attendance = list(meeting.attendance.select_related("participant").order_by("participant__pseudonym"))
    present = [a.participant for a in attendance if a.present]
    context = {
        "meeting": meeting,
        "group": group,
        "course": course,
        "local_start": meeting.local_start(),
        "local_end": timezone.localtime(meeting.ends_at, course.tz),
        "show_identities": access.can_see_identities(group),
        "can_manage": can_manage,
        "attendance_recorded": bool(attendance),
        "present": present,
        "absent_count": len(attendance) - len(present),
        "participant_count": group.participants.count(),
        "cases": meeting.cases.select_related("presenter"),
        "schedule": group.meetings.order_by("starts_at", "number"),
        "notes": meeting_notes_panel(request, meeting),
    }
    if can_manage:
        context["attendance_refusal"] = services.attendance_refusal(meeting)
        context["case_refusal"] = services.case_refusal(meeting)
    return render(request, "sessions/meeting_detail.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def meeting_reschedule(request, pk):
    meeting = get_meeting_for(request, pk, *MANAGE)
    if meeting.status == Meeting.Status.CANCELLED:
        return _refuse(request, "This session was cancelled and cannot be rescheduled. Schedule a new session instead.",
                       meeting)
    group = meeting.group
    tz = group.course.tz
    form = MeetingForm(request.POST or None, tz=tz, initial=MeetingForm.initial_for_meeting(meeting))
    clashes = []
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        found = services.find_clashes(
            group=group, slots=[(data["starts_at"], data["duration_minutes"])], place=data["place"],
            exclude_pk=meeting.pk,
        )
        if not found or data["schedule_anyway"]:
            try:
                services.meeting_reschedule(
                    meeting=meeting, starts_at=data["starts_at"], duration_minutes=data["duration_minutes"],
                    place=data["place"], actor=request.user,
                )
            except SchedulingRefused as refusal:
                return _refuse(request, str(refusal), meeting)
            messages.success(request, f"Session {meeting.number} rescheduled.")
            return redirect("sessions:meeting_detail", pk=meeting.pk)
        clashes = _clash_report(request, found, tz)
    return render(
        request, "sessions/meeting_form.html",
        {"form": form, "group": group, "course": group.course, "meeting": meeting, "clashes": clashes},
    )


@login_required
@require_http_methods(["GET", "POST"])
def meeting_cancel(request, pk):
    meeting = get_meeting_for(request, pk, *MANAGE)
    if meeting.status == Meeting.Status.CANCELLED:
        return _refuse(request, "This session is already cancelled.", meeting)
    if meeting.status == Meeting.Status.HELD:
        return _refuse(request, "This session has been held, with attendance recorded; it cannot be cancelled.",
                       meeting)
    form = CancelForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.meeting_cancel(meeting=meeting, reason=form.cleaned_data["reason"], actor=request.user)
        except SchedulingRefused as refusal:
            return _refuse(request, str(refusal), meeting)
        messages.success(request, f"Session {meeting.number} cancelled.")
        return redirect("sessions:meeting_detail", pk=meeting.pk)
    return render(
        request, "sessions/meeting_cancel.html",
        {"form": form, "meeting": meeting, "group": meeting.group, "course": meeting.group.course,
         "local_start": meeting.local_start()},
    )


# --- Attendance ---------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def attendance(request, pk):
    meeting = get_meeting_for(request, pk, *MANAGE)
    refusal = services.attendance_refusal(meeting)
    if refusal:
        return _refuse(request, refusal, meeting)
    group = meeting.group
    participants = list(group.participants.order_by("pseudonym"))
    # Bound on every POST: a register with no box ticked (nobody came) is a real answer.
    form = AttendanceForm(request.POST if request.method == "POST" else None, participants=participants)
    if request.method == "POST" and form.is_valid():
        present_ids = set(form.cleaned_data["present"])
        try:
            services.attendance_record(
                meeting=meeting, participants=participants, present_ids=present_ids, actor=request.user
            )
        except SchedulingRefused as refusal:
            return _refuse(request, str(refusal), meeting)
        messages.success(request, f"Attendance saved: {len(present_ids)} of {len(participants)} present.")
        return redirect("sessions:meeting_detail", pk=meeting.pk)

    if form.is_bound:
        ticked = {int(v) for v in form.data.getlist("present") if v.isdecimal()}  # isdigit() lets "²" through
    else:
        ticked = {a.participant_id for a in meeting.attendance.all() if a.present}
    rows = [{"participant": p, "present": p.pk in ticked} for p in participants]
    return render(
        request, "sessions/attendance.html",
        {"form": form, "meeting": meeting, "group": group, "course": group.course, "rows": rows,
         "local_start": meeting.local_start(), "show_identities": get_access(request).can_see_identities(group)},
    )


# --- Case presentations -------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def case_add(request, pk):
    meeting = get_meeting_for(request, pk, *MANAGE)
    refusal = services.case_refusal(meeting)
    if refusal:
        return _refuse(request, refusal, meeting)
    form = CaseForm(
        request.POST or None,
        initial={"order": services.next_case_order(meeting)},
        meeting=meeting,
        presenters=_presenters(meeting),
        show_identities=get_access(request).can_see_identities(meeting.group),
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            case = services.case_add(
                meeting=meeting, presenter=data["presenter"], order=data["order"], title=data["title"],
                actor=request.user,
            )
        except SchedulingRefused as refusal:
            return _refuse(request, str(refusal), meeting)
        messages.success(request, f"Case {case.order} added.")
        return redirect("sessions:meeting_detail", pk=meeting.pk)
    return render(
        request, "sessions/case_form.html",
        {"form": form, "meeting": meeting, "group": meeting.group, "course": meeting.group.course, "case": None},
    )


@login_required
@require_http_methods(["GET", "POST"])
def case_edit(request, pk):
    case = _get_case_for(request, pk)
    meeting = case.meeting
    form = CaseForm(
        request.POST or None,
        case=case,
        meeting=meeting,
        presenters=_presenters(meeting, keep=case.presenter),
        show_identities=get_access(request).can_see_identities(meeting.group),
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        services.case_update(
            case=case, presenter=data["presenter"], order=data["order"], title=data["title"], actor=request.user
        )
        messages.success(request, f"Case {case.order} saved.")
        return redirect("sessions:meeting_detail", pk=meeting.pk)
    return render(
        request, "sessions/case_form.html",
        {"form": form, "meeting": meeting, "group": meeting.group, "course": meeting.group.course, "case": case},
    )


@login_required
@require_http_methods(["GET", "POST"])
def case_delete(request, pk):
    case = _get_case_for(request, pk)
    meeting = case.meeting
    if request.method == "POST":
        try:
            services.case_delete(case=case, actor=request.user)
        except SchedulingRefused as refusal:
            return _refuse(request, str(refusal), meeting)
        messages.success(request, f"Case {case.order} deleted.")
        return redirect("sessions:meeting_detail", pk=meeting.pk)
    return render(
        request, "sessions/case_confirm_delete.html",
        {"case": case, "meeting": meeting, "group": meeting.group, "course": meeting.group.course,
         "show_identities": get_access(request).can_see_identities(meeting.group)},
    )
