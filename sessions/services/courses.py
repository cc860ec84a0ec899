"""Writes to courses and groups, each recorded in the audit log."""

from django.db import transaction

from .. import audit
from ..models import Course, Group, Membership, Role

COURSE_FIELDS = ["name", "institution", "starts_on", "ends_on", "time_zone", "description"]
GROUP_FIELDS = ["name", "capacity", "default_place", "default_duration_minutes"]


@transaction.atomic
def course_create(*, course: Course, created_by) -> Course:
    """Save a new course and make its creator the first course admin."""
    course.save()
    Membership.objects.create(user=created_by, course=course, role=Role.ADMIN)
    audit.record(
        actor=created_by, action="course.create", obj=course, course=course,
        summary=f"Created course “{course.name}”", changes=audit.diff({}, audit.snapshot(course, COURSE_FIELDS)),
    )
    return course


@transaction.atomic
def course_update(*, course: Course, before: dict, updated_by) -> Course:
    course.save()
    audit.record(
        actor=updated_by, action="course.update", obj=course, course=course,
        summary=f"Edited course “{course.name}”", changes=audit.diff(before, audit.snapshot(course, COURSE_FIELDS)),
    )
    return course


@transaction.atomic
def group_save(*, group: Group, before: dict | None, saved_by) -> Group:
    """Create (before=None) or update a group."""
    group.save()
    audit.record(
        actor=saved_by, action="group.create" if before is None else "group.update", obj=group,
        course=group.course, summary=f"{'Created' if before is None else 'Edited'} group “{group.name}”",
        changes=audit.diff(before or {}, audit.snapshot(group, GROUP_FIELDS)),
    )
    return group
