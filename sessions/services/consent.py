"""Participants and their consent: every write here is audited in its transaction.

Consent records are events, never edited: the one in force at a moment is the
latest dated at or before it. Events are kept in date order (a new one may not
be dated before the participant's latest), and two events at the same moment
are ordered by when they were recorded, so a same-minute correction wins.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from .. import audit
from ..models import Consent, ConsentForm, Course, Group, Participant, consent_in_force

# Who someone is stays out of the audit trail: it is kept for ever and must
# not hold a name that a participant may later ask to have erased.
IDENTITY_FIELDS = ("name", "email")
PARTICIPANT_FIELDS = ["pseudonym", "name", "email", "study_year"]


def latest_effective_form(course: Course, today: date | None = None) -> ConsentForm | None:
    """The newest version already in effect, else the newest version at all."""
    today = today or timezone.localdate(timezone=course.tz)
    forms = list(ConsentForm.objects.filter(course=course).order_by("-version"))
    return next((f for f in forms if f.effective_date <= today), forms[0] if forms else None)


def participant_create(
    *,
    group: Group,
    pseudonym: str,
    name: str,
    email: str = "",
    study_year: int | None = None,
    actor,
) -> Participant:
    try:
        with transaction.atomic():
            participant = Participant.objects.create(
                course=group.course,
                group=group,
                pseudonym=pseudonym,
                name=name,
                email=email,
                study_year=study_year,
            )
            audit.record(
                actor=actor,
                action="participant.create",
                obj=participant,
                course=group.course,
                summary=f"Participant {participant.pseudonym} added to {group.name}",
                changes={"pseudonym": [None, pseudonym], "group": [None, group.name]},
            )
    except IntegrityError:
        raise ValidationError(
            {"pseudonym": f"{pseudonym} is already used in this course."}, code="pseudonym_taken"
        ) from None
    return participant


def participant_update(
    *,
    participant: Participant,
    pseudonym: str,
    name: str,
    email: str = "",
    study_year: int | None = None,
    actor,
) -> dict:
    """Save new identity details; returns the audited changes (empty if none)."""
    try:
        with transaction.atomic():
            # "Before" comes from the database: a ModelForm has already set the new values on the instance.
            stored = Participant.objects.select_for_update().get(pk=participant.pk)
            before = audit.snapshot(stored, PARTICIPANT_FIELDS)
            participant.pseudonym, participant.name = pseudonym, name
            participant.email, participant.study_year = email, study_year
            changes = audit.diff(before, audit.snapshot(participant, PARTICIPANT_FIELDS))
            if not changes:
                return {}
            for field in IDENTITY_FIELDS:
                if field in changes:
                    changes[field] = ["(not logged)", "(not logged)"]
            participant.save(update_fields=PARTICIPANT_FIELDS)
            audit.record(
                actor=actor,
                action="participant.update",
                obj=participant,
                course=participant.group.course,
                summary=f"Participant {before['pseudonym']} edited"
                + (f" (now {participant.pseudonym})" if "pseudonym" in changes else ""),
                changes=changes,
            )
    except IntegrityError:
        participant.refresh_from_db()
        raise ValidationError(
            {"pseudonym": f"{pseudonym} is already used in this course."}, code="pseudonym_taken"
        ) from None
    return changes


def _check_in_order(participant: Participant, decided_at: datetime) -> tuple[datetime, Consent | None]:
    """Refuse an event in the future or dated before the latest one; return
    the moment to record it at and the consent in force now.

    Times are typed to the minute. A minute that holds the latest event means
    "after it": the new event gets the latest one's moment, and the order of
    recording (the id) puts it after. So a withdrawal typed right after a
    consent is not refused because the minute shown was read a second early.
    """
    now = timezone.now()
    if decided_at > now:
        raise ValidationError({"decided_at": "The time cannot be in the future."}, code="future")
    # Lock the participant so two recordings at once cannot both pass the check.
    Participant.objects.select_for_update().filter(pk=participant.pk).first()
    records = list(participant.consents.all())
    latest = max(records, key=lambda r: (r.decided_at, r.pk), default=None)
    if latest is not None and decided_at < latest.decided_at:
        if decided_at.second == decided_at.microsecond == 0 and latest.decided_at - decided_at < timedelta(minutes=1):
            decided_at = latest.decided_at
        else:
            local = timezone.localtime(latest.decided_at, participant.group.course.tz)
            raise ValidationError(
                {
                    "decided_at": "Consent events are kept in order: this one cannot be dated before the "
                    f"latest recorded one ({local:%d.%m.%Y %H:%M:%S})."
                },
                code="out_of_order",
            )
    return decided_at, consent_in_force(records, now)


def consent_record(
    *,
    participant: Participant,
    form: ConsentForm,
    decision: str,
    decided_at: datetime,
    method: str,
    actor,
) -> Consent:
    """Record that the participant gave or declined consent on `form`, freezing its text."""
    if decision not in (Consent.Decision.GIVEN, Consent.Decision.DECLINED):
        raise ValidationError({"decision": "Choose given or declined."}, code="decision")
    if form.course_id != participant.course_id:
        raise ValidationError({"form": "That consent form belongs to another course."}, code="form_course")
    with transaction.atomic():
        decided_at, _ = _check_in_order(participant, decided_at)
        consent = Consent.objects.create(
            participant=participant,
            form=form,
            form_version=form.version,
            form_text=form.text,
            decision=decision,
            decided_at=decided_at,
            method=method,
            recorded_by=actor,
        )
        audit.record(
            actor=actor,
            action="consent.record",
            obj=consent,
            course=participant.group.course,
            summary=f"{participant.pseudonym}: consent {consent.get_decision_display().lower()} "
            f"(form v{form.version}, {consent.get_method_display().lower()})",
            changes={
                "decision": [None, decision],
                "form_version": [None, form.version],
                "decided_at": [None, decided_at.isoformat()],
                "method": [None, method],
            },
        )
    return consent


def consent_withdraw(
    *,
    participant: Participant,
    scope: str,
    decided_at: datetime,
    method: str,
    actor,
) -> Consent:
    """Withdraw consent that is in force now; `scope` says whether past data goes too."""
    if scope not in Consent.WithdrawalScope.values:
        raise ValidationError({"scope": "Choose what the withdrawal covers."}, code="scope")
    with transaction.atomic():
        decided_at, current = _check_in_order(participant, decided_at)
        if current is None or current.decision != Consent.Decision.GIVEN:
            raise ValidationError(
                f"{participant.pseudonym} has no consent in force to withdraw; nothing was changed.",
                code="nothing_to_withdraw",
            )
        withdrawal = Consent.objects.create(
            participant=participant,
            # The form whose consent is withdrawn; its text was frozen on that record.
            form=current.form,
            form_version=current.form_version,
            decision=Consent.Decision.WITHDRAWN,
            decided_at=decided_at,
            method=method,
            withdrawal_scope=scope,
            recorded_by=actor,
        )
        audit.record(
            actor=actor,
            action="consent.withdraw",
            obj=withdrawal,
            course=participant.group.course,
            summary=f"{participant.pseudonym}: consent withdrawn – "
            f"{withdrawal.get_withdrawal_scope_display().lower()}",
            changes={
                "decision": [current.decision, Consent.Decision.WITHDRAWN],
                "withdrawal_scope": [None, scope],
                "decided_at": [None, decided_at.isoformat()],
                "method": [None, method],
            },
        )
    return withdrawal


def consent_form_create(
    *,
    course: Course,
    title: str,
    text: str,
    effective_date: date,
    actor,
) -> ConsentForm:
    """A new version of the course's consent form (latest + 1); older records keep theirs."""
    for _attempt in range(3):
        try:
            with transaction.atomic():
                latest = ConsentForm.objects.filter(course=course).aggregate(v=Max("version"))["v"] or 0
                form = ConsentForm.objects.create(
                    course=course,
                    version=latest + 1,
                    title=title,
                    text=text,
                    effective_date=effective_date,
                    created_by=actor,
                )
                audit.record(
                    actor=actor,
                    action="consent_form.create",
                    obj=form,
                    course=course,
                    summary=f"Consent form version {form.version} created, effective {effective_date:%d.%m.%Y}",
                    changes={"version": [latest or None, form.version]},
                )
            return form
        except IntegrityError:
            continue  # someone else took that version number at the same moment
    raise ValidationError("Another version was being saved at the same time; please try again.", code="race")
