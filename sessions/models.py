"""Courses, groups, people and roles, participants and consent, and the meetings.

The meeting model is `Meeting`: `Session` belongs to django.contrib.sessions.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
import zoneinfo
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from balint.limits import CONSENT_TEXT_CHARS, DESCRIPTION_CHARS


def validate_time_zone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"“{value}” is not a known time zone (for example Europe/Helsinki).")


class Role(models.TextChoices):
    ADMIN = "admin", "Course admin"
    RESEARCHER = "researcher", "Researcher"
    LEADER = "leader", "Leader"
    COLEADER = "coleader", "Co-leader"


COURSE_ROLES = frozenset({Role.ADMIN, Role.RESEARCHER})
GROUP_ROLES = frozenset({Role.LEADER, Role.COLEADER})


class Course(models.Model):
    name = models.CharField(max_length=200)
    institution = models.CharField(max_length=200, blank=True)
    starts_on = models.DateField(null=True, blank=True)
    ends_on = models.DateField(null=True, blank=True)
    time_zone = models.CharField(
        max_length=64, default="Europe/Helsinki", validators=[validate_time_zone]
    )
    description = models.TextField(blank=True, max_length=DESCRIPTION_CHARS)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_on__isnull=True) | Q(starts_on__isnull=True) | Q(ends_on__gte=models.F("starts_on")),
                name="course_ends_after_start",
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)


class Group(models.Model):
    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="groups")
    name = models.CharField(max_length=100)
    capacity = models.PositiveSmallIntegerField(default=9)
    default_place = models.CharField(max_length=200, blank=True)
    default_duration_minutes = models.PositiveSmallIntegerField(default=90)

    class Meta:
        ordering = ["course", "name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["course", "name"], name="group_name_unique_in_course"),
        ]

    def __str__(self) -> str:
        return self.name


class MembershipQuerySet(models.QuerySet):
    def for_user(self, user) -> MembershipQuerySet:
        if not user.is_authenticated or not user.is_active:
            return self.none()
        return self.filter(user=user)


class Membership(models.Model):
    """A user's role in a course (admin, researcher) or a group (leader, co-leader).

    Every permission check derives from these rows. `course` is set for group
    roles too, so a course's people are one query away.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="memberships")
    group = models.ForeignKey(Group, on_delete=models.CASCADE, null=True, blank=True, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = MembershipQuerySet.as_manager()

    class Meta:
        ordering = ["course", "group", "role", "user__username"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(role__in=[Role.ADMIN, Role.RESEARCHER]) & Q(group__isnull=True))
                | (Q(role__in=[Role.LEADER, Role.COLEADER]) & Q(group__isnull=False)),
                name="membership_group_matches_role",
            ),
            models.UniqueConstraint(
                fields=["user", "course", "role"],
                condition=Q(group__isnull=True),
                name="membership_unique_course_role",
            ),
            models.UniqueConstraint(
                fields=["user", "group", "role"],
                condition=Q(group__isnull=False),
                name="membership_unique_group_role",
            ),
        ]

    def __str__(self) -> str:
        where = self.group or self.course
        return f"{self.user} – {self.get_role_display()} – {where}"

    def clean(self) -> None:
        if self.role in GROUP_ROLES and self.group_id is None:
            raise ValidationError({"group": "A leader or co-leader belongs to a group."})
        if self.role in COURSE_ROLES and self.group_id is not None:
            raise ValidationError({"group": "Course admins and researchers belong to the whole course."})
        if self.group_id and self.group.course_id != self.course_id:
            raise ValidationError({"group": "The group is not in this course."})


class Participant(models.Model):
    """A student in a group. Known everywhere by the pseudonym; the identity
    fields are shown only to the course admin and the group's leader."""

    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="participants")
    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="participants")
    pseudonym = models.CharField(max_length=20)
    name = models.CharField(max_length=200)
    email = models.EmailField(blank=True)
    study_year = models.PositiveSmallIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["group", "pseudonym"]
        constraints = [
            models.UniqueConstraint(fields=["course", "pseudonym"], name="pseudonym_unique_in_course"),
        ]

    def __str__(self) -> str:
        # Never the name: __str__ ends up in logs, admin lists and error pages.
        return self.pseudonym

    @staticmethod
    def next_pseudonym(course: Course) -> str:
        taken = set(Participant.objects.filter(course=course).values_list("pseudonym", flat=True))
        n = 1
        while f"S{n}" in taken:
            n += 1
        return f"S{n}"

    def consent_state_at(self, when: datetime) -> Consent | None:
        """The participant's consent event in force at `when`, if any.

        Works on `self.consents.all()`, which callers listing many
        participants prefetch, so this adds no query per participant.
        """
        return consent_in_force(self.consents.all(), when)

    @property
    def current_consent(self) -> Consent | None:
        return self.consent_state_at(timezone.now())


def consent_in_force(records: Iterable[Consent], when: datetime) -> Consent | None:
    """The consent event in force at `when` among `records` (any order): the
    latest dated at or before it; of two at the same moment, the one recorded
    later (the same rule as the SQL in fieldnotes' eligibility queries)."""
    candidates = [r for r in records if r.decided_at <= when]
    return max(candidates, key=lambda r: (r.decided_at, r.pk or 0), default=None)


class ConsentForm(models.Model):
    """One version of a course's consent form. Editing makes a new version."""

    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="consent_forms")
    version = models.PositiveIntegerField()
    title = models.CharField(max_length=200, default="Consent to research use of field notes")
    text = models.TextField(max_length=CONSENT_TEXT_CHARS)
    effective_date = models.DateField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["course", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["course", "version"], name="consent_form_version_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.title} (v{self.version})"


class Consent(models.Model):
    """One consent event for a participant: given, declined or withdrawn.

    Records are never edited; the latest one at a moment is the state then.
    The form's version and text are frozen here as signed.
    """

    class Decision(models.TextChoices):
        GIVEN = "given", "Given"
        DECLINED = "declined", "Declined"
        WITHDRAWN = "withdrawn", "Withdrawn"

    class Method(models.TextChoices):
        PAPER = "paper", "Paper form"
        ELECTRONIC = "electronic", "Electronic"

    class WithdrawalScope(models.TextChoices):
        FUTURE = "future", "Stop future collection"
        PAST = "past", "Also remove my past data"

    participant = models.ForeignKey(Participant, on_delete=models.CASCADE, related_name="consents")
    form = models.ForeignKey(ConsentForm, on_delete=models.PROTECT, related_name="consents", null=True, blank=True)
    form_version = models.PositiveIntegerField(null=True, blank=True)
    form_text = models.TextField(blank=True)
    decision = models.CharField(max_length=10, choices=Decision.choices)
    decided_at = models.DateTimeField(default=timezone.now)
    method = models.CharField(max_length=12, choices=Method.choices)
    withdrawal_scope = models.CharField(max_length=10, choices=WithdrawalScope.choices, blank=True)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["participant", "-decided_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(decision="withdrawn") & ~Q(withdrawal_scope=""))
                | (~Q(decision="withdrawn") & Q(withdrawal_scope="")),
                name="consent_withdrawal_has_scope",
            ),
            models.CheckConstraint(
                condition=Q(decision="withdrawn") | Q(form__isnull=False),
                name="consent_decision_names_form",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.participant} {self.get_decision_display()} {self.decided_at:%Y-%m-%d}"

    @property
    def is_active(self) -> bool:
        return self.decision == self.Decision.GIVEN


class MeetingQuerySet(models.QuerySet):
    def active(self) -> MeetingQuerySet:
        return self.exclude(status=Meeting.Status.CANCELLED)

    def upcoming(self) -> MeetingQuerySet:
        return self.active().filter(starts_at__gte=timezone.now() - timedelta(hours=2)).order_by("starts_at")


class Meeting(models.Model):
    """One session of a group (a 90-minute meeting by default)."""

    class Status(models.TextChoices):
        SCHEDULED = "scheduled", "Scheduled"
        HELD = "held", "Held"
        CANCELLED = "cancelled", "Cancelled"

    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="meetings")
    number = models.PositiveSmallIntegerField()
    starts_at = models.DateTimeField()
    duration_minutes = models.PositiveSmallIntegerField(default=90)
    place = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.SCHEDULED)
    cancel_reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = MeetingQuerySet.as_manager()

    class Meta:
        ordering = ["group", "starts_at", "number"]
        constraints = [
            models.UniqueConstraint(fields=["group", "number"], name="meeting_number_unique_in_group"),
            models.CheckConstraint(condition=Q(duration_minutes__gte=1), name="meeting_has_duration"),
            models.CheckConstraint(
                condition=Q(status="cancelled") | Q(cancel_reason=""), name="meeting_reason_only_when_cancelled"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.group} – session {self.number}"

    @property
    def ends_at(self) -> datetime:
        return self.starts_at + timedelta(minutes=self.duration_minutes)

    @property
    def is_past(self) -> bool:
        return self.starts_at <= timezone.now()

    def local_start(self) -> datetime:
        return timezone.localtime(self.starts_at, self.group.course.tz)


class Attendance(models.Model):
    meeting = models.ForeignKey(Meeting, on_delete=models.CASCADE, related_name="attendance")
    participant = models.ForeignKey(Participant, on_delete=models.CASCADE, related_name="attendance")
    present = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["meeting", "participant"], name="attendance_once_per_meeting"),
        ]

    def __str__(self) -> str:
        return f"{self.participant} at {self.meeting}: {'present' if self.present else 'absent'}"


class CasePresentation(models.Model):
    """A case a student presented in a session: the unit contexts and triggers count."""

    meeting = models.ForeignKey(Meeting, on_delete=models.CASCADE, related_name="cases")
    presenter = models.ForeignKey(Participant, on_delete=models.PROTECT, related_name="cases")
    order = models.PositiveSmallIntegerField()
    title = models.CharField(max_length=200)

    class Meta:
        ordering = ["meeting", "order"]
        constraints = [
            models.UniqueConstraint(fields=["meeting", "order"], name="case_order_unique_in_meeting"),
        ]

    def __str__(self) -> str:
        return f"Case {self.order}: {self.title}"


def new_feed_token() -> str:
    return secrets.token_urlsafe(32)


class CalendarFeed(models.Model):
    """A user's secret calendar subscription URL; revoking replaces the token."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="calendar_feed")
    token = models.CharField(max_length=64, unique=True, default=new_feed_token)
    created_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Calendar feed of {self.user}"


class AuditEvent(models.Model):
    """An append-only record of a change: who, when, what.

    Written by the services that make changes; shown read-only to course
    admins. There is no view or admin action that edits or deletes one.
    """

    course = models.ForeignKey(Course, on_delete=models.CASCADE, null=True, blank=True, related_name="audit_events")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    actor_name = models.CharField(max_length=150, blank=True)
    at = models.DateTimeField(default=timezone.now, db_index=True)
    action = models.CharField(max_length=60)
    object_type = models.CharField(max_length=60)
    object_id = models.CharField(max_length=40, blank=True)
    summary = models.CharField(max_length=300)
    changes = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["course", "-at"], name="audit_course_recent")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor_name} {self.action} {self.summary}"
