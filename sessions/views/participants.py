"""Participants, their consent, and the course's consent form versions.

Participant pages show identities, so only the group's leader and the course
admin reach them; everyone else gets a 404.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from ..access import get_access, get_course_for, get_group_for, get_participant_for
from ..forms.participants import ConsentFormForm, ConsentRecordForm, ConsentWithdrawForm, ParticipantForm
from ..models import Consent, ConsentForm, Participant, Role
from ..services import consent as consent_service

MANAGERS = (Role.ADMIN, Role.LEADER)


def _is_admin(request, course) -> bool:
    return Role.ADMIN in get_access(request).roles_in_course(course.pk)


@login_required
@require_http_methods(["GET", "POST"])
def participant_new(request, pk):
    group = get_group_for(request, pk, *MANAGERS)
    course = group.course
    count = group.participants.count()
    form = ParticipantForm(
        request.POST or None,
        course=course,
        initial={"pseudonym": Participant.next_pseudonym(course)},
        submit_label="Add participant",
    )
    if request.method == "POST" and form.is_valid():
        try:
            participant = consent_service.participant_create(group=group, actor=request.user, **form.cleaned_data)
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, f"{participant.pseudonym} added to {group.name}. Next: record their consent.")
            if count + 1 > group.capacity:
                messages.warning(
                    request, f"{group.name} now has {count + 1} participants; its capacity is {group.capacity}."
                )
            return redirect("sessions:participant_detail", participant.pk)
    return render(
        request,
        "sessions/participant_form.html",
        {"form": form, "course": course, "group": group, "count": count, "full": count >= group.capacity},
    )


@login_required
@require_GET
def participant_detail(request, pk):
    participant = get_participant_for(request, pk, *MANAGERS)
    course = participant.group.course
    consents = list(participant.consents.select_related("recorded_by"))  # newest first
    current = consent_service.consent_in_force(consents, timezone.now())
    return render(
        request,
        "sessions/participant_detail.html",
        {
            "participant": participant,
            "group": participant.group,
            "course": course,
            "consents": consents,
            "current": current,
            "attended": participant.attendance.filter(present=True).count(),
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def participant_edit(request, pk):
    participant = get_participant_for(request, pk, *MANAGERS)
    form = ParticipantForm(request.POST or None, instance=participant, course=participant.group.course)
    if request.method == "POST" and form.is_valid():
        try:
            changes = consent_service.participant_update(
                participant=participant, actor=request.user, **form.cleaned_data
            )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, "Saved." if changes else "Nothing to change.")
            return redirect("sessions:participant_detail", participant.pk)
    return render(
        request,
        "sessions/participant_form.html",
        {"form": form, "participant": participant, "course": participant.group.course, "group": participant.group},
    )


@login_required
@require_http_methods(["GET", "POST"])
def consent_record(request, pk):
    participant = get_participant_for(request, pk, *MANAGERS)
    course = participant.group.course
    # Times are typed and shown in the course's own zone.
    with timezone.override(course.tz):
        form = ConsentRecordForm(
            request.POST or None, course=course, default_form=consent_service.latest_effective_form(course)
        )
        if request.method == "POST" and form.is_valid():
            try:
                consent = consent_service.consent_record(
                    participant=participant,
                    form=form.cleaned_data["form"],
                    decision=form.cleaned_data["decision"],
                    decided_at=form.cleaned_data["decided_at"],
                    method=form.cleaned_data["method"],
                    actor=request.user,
                )
            except ValidationError as error:
                form.add_error(None, error)
            else:
                messages.success(
                    request,
                    f"Recorded: {participant.pseudonym} – consent {consent.get_decision_display().lower()} "
                    f"on form version {consent.form_version}.",
                )
                return redirect("sessions:participant_detail", participant.pk)
        return render(
            request,
            "sessions/consent_record.html",
            {
                "form": form,
                "participant": participant,
                "course": course,
                "group": participant.group,
                "has_forms": form.fields["form"].queryset.exists(),
                "is_admin": _is_admin(request, course),
            },
        )


@login_required
@require_http_methods(["GET", "POST"])
def consent_withdraw(request, pk):
    participant = get_participant_for(request, pk, *MANAGERS)
    course = participant.group.course
    current = consent_service.consent_in_force(participant.consents.all(), timezone.now())
    if current is None or current.decision != Consent.Decision.GIVEN:
        messages.error(
            request, f"{participant.pseudonym} has no consent in force, so there is nothing to withdraw."
        )
        return redirect("sessions:participant_detail", participant.pk)
    with timezone.override(course.tz):
        form = ConsentWithdrawForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                withdrawal = consent_service.consent_withdraw(
                    participant=participant,
                    scope=form.cleaned_data["scope"],
                    decided_at=form.cleaned_data["decided_at"],
                    method=form.cleaned_data["method"],
                    actor=request.user,
                )
            except ValidationError as error:
                form.add_error(None, error)
            else:
                messages.success(
                    request,
                    f"Recorded: {participant.pseudonym} withdrew consent – "
                    f"{withdrawal.get_withdrawal_scope_display().lower()}.",
                )
                return redirect("sessions:participant_detail", participant.pk)
        return render(
            request,
            "sessions/consent_withdraw.html",
            {"form": form, "participant": participant, "course": course, "group": participant.group, "current": current},
        )


@login_required
@require_GET
def consent_forms(request, pk):
    course = get_course_for(request, pk, *MANAGERS)
    forms = (
        ConsentForm.objects.filter(course=course)
        .select_related("created_by")
        .annotate(record_count=Count("consents"))
        .order_by("-version")
    )
    return render(
        request,
        "sessions/consent_forms.html",
        {
            "course": course,
            "forms": forms,
            "is_admin": _is_admin(request, course),
            "in_effect": consent_service.latest_effective_form(course),
        },
    )


@login_required
@require_GET
def consent_form_detail(request, pk):
    course_ids = get_access(request).course_ids(*MANAGERS)
    try:
        consent_form = (
            ConsentForm.objects.filter(course_id__in=course_ids)
            .select_related("course", "created_by")
            .annotate(
                record_count=Count("consents"),
                given_count=Count("consents", filter=Q(consents__decision=Consent.Decision.GIVEN)),
                declined_count=Count("consents", filter=Q(consents__decision=Consent.Decision.DECLINED)),
                withdrawn_count=Count("consents", filter=Q(consents__decision=Consent.Decision.WITHDRAWN)),
            )
            .get(pk=pk)
        )
    except ConsentForm.DoesNotExist:
        raise Http404("No such consent form.") from None
    course = consent_form.course
    return render(
        request,
        "sessions/consent_form_detail.html",
        {"consent_form": consent_form, "course": course, "is_admin": _is_admin(request, course)},
    )


@login_required
@require_http_methods(["GET", "POST"])
def consent_form_new(request, pk):
    course = get_course_for(request, pk, Role.ADMIN)
    latest = ConsentForm.objects.filter(course=course).order_by("-version").first()
    initial = {"effective_date": timezone.localdate(timezone=course.tz)}
    if latest is not None:
        initial.update(title=latest.title, text=latest.text)
    form = ConsentFormForm(
        request.POST or None,
        initial=initial,
        submit_label=f"Save as version {latest.version + 1}" if latest else "Save as version 1",
    )
    if request.method == "POST" and form.is_valid():
        try:
            consent_form = consent_service.consent_form_create(course=course, actor=request.user, **form.cleaned_data)
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, f"Consent form version {consent_form.version} saved.")
            return redirect("sessions:consent_form_detail", consent_form.pk)
    return render(request, "sessions/consent_form_new.html", {"form": form, "course": course, "latest": latest})
