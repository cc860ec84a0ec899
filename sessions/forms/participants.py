"""Forms for participants, their consent, and consent form versions."""

from __future__ import annotations

from datetime import datetime

from crispy_forms.helper import FormHelper
from crispy_forms.layout import Submit
from django import forms
from django.utils import timezone

from balint.forms import Textarea

from ..models import Consent, ConsentForm, Course, Participant


def _helper(submit_label: str, *, css: str = "btn-primary") -> FormHelper:
    helper = FormHelper()
    helper.form_method = "post"
    helper.attrs = {"novalidate": ""}
    helper.add_input(Submit("submit", submit_label, css_class=css))
    return helper


class ParticipantForm(forms.ModelForm):
    study_year = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=6,
        help_text="1 to 6.",
        widget=forms.NumberInput(attrs={"inputmode": "numeric"}),
    )

    class Meta:
        model = Participant
        fields = ["pseudonym", "name", "email", "study_year"]
        labels = {"pseudonym": "Pseudonym", "name": "Full name", "email": "E-mail"}
        help_texts = {
            "pseudonym": "What everyone else sees, in notes, reports and exports. Unique in the course.",
            "name": "Seen only by the course admin and the group's leader.",
        }

    def __init__(self, *args, course: Course, submit_label: str = "Save", **kwargs):
        super().__init__(*args, **kwargs)
        self.course = course
        self.fields["pseudonym"].widget.attrs["autocapitalize"] = "characters"
        self.helper = _helper(submit_label)

    def clean_pseudonym(self) -> str:
        pseudonym = self.cleaned_data["pseudonym"].strip()
        taken = Participant.objects.filter(course=self.course, pseudonym__iexact=pseudonym)
        if self.instance.pk:
            taken = taken.exclude(pk=self.instance.pk)
        if taken.exists():
            raise forms.ValidationError(
                f"{pseudonym} is already used in this course; try {Participant.next_pseudonym(self.course)}."
            )
        return pseudonym

    def clean_name(self) -> str:
        return " ".join(self.cleaned_data["name"].split())


class LocalDateTimeInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self, **kwargs):
        super().__init__(format="%Y-%m-%dT%H:%M", **kwargs)


class _ConsentEventForm(forms.Form):
    """The when and how shared by recording and withdrawing consent.

    Views validate and render these forms under `timezone.override(course.tz)`,
    so the local time typed is read in the course's zone.
    """

    decided_at = forms.DateTimeField(
        label="When",
        widget=LocalDateTimeInput(),
        help_text="Local time of the course. Not in the future.",
    )
    method = forms.ChoiceField(
        label="How", choices=Consent.Method.choices, widget=forms.RadioSelect, initial=Consent.Method.PAPER
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["decided_at"].initial = timezone.localtime().replace(second=0, microsecond=0, tzinfo=None)

    def clean_decided_at(self) -> datetime:
        value = self.cleaned_data["decided_at"]
        now = timezone.now()
        if value.replace(second=0, microsecond=0) == now.replace(second=0, microsecond=0):
            # "This minute" means now: keep the exact moment so that events
            # recorded within the same minute stay in the order they were made.
            return now
        if value > now:
            raise forms.ValidationError("The time cannot be in the future.")
        return value


class ConsentRecordForm(_ConsentEventForm):
    decision = forms.ChoiceField(
        label="Decision",
        choices=[(Consent.Decision.GIVEN, "Consent given"), (Consent.Decision.DECLINED, "Consent declined")],
        widget=forms.RadioSelect,
    )
    form = forms.ModelChoiceField(
        label="Consent form version",
        queryset=ConsentForm.objects.none(),
        empty_label=None,
        error_messages={"invalid_choice": "Choose one of this course's consent form versions."},
    )
    field_order = ["decision", "form", "decided_at", "method"]

    def __init__(self, *args, course: Course, default_form: ConsentForm | None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["form"].queryset = ConsentForm.objects.filter(course=course).order_by("-version")
        self.fields["form"].label_from_instance = (
            lambda f: f"Version {f.version} – {f.title} (effective {f.effective_date:%d.%m.%Y})"
        )
        self.fields["form"].initial = default_form
        self.helper = _helper("Record consent decision")


class ConsentWithdrawForm(_ConsentEventForm):
    scope = forms.ChoiceField(
        label="What the withdrawal covers",
        choices=Consent.WithdrawalScope.choices,
        widget=forms.RadioSelect,
        help_text="“Also remove my past data” takes this participant's cases, and the discussions of "
        "sessions they attended, out of every analysis, report and export.",
        error_messages={"required": "Say what the withdrawal covers: stop future collection, or also remove past data."},
    )
    field_order = ["scope", "decided_at", "method"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.helper = _helper("Record withdrawal", css="btn-danger")


class ConsentFormForm(forms.ModelForm):
    """A new version of the consent form, pre-filled from the latest one."""

    class Meta:
        model = ConsentForm
        fields = ["title", "text", "effective_date"]
        labels = {"text": "Text of the form", "effective_date": "Effective from"}
        widgets = {
            "text": Textarea(attrs={"rows": 14}),
            "effective_date": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        }
        help_texts = {
            "text": "Saving makes a new version. Consents already recorded keep the version and text they were given on.",
        }

    def __init__(self, *args, submit_label: str = "Save as new version", **kwargs):
        super().__init__(*args, **kwargs)
        self.helper = _helper(submit_label)

    def clean_text(self) -> str:
        text = self.cleaned_data["text"].replace("\r\n", "\n").strip()
        if not text:
            raise forms.ValidationError("The form needs its text.")
        return text
