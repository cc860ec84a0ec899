"""Field notes: one per co-leader per session, in sections, with every saved version kept."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Exists, OuterRef, Q, Subquery

from balint.limits import REASON_CHARS
from sessions.models import Attendance, CasePresentation, Consent, Meeting

# Generous: about 15,000 words in one section. Longer text gets a clear message.
MAX_SECTION_CHARS = 100_000


class FieldNote(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        SUBMITTED = "submitted", "Submitted"

    meeting = models.ForeignKey(Meeting, on_delete=models.PROTECT, related_name="field_notes")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="field_notes")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    # Bumped by every save; a save names the version it was based on and is
    # refused when another save got there first (optimistic locking).
    version = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    imported_from = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["meeting", "author"]
        constraints = [
            models.UniqueConstraint(fields=["meeting", "author"], name="one_note_per_author_per_session"),
            models.CheckConstraint(
                condition=Q(status="draft") | Q(submitted_at__isnull=False), name="submitted_note_has_time"
            ),
        ]

    def __str__(self) -> str:
        return f"Field note by {self.author} on {self.meeting}"

    @property
    def is_submitted(self) -> bool:
        return self.status == self.Status.SUBMITTED


class NoteSectionQuerySet(models.QuerySet):
    def with_eligibility(self) -> NoteSectionQuerySet:
        """Annotate each section with the consent facts that decide research use.

        - `presenter_consented`: a case's presenter had consent in force when
          the session started (their latest decision by then was "given");
        - `presenter_removed`: the presenter withdrew with "also remove my past data";
        - `attendee_count`: how many were recorded present;
        - `attendee_blocked`: some attendee lacked consent at the session, or
          has since withdrawn with past data removed.
        """
        meeting_start = OuterRef("note__meeting__starts_at")
        decision_at_session = (
            Consent.objects.filter(participant=OuterRef("case__presenter"), decided_at__lte=meeting_start)
            .order_by("-decided_at", "-id")
            .values("decision")[:1]
        )
        removed = Consent.objects.filter(
            decision=Consent.Decision.WITHDRAWN, withdrawal_scope=Consent.WithdrawalScope.PAST
        )
        attendees = Attendance.objects.filter(meeting=OuterRef("note__meeting"), present=True)
        attendee_decision = (
            Consent.objects.filter(
                participant=OuterRef("participant"), decided_at__lte=OuterRef(OuterRef("note__meeting__starts_at"))
            )
            .order_by("-decided_at", "-id")
            .values("decision")[:1]
        )
        blocked_attendees = attendees.annotate(decision=Subquery(attendee_decision)).filter(
            Q(decision__isnull=True)
            | ~Q(decision=Consent.Decision.GIVEN)
            | Exists(removed.filter(participant=OuterRef("participant")))
        )
        return self.annotate(
            presenter_decision=Subquery(decision_at_session),
            presenter_removed=Exists(removed.filter(participant=OuterRef("case__presenter"))),
            has_attendees=Exists(attendees),
            attendee_blocked=Exists(blocked_attendees),
        )

    def decide_research_eligible(self) -> NoteSectionQuerySet:
        """Sections that are research data, decided from the facts now:
        submitted, and consent allows it.

        A case section needs its presenter's consent in force at the session
        and no withdrawal of past data; a discussion (or other) section needs
        the same of every attendee, and a recorded attendance. The answer is
        stored in `research_ok` by `fieldnotes.eligibility`; reads use
        `research_eligible()`.
        """
        return (
            self.with_eligibility()
            .filter(note__status=FieldNote.Status.SUBMITTED)
            .filter(
                Q(kind=NoteSection.Kind.CASE, presenter_decision=Consent.Decision.GIVEN, presenter_removed=False)
                | (~Q(kind=NoteSection.Kind.CASE) & Q(has_attendees=True, attendee_blocked=False))
            )
        )

    def research_eligible(self) -> NoteSectionQuerySet:
        """Sections that are research data (the stored decision, kept up to
        date in the same transaction as every change of consent, attendance,
        cases, session times and note status; see `fieldnotes.eligibility`)."""
        return self.filter(research_ok=True)


class NoteSection(models.Model):
    """A part of a note: one per case presented, one for the group discussion,
    optionally one for other observations. Text is NFC with "\\n" line endings."""

    class Kind(models.TextChoices):
        CASE = "case", "Case"
        DISCUSSION = "discussion", "Group discussion"
        OTHER = "other", "Other observations"

    note = models.ForeignKey(FieldNote, on_delete=models.CASCADE, related_name="sections")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    case = models.ForeignKey(
        CasePresentation, on_delete=models.PROTECT, null=True, blank=True, related_name="note_sections"
    )
    text = models.TextField(blank=True)
    # Bumped whenever this section's text changes, so later work (coded
    # segments) can tell which text it was anchored to.
    revision = models.PositiveIntegerField(default=0)
    # Whether this section is research data: `decide_research_eligible()`,
    # stored by `fieldnotes.eligibility.refresh` whenever a fact it depends on
    # changes, so that every read is one indexed column instead of five
    # correlated consent lookups per section.
    research_ok = models.BooleanField(default=False, editable=False)

    objects = NoteSectionQuerySet.as_manager()

    class Meta:
        ordering = ["note", "kind", "case__order"]
        indexes = [models.Index(fields=["note"], condition=Q(research_ok=True), name="research_sections")]
        constraints = [
            models.CheckConstraint(
                condition=(Q(kind="case") & Q(case__isnull=False)) | (~Q(kind="case") & Q(case__isnull=True)),
                name="section_case_matches_kind",
            ),
            models.UniqueConstraint(
                fields=["note", "case"], condition=Q(case__isnull=False), name="one_section_per_case"
            ),
            models.UniqueConstraint(
                fields=["note", "kind"], condition=~Q(kind="case"), name="one_discussion_and_other_section"
            ),
        ]

    def __str__(self) -> str:
        if self.kind == self.Kind.CASE:
            return f"Case {self.case.order}: {self.case.title}"
        return self.get_kind_display()

    @property
    def sort_key(self) -> tuple:
        order = {self.Kind.CASE: 0, self.Kind.DISCUSSION: 1, self.Kind.OTHER: 2}[self.kind]
        return (order, self.case.order if self.case_id else 0)

    def ineligibility_reason(self) -> str:
        """Why a section of a submitted note is not research data ('' if it is).

        Needs the annotations of `with_eligibility()`. Never names who withdrew.
        """
        if self.kind == self.Kind.CASE:
            if self.presenter_removed:
                return "The presenter withdrew consent and asked for past data to be removed."
            if self.presenter_decision != Consent.Decision.GIVEN:
                return "The presenter's consent was not in force at this session."
            return ""
        if not self.has_attendees:
            return "Attendance was not recorded, so consent cannot be checked for everyone present."
        if self.attendee_blocked:
            return "Not everyone present had consent in force for research use of this session."
        return ""


class NoteVersion(models.Model):
    """Each save of a note: who, when, what kind of save; the texts it changed
    are in its SectionRevisions."""

    class Action(models.TextChoices):
        SAVE = "save", "Saved"
        SUBMIT = "submit", "Submitted"
        AMEND = "amend", "Amended"
        IMPORT = "import", "Imported"

    note = models.ForeignKey(FieldNote, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    action = models.CharField(max_length=10, choices=Action.choices)
    reason = models.TextField(blank=True, max_length=REASON_CHARS)
    saved_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    saved_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["note", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["note", "version"], name="note_version_unique"),
            models.CheckConstraint(condition=~Q(action="amend") | ~Q(reason=""), name="amendment_has_reason"),
        ]

    def __str__(self) -> str:
        return f"{self.note} v{self.version} ({self.get_action_display()})"


class SectionRevision(models.Model):
    """A section's text as it was after one save."""

    section = models.ForeignKey(NoteSection, on_delete=models.CASCADE, related_name="revisions")
    note_version = models.ForeignKey(NoteVersion, on_delete=models.CASCADE, related_name="section_revisions")
    revision = models.PositiveIntegerField()
    text = models.TextField(blank=True)

    class Meta:
        ordering = ["section", "revision"]
        constraints = [
            models.UniqueConstraint(fields=["section", "revision"], name="section_revision_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.section} r{self.revision}"


class IdentifierConfirmation(models.Model):
    """The author said this text, found by the identifier check, is not an identifier."""

    note = models.ForeignKey(FieldNote, on_delete=models.CASCADE, related_name="identifier_confirmations")
    text = models.CharField(max_length=200)
    confirmed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    confirmed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["note", "text"], name="identifier_confirmed_once"),
        ]

    def __str__(self) -> str:
        return f"“{self.text}” is not an identifier"


class NoteReminder(models.Model):
    """A reminder e-mail sent for a missing note, so each goes out once."""

    meeting = models.ForeignKey(Meeting, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    sent_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["meeting", "user"], name="one_reminder_per_note"),
        ]

    def __str__(self) -> str:
        return f"Reminder to {self.user} for {self.meeting}"
