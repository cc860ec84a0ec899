"""People and roles of a course, managed by its admins. Every change is audited.

Roles take effect at once: permissions are read from memberships on every
request, and a deactivated user's sessions are deleted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import default_token_generator
from django.contrib.sessions.models import Session
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from .. import audit
from ..models import COURSE_ROLES, GROUP_ROLES, Course, Group, Membership, Role

User = get_user_model()


@dataclass
class PersonAdded:
    user: object
    membership: Membership
    account_created: bool
    role_added: bool
    link_sent: bool


def is_pending(user) -> bool:
    """An active account whose owner has not chosen a password yet."""
    return user.is_active and not user.has_usable_password() and bool(user.email)


def role_label(role: str, group: Group | None) -> str:
    label = Role(role).label.lower()
    return f"{label} of {group.name}" if group is not None else label


def find_user_by_email(email: str):
    """The one account with this e-mail (or this e-mail as username), or None.

    Raises ValidationError when the address is ambiguous.
    """
    matches = list(User.objects.filter(Q(email__iexact=email) | Q(username__iexact=email))[:2])
    if len(matches) > 1:
        raise ValidationError(
            {"email": "More than one account uses this address; ask a site administrator to sort it out."},
            code="ambiguous",
        )
    return matches[0] if matches else None


def _check_role(course: Course, role: str, group: Group | None) -> None:
    if role in GROUP_ROLES and group is None:
        raise ValidationError({"group": "A leader or co-leader needs a group."}, code="group_required")
    if role in COURSE_ROLES and group is not None:
        raise ValidationError(
            {"group": "Course admins and researchers belong to the whole course: leave the group empty."},
            code="group_forbidden",
        )
    if group is not None and group.course_id != course.pk:
        raise ValidationError({"group": "Choose a group of this course."}, code="group_course")


def _add_membership(*, course: Course, user, role: str, group: Group | None, actor) -> Membership:
    _check_role(course, role, group)
    who = user.get_username()
    if Membership.objects.filter(user=user, course=course, role=role, group=group).exists():
        raise ValidationError(f"{who} is already {role_label(role, group)}.", code="duplicate")
    try:
        with transaction.atomic():
            membership = Membership.objects.create(user=user, course=course, role=role, group=group)
    except IntegrityError:
        raise ValidationError(f"{who} is already {role_label(role, group)}.", code="duplicate") from None
    audit.record(
        actor=actor,
        action="membership.add",
        obj=membership,
        course=course,
        summary=f"{who} made {role_label(role, group)}",
        changes={"user": [None, who], "role": [None, role], "group": [None, group.name if group else None]},
    )
    return membership


def send_set_password_link(*, user, build_absolute_uri: Callable[[str], str], course: Course | None = None) -> None:
    """E-mail the user a link to choose a password (Django's reset token), after commit."""
    path = reverse(
        "password_reset_confirm",
        kwargs={"uidb64": urlsafe_base64_encode(force_bytes(user.pk)), "token": default_token_generator.make_token(user)},
    )
    context = {"user": user, "course": course, "link": build_absolute_uri(path), "login_url": build_absolute_uri(reverse("login"))}
    subject = "".join(render_to_string("registration/account_created_subject.txt", context).splitlines())
    body = render_to_string("registration/account_created_email.txt", context)
    transaction.on_commit(lambda: send_mail(subject, body, None, [user.email]))


def person_add(
    *,
    course: Course,
    email: str,
    first_name: str,
    last_name: str,
    role: str,
    group: Group | None,
    actor,
    build_absolute_uri: Callable[[str], str],
) -> PersonAdded:
    """Give someone a role in the course, creating their account if there is none.

    A new account has no password: the person gets an e-mail with a link to set
    one. Someone who never set theirs gets a fresh link, even when they already
    have the role (that is how an admin resends an expired link).
    """
    email = User.objects.normalize_email(email).strip()
    with transaction.atomic():
        user = find_user_by_email(email)
        created = user is None
        if not created and is_pending(user):
            existing = Membership.objects.filter(user=user, course=course, role=role, group=group).first()
            if existing is not None:
                send_set_password_link(user=user, build_absolute_uri=build_absolute_uri, course=course)
                audit.record(
                    actor=actor,
                    action="user.link_resent",
                    obj=user,
                    course=course,
                    summary=f"Set-password link sent again to {user.get_username()}",
                )
                return PersonAdded(user=user, membership=existing, account_created=False, role_added=False, link_sent=True)
        if created:
            user = User(username=email, email=email, first_name=first_name, last_name=last_name)
            user.set_unusable_password()
            user.save()
            audit.record(
                actor=actor,
                action="user.create",
                obj=user,
                course=course,
                summary=f"Account {email} created",
                changes={"username": [None, email]},
            )
        membership = _add_membership(course=course, user=user, role=role, group=group, actor=actor)
        link_sent = is_pending(user)
        if link_sent:
            send_set_password_link(user=user, build_absolute_uri=build_absolute_uri, course=course)
    return PersonAdded(user=user, membership=membership, account_created=created, role_added=True, link_sent=link_sent)


def role_add(*, course: Course, user, role: str, group: Group | None, actor) -> Membership:
    """A further role for someone who already has one in the course."""
    with transaction.atomic():
        return _add_membership(course=course, user=user, role=role, group=group, actor=actor)


def role_remove(*, membership: Membership, actor) -> None:
    """Take a role away at once; a course always keeps an active admin."""
    course, user, group = membership.course, membership.user, membership.group
    with transaction.atomic():
        if membership.role == Role.ADMIN:
            others = (
                Membership.objects.select_for_update()
                .filter(course=course, role=Role.ADMIN, user__is_active=True)
                .exclude(pk=membership.pk)
            )
            if not others.exists():
                raise ValidationError(
                    "This is the course's last admin; make someone else course admin first.", code="last_admin"
                )
        pk = membership.pk
        membership.delete()
        membership.pk = pk  # for the audit record
        audit.record(
            actor=actor,
            action="membership.remove",
            obj=membership,
            course=course,
            summary=f"{user.get_username()} is no longer {role_label(membership.role, group)}",
            changes={
                "user": [user.get_username(), None],
                "role": [membership.role, None],
                "group": [group.name if group else None, None],
            },
        )


def deactivation_refusal(*, user, actor) -> str | None:
    """Why `actor` may not deactivate `user`, or None when they may."""
    if user.pk == actor.pk:
        return "You cannot deactivate your own account."
    if user.is_superuser or user.is_staff:
        return "This is a site administrator's account; only a superuser can change it, in the Django admin."
    admin_of = Membership.objects.for_user(actor).filter(role=Role.ADMIN).values("course_id")
    if Membership.objects.filter(user=user).exclude(course_id__in=admin_of).exists():
        return (
            f"{user.get_username()} also has roles in a course you do not administer; "
            "remove your course's roles instead, or ask a site administrator."
        )
    return None


def person_deactivate(*, course: Course, user, actor) -> None:
    """Switch the account off and end its sessions, so it takes effect at once."""
    with transaction.atomic():
        refusal = deactivation_refusal(user=user, actor=actor)
        if refusal:
            raise ValidationError(refusal, code="refused")
        if not user.is_active:
            raise ValidationError(f"{user.get_username()} is already deactivated.", code="inactive")
        user.is_active = False
        user.save(update_fields=["is_active"])
        ended = end_sessions(user)
        audit.record(
            actor=actor,
            action="user.deactivate",
            obj=user,
            course=course,
            summary=f"Account {user.get_username()} deactivated",
            changes={"is_active": [True, False], "sessions_ended": [None, ended]},
        )


def end_sessions(user) -> int:
    """Delete the user's live database sessions; returns how many."""
    ended = 0
    for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator():
        if session.get_decoded().get("_auth_user_id") == str(user.pk):
            session.delete()
            ended += 1
    return ended
