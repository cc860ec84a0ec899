"""Forms for scheduling sessions, the attendance register and case presentations.

Times are entered as a local date and a local time in the course's zone; the
forms turn them into UTC instants (`cleaned_data["starts_at"]` / `["starts"]`).
"""

from __future__ import annotations

import re
import zoneinfo
from datetime import date

from crispy_forms.helper import FormHelper
from crispy_forms.layout import Div, Field, Layout
from django import forms

from balint.forms import Textarea

from ..models import CasePresentation, Group, Meeting, Participant
from ..services.scheduling import MAX_DURATION_MINUTES, local_to_utc, series_starts

MAX_SERIES = 100
# Sessions are scheduled within this range; far outside it the date arithmetic
# (a series, a session's end, the UTC conversion) would overflow.
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2100, 12, 31)


def _in_range(day: date) -> date:
    if not FIRST_DAY <= day <= LAST_DAY:
        raise forms.ValidationError(f"Choose a date between {FIRST_DAY.year} and {LAST_DAY.year}.")
    return day


def _helper(*fields) -> FormHelper:
    """A helper without its own <form> tag: the templates wrap the form, so the
    clash warning and its "Schedule anyway" box can sit inside it."""
    helper = FormHelper()
    helper.form_tag = False
    helper.disable_csrf = True
    helper.layout = Layout(*fields)
    return helper


class _WhenFields(forms.Form):
    """Shared by the one-off, reschedule and series forms."""

    duration_minutes = forms.IntegerField(
        label="Length (minutes)", min_value=1, max_value=MAX_DURATION_MINUTES
    )
    place = forms.CharField(max_length=200, required=False)
    # Rendered only under a clash warning; ticking it saves despite the clashes.
    schedule_anyway = forms.BooleanField(label="Schedule anyway", required=False)

    def clean_place(self):
        return " ".join(self.cleaned_data["place"].split())


class MeetingForm(_WhenFields):
    """One session: a one-off, or new times for an existing one."""

    date = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"))
    start_time = forms.TimeField(label="Starts at", widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"))
    field_order = ["date", "start_time", "duration_minutes", "place"]

    def __init__(self, *args, tz: zoneinfo.ZoneInfo, **kwargs):
        super().__init__(*args, **kwargs)
        self.tz = tz
        self.fields["start_time"].help_text = f"Local time, {tz.key}."
        self.helper = _helper(
            Div(Div("date", css_class="col-sm-6"), Div("start_time", css_class="col-sm-6"), css_class="row"),
            Div(Div("duration_minutes", css_class="col-sm-4"), Div("place", css_class="col-sm-8"), css_class="row"),
        )

    @classmethod
    def initial_for_group(cls, group: Group) -> dict:
        return {"duration_minutes": group.default_duration_minutes, "place": group.default_place}

    def clean_date(self):
        return _in_range(self.cleaned_data["date"])

    @classmethod
    def initial_for_meeting(cls, meeting: Meeting) -> dict:
        local = meeting.local_start()
        return {
            "date": local.date(),
            "start_time": local.time().replace(second=0, microsecond=0),
            "duration_minutes": meeting.duration_minutes,
            "place": meeting.place,
        }

    def clean(self):
        cleaned = super().clean()
        day, at = cleaned.get("date"), cleaned.get("start_time")
        if day and at:
            try:
                cleaned["starts_at"] = local_to_utc(day, at, self.tz)
            except ValueError as error:
                self.add_error("start_time", str(error))
        return cleaned


def parse_dates(text: str) -> list[date]:
    """ISO dates separated by commas, semicolons, spaces or new lines."""
    found = []
    for token in re.split(r"[\s,;]+", text.strip()):
        if not token:
            continue
        try:
            found.append(date.fromisoformat(token))
        except ValueError:
            raise forms.ValidationError(
                "“%(token)s” is not a date. Write dates as YYYY-MM-DD (for example 2026-12-22), "
                "one per line or separated by commas.",
                code="bad_date",
                params={"token": token},
            ) from None
    return sorted(set(found))


class SeriesForm(_WhenFields):
    """N sessions every K weeks from a first date, at one local time."""

    first_date = forms.DateField(
        label="First session", widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )
    start_time = forms.TimeField(label="Starts at", widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"))
    count = forms.IntegerField(label="Number of sessions", min_value=1, max_value=MAX_SERIES, initial=15)
    every_weeks = forms.IntegerField(label="Every … weeks", min_value=1, max_value=52, initial=1)
    skip_dates = forms.CharField(
        label="Dates to skip",
        required=False,
        widget=Textarea(attrs={"rows": 3, "placeholder": "2026-12-22\n2026-12-29"}),
        help_text="Holidays and other dates with no session, as YYYY-MM-DD, one per line or separated by commas. "
        "The series carries on past them, so you still get the full number of sessions.",
    )
    field_order = ["first_date", "start_time", "count", "every_weeks", "duration_minutes", "place", "skip_dates"]

    def __init__(self, *args, tz: zoneinfo.ZoneInfo, **kwargs):
        super().__init__(*args, **kwargs)
        self.tz = tz
        self.fields["start_time"].help_text = (
            f"Local time, {tz.key}. Every session is at this time on the clock, also after a daylight-saving change."
        )
        self.helper = _helper(
            Div(Div("first_date", css_class="col-sm-6"), Div("start_time", css_class="col-sm-6"), css_class="row"),
            Div(
                Div("count", css_class="col-6 col-sm-4"),
                Div("every_weeks", css_class="col-6 col-sm-4"),
                Div("duration_minutes", css_class="col-sm-4"),
                css_class="row",
            ),
            Field("place"),
            Field("skip_dates"),
        )

    @classmethod
    def initial_for_group(cls, group: Group) -> dict:
        return {
            "count": 15,
            "every_weeks": 1,
            "duration_minutes": group.default_duration_minutes,
            "place": group.default_place,
        }

    def clean_first_date(self):
        return _in_range(self.cleaned_data["first_date"])

    def clean_skip_dates(self):
        return parse_dates(self.cleaned_data["skip_dates"])

    def clean(self):
        cleaned = super().clean()
        needed = ("first_date", "start_time", "count", "every_weeks")
        if all(cleaned.get(name) is not None for name in needed) and "skip_dates" in cleaned:
            try:
                cleaned["starts"] = series_starts(
                    first_date=cleaned["first_date"],
                    at=cleaned["start_time"],
                    count=cleaned["count"],
                    every_weeks=cleaned["every_weeks"],
                    tz=self.tz,
                    skip=cleaned["skip_dates"],
                )
            except ValueError as error:
                self.add_error("start_time", str(error))
        return cleaned


class CancelForm(forms.Form):
    reason = forms.CharField(
        max_length=300,
        error_messages={"required": "Give a reason for cancelling the session."},
        widget=Textarea(attrs={"rows": 3}),
        help_text="Shown on the session page to everyone in the group. Do not name participants.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.helper = _helper("reason")

    def clean_reason(self):
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("Give a reason for cancelling the session.")
        return reason


class AttendanceForm(forms.Form):
    """The register: the ids of the participants present.

    The choices come from the participant list the view already loaded, so
    validating them costs no query.
    """

    present = forms.TypedMultipleChoiceField(coerce=int, required=False)

    def __init__(self, *args, participants: list[Participant], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["present"].choices = [(p.pk, p.pseudonym) for p in participants]


class PresenterField(forms.ModelChoiceField):
    def __init__(self, *args, show_identities: bool = False, **kwargs):
        self.show_identities = show_identities
        super().__init__(*args, **kwargs)

    def label_from_instance(self, obj: Participant) -> str:
        return f"{obj.pseudonym} – {obj.name}" if self.show_identities else obj.pseudonym


class CaseForm(forms.Form):
    """A case presentation: who presented, in which order, and a short title.

    A plain form rather than a ModelForm: the service makes the change (and
    records the before/after), so the form must not touch the stored case.
    """

    order = forms.IntegerField(label="Order in the session", min_value=1, max_value=99)
    title = forms.CharField(
        label="Short title",
        max_length=200,
        help_text="A few words to tell the cases apart, e.g. “The patient who would not stop talking”. "
        "No names or other identifying details.",
    )

    def __init__(self, *args, meeting: Meeting, presenters, show_identities: bool, case=None, **kwargs):
        if case is not None:
            kwargs.setdefault("initial", {"presenter": case.presenter_id, "order": case.order, "title": case.title})
        super().__init__(*args, **kwargs)
        self.meeting = meeting
        self.case = case
        self.fields["presenter"] = PresenterField(
            queryset=presenters, show_identities=show_identities, empty_label="Choose the presenter"
        )
        self.order_fields(["presenter", "order", "title"])
        self.helper = _helper("presenter", "order", "title")

    def clean_order(self):
        order = self.cleaned_data["order"]
        taken = CasePresentation.objects.filter(meeting=self.meeting, order=order)
        if self.case is not None:
            taken = taken.exclude(pk=self.case.pk)
        if taken.exists():
            raise forms.ValidationError("Another case of this session already has this place in the order.")
        return order

    def clean_title(self):
        title = " ".join(self.cleaned_data["title"].split())
        if not title:
            raise forms.ValidationError("Give the case a short title.")
        return title
