"""Who may see what: every view fetches its objects through these helpers.

An object outside the user's memberships is a 404, never a 403, so an id from
another course tells an outsider nothing.

Roles are given per course (admin, researcher) or per group (leader,
co-leader). A helper takes the roles that may use the view; a course role
reaches every group of its course, a group role only its own group.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Q
from django.http import Http404, HttpRequest

from balint.rawsql import Prepared

from .models import COURSE_ROLES, GROUP_ROLES, Course, Group, Meeting, Membership, Participant, Role

ANY_ROLE = (Role.ADMIN, Role.RESEARCHER, Role.LEADER, Role.COLEADER)
MEMBERSHIPS = Prepared("memberships", f"SELECT course_id, group_id, role FROM {Membership._meta.db_table} WHERE user_id = %s")


@dataclass
class Access:
    """The user's memberships, loaded once per request."""

    course_roles: dict[int, set[str]] = field(default_factory=dict)  # course id -> course roles
    group_roles: dict[int, set[str]] = field(default_factory=dict)  # group id -> group roles
    group_course: dict[int, int] = field(default_factory=dict)  # group id -> course id

    @classmethod
    def for_user(cls, user) -> Access:
        access = cls()
        rows = []
        if user.is_authenticated and user.is_active:  # as Membership.objects.for_user
            # Every signed-in page runs this: read as plain rows, without the
            # ORM's query building (or the model's ordering, which joins four tables).
            rows = MEMBERSHIPS.rows([user.pk])
        for course_id, group_id, role in rows:
            if group_id is None:
                access.course_roles.setdefault(course_id, set()).add(role)
            else:
                access.group_roles.setdefault(group_id, set()).add(role)
                access.group_course[group_id] = course_id
        return access

    def roles(self) -> set[str]:
        found: set[str] = set()
        for roles in (*self.course_roles.values(), *self.group_roles.values()):
            found |= roles
        return found

    def has_role(self, role: str) -> bool:
        return role in self.roles()

    def course_ids(self, *roles: str) -> set[int]:
        """Courses where the user holds one of `roles` (group roles count for their course)."""
        wanted = set(roles or ANY_ROLE)
        ids = {cid for cid, have in self.course_roles.items() if have & wanted}
        ids |= {self.group_course[gid] for gid, have in self.group_roles.items() if have & wanted}
        return ids

    def roles_in_course(self, course_id: int) -> set[str]:
        found = set(self.course_roles.get(course_id, set()))
        for gid, roles in self.group_roles.items():
            if self.group_course[gid] == course_id:
                found |= roles
        return found

    def roles_in_group(self, group: Group) -> set[str]:
        return self.course_roles.get(group.course_id, set()) | self.group_roles.get(group.pk, set())

    def group_filter(self, *roles: str) -> dict:
        """Keyword filters matching the groups reachable with `roles`, for `Q(**...)`."""
        wanted = set(roles or ANY_ROLE)
        course_ids = [cid for cid, have in self.course_roles.items() if have & wanted & COURSE_ROLES]
        group_ids = [gid for gid, have in self.group_roles.items() if have & wanted & GROUP_ROLES]
        return {"course_ids": course_ids, "group_ids": group_ids}

    def can_see_identities(self, group: Group) -> bool:
        """Real names are for the course admin and the group's own leader only."""
        return bool(self.roles_in_group(group) & {Role.ADMIN, Role.LEADER})


def get_access(request: HttpRequest) -> Access:
    if not hasattr(request, "_balint_access"):
        request._balint_access = Access.for_user(request.user)
    return request._balint_access


def groups_for(request: HttpRequest, *roles: str):
    """Groups the user reaches with one of `roles` (all roles when none given)."""
    scope = get_access(request).group_filter(*roles)
    return Group.objects.filter(Q(course_id__in=scope["course_ids"]) | Q(pk__in=scope["group_ids"]))


def courses_for(request: HttpRequest, *roles: str):
    return Course.objects.filter(pk__in=get_access(request).course_ids(*roles))


def get_course_for(request: HttpRequest, pk: int, *roles: str) -> Course:
    """The course, if the user holds one of `roles` in it (a group role counts)."""
    if pk not in get_access(request).course_ids(*roles):
        raise Http404("No such course.")
    return Course.objects.get(pk=pk)


def get_group_for(request: HttpRequest, pk: int, *roles: str) -> Group:
    try:
        return groups_for(request, *roles).select_related("course").get(pk=pk)
    except Group.DoesNotExist:
        raise Http404("No such group.") from None


def meetings_for(request: HttpRequest, *roles: str):
    return Meeting.objects.filter(group__in=groups_for(request, *roles))


def get_meeting_for(request: HttpRequest, pk: int, *roles: str) -> Meeting:
    try:
        return meetings_for(request, *roles).select_related("group__course").get(pk=pk)
    except Meeting.DoesNotExist:
        raise Http404("No such session.") from None


def get_participant_for(request: HttpRequest, pk: int, *roles: str) -> Participant:
    try:
        return (
            Participant.objects.filter(group__in=groups_for(request, *roles))
            .select_related("group__course")
            .get(pk=pk)
        )
    except Participant.DoesNotExist:
        raise Http404("No such participant.") from None
