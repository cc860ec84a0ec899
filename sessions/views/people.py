"""People and roles of a course: the course admin's page."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from ..access import get_access, get_course_for
from ..forms.people import PersonAddForm, RoleAddForm
from ..models import Group, Membership, Role
from ..services import people as people_service

User = get_user_model()


def _people_page(request, course, add_form):
    memberships = (
        Membership.objects.filter(course=course)
        .select_related("user", "group")
        .order_by("user__last_name", "user__first_name", "user__username", "role", "group__name")
    )
    persons: dict[int, dict] = {}
    for membership in memberships:
        person = persons.setdefault(membership.user_id, {"user": membership.user, "memberships": []})
        person["memberships"].append(membership)
    # Deactivating is for people whose every role is in a course this admin runs.
    admin_of = get_access(request).course_ids(Role.ADMIN)
    elsewhere = set(
        Membership.objects.filter(user_id__in=list(persons))
        .exclude(course_id__in=admin_of)
        .values_list("user_id", flat=True)
        .distinct()
    )
    for user_id, person in persons.items():
        user = person["user"]
        person["can_deactivate"] = (
            user.is_active and user_id != request.user.pk and user_id not in elsewhere and not user.is_staff
        )
        person["elsewhere"] = user_id in elsewhere
    add_form.helper.form_action = reverse("sessions:person_add", args=[course.pk])
    return render(
        request,
        "sessions/people.html",
        {
            "course": course,
            "persons": list(persons.values()),
            "form": add_form,
            "groups": list(Group.objects.filter(course=course).order_by("name")),
            "roles": Role.choices,
        },
    )


@login_required
@require_GET
def people(request, pk):
    course = get_course_for(request, pk, Role.ADMIN)
    return _people_page(request, course, PersonAddForm(course=course))


@login_required
@require_http_methods(["GET", "POST"])
def person_add(request, pk):
    course = get_course_for(request, pk, Role.ADMIN)
    if request.method == "GET":
        return _people_page(request, course, PersonAddForm(course=course))
    form = PersonAddForm(request.POST, course=course)
    if form.is_valid():
        data = form.cleaned_data
        try:
            added = people_service.person_add(
                course=course,
                email=data["email"],
                first_name=data["first_name"],
                last_name=data["last_name"],
                role=data["role"],
                group=data["group"],
                actor=request.user,
                build_absolute_uri=request.build_absolute_uri,
            )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            who = added.user.get_full_name() or added.user.get_username()
            role = people_service.role_label(added.membership.role, added.membership.group)
            if added.account_created:
                messages.success(
                    request, f"Account created for {who}, now {role}. A link to set a password was e-mailed."
                )
            elif not added.role_added:
                messages.info(request, f"{who} is already {role} but has not set a password: a new link was e-mailed.")
            else:
                messages.success(request, f"{who} is now {role}.")
                if added.link_sent:
                    messages.info(request, f"{who} had not set a password yet, so a new link was e-mailed.")
            if not added.user.is_active:
                messages.warning(
                    request, f"{who}'s account is deactivated: the role takes effect only if a site administrator reactivates it."
                )
            return redirect("sessions:people", course.pk)
    return _people_page(request, course, form)


def _member_of(course, user_pk):
    return get_object_or_404(User.objects.filter(memberships__course=course).distinct(), pk=user_pk)


@login_required
@require_POST
def role_add(request, pk, user_pk):
    course = get_course_for(request, pk, Role.ADMIN)
    user = _member_of(course, user_pk)
    form = RoleAddForm(request.POST, course=course, user=user)
    if form.is_valid():
        try:
            membership = people_service.role_add(
                course=course,
                user=user,
                role=form.cleaned_data["role"],
                group=form.cleaned_data["group"],
                actor=request.user,
            )
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        else:
            label = people_service.role_label(membership.role, membership.group)
            messages.success(request, f"{user.get_full_name() or user.get_username()} is now also {label}.")
    else:
        problems = [str(e) for errors in form.errors.values() for e in errors]
        messages.error(request, f"Role not added for {user.get_username()}: " + " ".join(problems))
    return redirect("sessions:people", course.pk)


@login_required
@require_POST
def role_remove(request, pk, membership_pk):
    course = get_course_for(request, pk, Role.ADMIN)
    membership = get_object_or_404(
        Membership.objects.select_related("user", "group", "course"), pk=membership_pk, course=course
    )
    user, label = membership.user, people_service.role_label(membership.role, membership.group)
    try:
        people_service.role_remove(membership=membership, actor=request.user)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect("sessions:people", course.pk)
    messages.success(request, f"{user.get_full_name() or user.get_username()} is no longer {label}.")
    if user.pk == request.user.pk and membership.role == Role.ADMIN:
        return redirect("sessions:dashboard")  # no longer allowed on the people page
    return redirect("sessions:people", course.pk)


@login_required
@require_POST
def person_deactivate(request, pk, user_pk):
    course = get_course_for(request, pk, Role.ADMIN)
    user = _member_of(course, user_pk)
    try:
        people_service.person_deactivate(course=course, user=user, actor=request.user)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(
            request, f"{user.get_full_name() or user.get_username()}'s account is deactivated and signed out everywhere."
        )
    return redirect("sessions:people", course.pk)
