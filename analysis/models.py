"""Qualitative coding: a codebook per course, coded segments of note sections,
memos, the researchers' own case codings, and double-coding rounds."""

from __future__ import annotations

import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from balint.limits import DESCRIPTION_CHARS, MEMO_CHARS, REASON_CHARS
from fieldnotes.models import NoteSection
from sessions.models import CasePresentation, Course

HEX_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")


def validate_colour(value: str) -> None:
    if not HEX_COLOUR.match(value):
        raise ValidationError("A colour is written #rrggbb, for example #1f77b4.")


class Category(models.Model):
    """A family of codes: the study's Contexts, Triggers and Themes, or the researchers' own."""

    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="code_categories")
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True, max_length=DESCRIPTION_CHARS)
    order = models.PositiveSmallIntegerField(default=0)
    # What the category counts: the study counts contexts and triggers per
    # case, themes per session and discussion.
    unit = models.CharField(
        max_length=10, choices=[("case", "per case"), ("session", "per session")], default="session"
    )

    class Meta:
        ordering = ["course", "order", "name"]
        verbose_name_plural = "categories"
        constraints = [models.UniqueConstraint(fields=["course", "name"], name="category_name_unique_in_course")]

    def __str__(self) -> str:
        return self.name


class CodeQuerySet(models.QuerySet):
    def active(self) -> CodeQuerySet:
        return self.filter(retired_at__isnull=True)


class Code(models.Model):
    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="codes")
    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="codes")
    parent = models.ForeignKey("self", on_delete=models.PROTECT, null=True, blank=True, related_name="children")
    name = models.CharField(max_length=100)
    definition = models.TextField(blank=True, max_length=DESCRIPTION_CHARS)
    when_to_use = models.TextField(blank=True, max_length=DESCRIPTION_CHARS)
    when_not_to_use = models.TextField(blank=True, max_length=DESCRIPTION_CHARS)
    example = models.TextField(blank=True, max_length=DESCRIPTION_CHARS)
    colour = models.CharField(max_length=7, default="#1f77b4", validators=[validate_colour])
    shortcut = models.CharField(max_length=1, blank=True, help_text="A key (1–9, a–z) to apply this code while coding.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    # Retired codes keep their history and segments but are no longer offered.
    retired_at = models.DateTimeField(null=True, blank=True)
    merged_into = models.ForeignKey("self", on_delete=models.PROTECT, null=True, blank=True, related_name="+")

    objects = CodeQuerySet.as_manager()

    class Meta:
        ordering = ["course", "category__order", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["course", "name"], condition=Q(retired_at__isnull=True), name="active_code_name_unique"
            ),
            models.CheckConstraint(condition=~Q(parent=models.F("pk")), name="code_not_own_parent"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_retired(self) -> bool:
        return self.retired_at is not None


class CodebookChange(models.Model):
    """Every change to a course's codebook, with who, when and why (a memo)."""

    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="codebook_changes")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    at = models.DateTimeField(auto_now_add=True)
    action = models.CharField(max_length=20)
    summary = models.CharField(max_length=300)
    why = models.TextField(blank=True, max_length=REASON_CHARS)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return self.summary


class CodingRound(models.Model):
    """A double-coding round: coders code the same sections blind to each other."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="coding_rounds")
    name = models.CharField(max_length=200)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    closed_at = models.DateTimeField(null=True, blank=True)
    coders = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="coding_rounds")
    sections = models.ManyToManyField(NoteSection, related_name="coding_rounds")
    # The codes compared; none chosen means every active code.
    codes = models.ManyToManyField("Code", blank=True, related_name="coding_rounds")

    class Meta:
        ordering = ["course", "-created_at"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_open(self) -> bool:
        return self.status == self.Status.OPEN


class CodedSegmentQuerySet(models.QuerySet):
    def research(self, course: Course) -> CodedSegmentQuerySet:
        """The course's shared coding of research-eligible text: what every
        analysis view, report and export counts. A consent withdrawal of past
        data takes segments out of it at once."""
        eligible = NoteSection.objects.research_eligible().filter(note__meeting__group__course=course)
        return self.filter(round__isnull=True, section__in=eligible)


class CodedSegment(models.Model):
    """A span of a note section carrying a code.

    Offsets count Unicode code points, end excluded (as REFI-QDA and
    QualCoder do); `quote` is a copy of the text, so a segment can be
    re-anchored when the note is amended. Segments made in a double-coding
    round belong to it and stay out of the shared coding until resolved.
    """

    section = models.ForeignKey(NoteSection, on_delete=models.CASCADE, related_name="segments")
    code = models.ForeignKey(Code, on_delete=models.PROTECT, related_name="segments")
    coder = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="coded_segments")
    start = models.PositiveIntegerField()
    end = models.PositiveIntegerField()
    quote = models.TextField()
    # The section revision the offsets refer to; see fieldnotes.SectionRevision.
    section_revision = models.PositiveIntegerField()
    needs_review = models.BooleanField(default=False)
    round = models.ForeignKey(CodingRound, on_delete=models.CASCADE, null=True, blank=True, related_name="segments")
    # Set on the shared copies a double-coding resolution made, so replacing
    # the resolution finds exactly those.
    resolution = models.ForeignKey(
        "Resolution", on_delete=models.SET_NULL, null=True, blank=True, related_name="copies"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = CodedSegmentQuerySet.as_manager()

    class Meta:
        ordering = ["section", "start", "end", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(end__gt=models.F("start")), name="segment_not_empty"),
        ]
        indexes = [
            models.Index(fields=["code", "section"], name="segment_code_section"),
            models.Index(fields=["section", "start"], name="segment_section_start"),
        ]

    def __str__(self) -> str:
        return f"{self.code} [{self.start}:{self.end}]"


class CaseCoding(models.Model):
    """A context or trigger a researcher set for a case directly, with a note why."""

    case = models.ForeignKey(CasePresentation, on_delete=models.CASCADE, related_name="codings")
    code = models.ForeignKey(Code, on_delete=models.PROTECT, related_name="case_codings")
    set_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    set_at = models.DateTimeField(auto_now_add=True)
    why = models.TextField(blank=True, max_length=REASON_CHARS)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["case", "code"], name="case_code_once")]

    def __str__(self) -> str:
        return f"{self.case}: {self.code}"


class Memo(models.Model):
    """A researcher's memo: on a code, a segment, a note section, a case, or free-standing."""

    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="memos")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="memos")
    title = models.CharField(max_length=200, blank=True)
    text = models.TextField(max_length=MEMO_CHARS)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    code = models.ForeignKey(Code, on_delete=models.CASCADE, null=True, blank=True, related_name="memos")
    segment = models.ForeignKey(CodedSegment, on_delete=models.CASCADE, null=True, blank=True, related_name="memos")
    section = models.ForeignKey(NoteSection, on_delete=models.CASCADE, null=True, blank=True, related_name="memos")
    case = models.ForeignKey(CasePresentation, on_delete=models.CASCADE, null=True, blank=True, related_name="memos")
    round = models.ForeignKey(CodingRound, on_delete=models.CASCADE, null=True, blank=True, related_name="memos")

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # At most one thing a memo is about.
            models.CheckConstraint(
                condition=(
                    Q(code__isnull=True, segment__isnull=True, section__isnull=True, case__isnull=True)
                    | Q(code__isnull=True, segment__isnull=True, section__isnull=True, round__isnull=True)
                    | Q(code__isnull=True, segment__isnull=True, case__isnull=True, round__isnull=True)
                    | Q(code__isnull=True, section__isnull=True, case__isnull=True, round__isnull=True)
                    | Q(segment__isnull=True, section__isnull=True, case__isnull=True, round__isnull=True)
                ),
                name="memo_about_one_thing",
            )
        ]

    def __str__(self) -> str:
        return self.title or self.text[:60]


class Resolution(models.Model):
    """The agreed coding of one code in one section after a double-coding round."""

    round = models.ForeignKey(CodingRound, on_delete=models.CASCADE, related_name="resolutions")
    section = models.ForeignKey(NoteSection, on_delete=models.CASCADE, related_name="+")
    code = models.ForeignKey(Code, on_delete=models.PROTECT, related_name="+")
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    decided_at = models.DateTimeField(auto_now_add=True)
    # Which coder's segments were kept ("none" = the code does not apply).
    kept_coder = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    why = models.TextField(max_length=REASON_CHARS)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["round", "section", "code"], name="one_resolution_per_disagreement")
        ]

    def __str__(self) -> str:
        return f"{self.round}: {self.code} in section {self.section_id}"


class Report(models.Model):
    """A per-course report or export, built in the background.

    The row is the truth about the job (not Celery's result backend): a
    worker claims it with a conditional update, beats a heartbeat while it
    works, and records the outcome; a sweep fails or re-queues a report whose
    worker stopped beating, so none stays "running" for ever.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    class Kind(models.TextChoices):
        REPORT = "report", "Summary report (HTML and PDF)"
        DATA = "data", "Tidy data (CSV and XLSX)"
        QDPX = "qdpx", "Whole project (REFI-QDA .qdpx)"
        QDC = "qdc", "Codebook (REFI-QDA .qdc)"

    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="reports")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    requested_at = models.DateTimeField(auto_now_add=True)
    kinds = models.JSONField(default=list)
    include_memos = models.BooleanField(default=False)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0)
    stage = models.CharField(max_length=200, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    worker = models.CharField(max_length=200, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    data_hash = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(progress__lte=100), name="report_progress_is_a_percentage"),
        ]

    def __str__(self) -> str:
        return f"Report {self.pk} of {self.course} ({self.get_status_display()})"

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.DONE, self.Status.FAILED)


class ReportFile(models.Model):
    """One produced file. Kept in the database so every web and worker machine
    sharing the one PostgreSQL sees it without a shared disk."""

    report = models.ForeignKey(Report, on_delete=models.CASCADE, related_name="files")
    name = models.CharField(max_length=200)
    content_type = models.CharField(max_length=100)
    content = models.BinaryField()
    size = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)

    class Meta:
        ordering = ["report", "name"]
        constraints = [models.UniqueConstraint(fields=["report", "name"], name="report_file_name_unique")]

    def __str__(self) -> str:
        return self.name
