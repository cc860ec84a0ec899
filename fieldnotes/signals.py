"""Keep `NoteSection.research_ok` true to the facts on every save() and
delete() of what it depends on (see `fieldnotes.eligibility`). Fixture loads
(`raw`) are left to `manage.py refresh_research_flags`."""

from __future__ import annotations

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from sessions.models import Attendance, CasePresentation, Consent, Meeting

from . import eligibility
from .models import FieldNote, NoteSection


@receiver(post_save, sender=Consent, dispatch_uid="eligibility_consent_saved")
@receiver(post_delete, sender=Consent, dispatch_uid="eligibility_consent_deleted")
def consent_changed(sender, instance: Consent, raw: bool = False, **kwargs) -> None:
    if raw:
        return
    eligibility.refresh_participant(instance.participant_id)


@receiver(post_save, sender=Attendance, dispatch_uid="eligibility_attendance_saved")
@receiver(post_delete, sender=Attendance, dispatch_uid="eligibility_attendance_deleted")
@receiver(post_save, sender=CasePresentation, dispatch_uid="eligibility_case_saved")
@receiver(post_delete, sender=CasePresentation, dispatch_uid="eligibility_case_deleted")
def meeting_fact_changed(sender, instance, raw: bool = False, **kwargs) -> None:
    if not raw:
        eligibility.refresh_meeting(instance.meeting_id)


@receiver(post_save, sender=Meeting, dispatch_uid="eligibility_meeting_saved")
def meeting_changed(sender, instance: Meeting, created: bool = False, raw: bool = False,
                    update_fields=None, **kwargs) -> None:
    if raw or created:  # a new session has no notes yet
        return
    if update_fields is not None and "starts_at" not in update_fields:
        return  # only the start time (which consent is judged at) matters here
    eligibility.refresh_meeting(instance.pk)


@receiver(post_save, sender=FieldNote, dispatch_uid="eligibility_note_saved")
def note_changed(sender, instance: FieldNote, created: bool = False, raw: bool = False, **kwargs) -> None:
    if not (raw or created):  # a new note has no sections yet
        eligibility.refresh_note(instance.pk)


@receiver(post_save, sender=NoteSection, dispatch_uid="eligibility_section_saved")
def section_changed(sender, instance: NoteSection, raw: bool = False, **kwargs) -> None:
    if not raw:
        eligibility.refresh_note(instance.note_id)
