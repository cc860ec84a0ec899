from crispy_forms.helper import FormHelper
from crispy_forms.layout import Submit
from django import forms

from balint.forms import Textarea

from ..models import Course, Group


class CourseForm(forms.ModelForm):
    class Meta:
        model = Course
        fields = ["name", "institution", "starts_on", "ends_on", "time_zone", "description"]
        widgets = {
            "starts_on": forms.DateInput(attrs={"type": "date"}),
            "ends_on": forms.DateInput(attrs={"type": "date"}),
            "description": Textarea(attrs={"rows": 3}),
        }
        help_texts = {"time_zone": "Session times are entered and shown in this zone, e.g. Europe/Helsinki."}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.helper = FormHelper()
        self.helper.add_input(Submit("save", "Save course"))

    def clean(self):
        cleaned = super().clean()
        starts, ends = cleaned.get("starts_on"), cleaned.get("ends_on")
        if starts and ends and ends < starts:
            self.add_error("ends_on", "The course cannot end before it starts.")
        return cleaned


class GroupForm(forms.ModelForm):
    class Meta:
        model = Group
        fields = ["name", "capacity", "default_place", "default_duration_minutes"]
        labels = {"default_duration_minutes": "Default session length (minutes)"}

    def __init__(self, *args, course, **kwargs):
        super().__init__(*args, **kwargs)
        self.course = course
        self.fields["capacity"].min_value = 1
        self.fields["default_duration_minutes"].min_value = 15
        self.helper = FormHelper()
        self.helper.add_input(Submit("save", "Save group"))

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        clash = Group.objects.filter(course=self.course, name__iexact=name).exclude(pk=self.instance.pk)
        if clash.exists():
            raise forms.ValidationError("This course already has a group with that name.")
        return name
