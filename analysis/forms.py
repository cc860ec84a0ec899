from crispy_forms.helper import FormHelper
from crispy_forms.layout import Submit
from django import forms

from balint.forms import Textarea
from balint.limits import DESCRIPTION_CHARS, REASON_CHARS

from .models import Category, Code, Memo

WHY_HELP = "Why this change? Kept in the codebook's history so the method can be audited."


def _helper(label: str) -> FormHelper:
    helper = FormHelper()
    helper.add_input(Submit("save", label))
    return helper


class CategoryForm(forms.ModelForm):
    why = forms.CharField(required=False, max_length=REASON_CHARS, widget=Textarea(attrs={"rows": 2}),
                          help_text=WHY_HELP)

    class Meta:
        model = Category
        fields = ["name", "description", "unit", "order"]
        widgets = {"description": Textarea(attrs={"rows": 2})}
        labels = {"unit": "Counted"}

    def __init__(self, *args, course, **kwargs):
        super().__init__(*args, **kwargs)
        self.course = course
        self.helper = _helper("Save category")

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        if Category.objects.filter(course=self.course, name__iexact=name).exclude(pk=self.instance.pk).exists():
            raise forms.ValidationError("This codebook already has a category with that name.")
        return name


class CodeForm(forms.ModelForm):
    why = forms.CharField(required=False, max_length=REASON_CHARS, widget=Textarea(attrs={"rows": 2}),
                          help_text=WHY_HELP)

    class Meta:
        model = Code
        fields = ["name", "category", "parent", "definition", "when_to_use", "when_not_to_use", "example", "colour",
                  "shortcut"]
        widgets = {
            "colour": forms.TextInput(attrs={"type": "color"}),
            **{f: Textarea(attrs={"rows": 2}) for f in ["definition", "when_to_use", "when_not_to_use", "example"]},
        }

    def __init__(self, *args, course, **kwargs):
        super().__init__(*args, **kwargs)
        self.course = course
        self.fields["category"].queryset = Category.objects.filter(course=course)
        self.fields["parent"].queryset = Code.objects.active().filter(course=course).exclude(pk=self.instance.pk)
        self.fields["parent"].required = False
        self.helper = _helper("Save code")

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        clash = Code.objects.active().filter(course=self.course, name__iexact=name).exclude(pk=self.instance.pk)
        if clash.exists():
            raise forms.ValidationError("An active code already has that name.")
        return name

    def clean_shortcut(self):
        key = self.cleaned_data["shortcut"].strip().lower()
        if key and not (key.isdigit() and key != "0" or "a" <= key <= "z"):
            raise forms.ValidationError("Use one key: 1–9 or a–z.")
        if key and Code.objects.active().filter(course=self.course, shortcut=key).exclude(pk=self.instance.pk).exists():
            raise forms.ValidationError("Another code already uses that key.")
        return key


class WhyForm(forms.Form):
    why = forms.CharField(max_length=REASON_CHARS, widget=Textarea(attrs={"rows": 3}), help_text=WHY_HELP)


class RetireForm(WhyForm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.helper = _helper("Retire code")


class MergeForm(WhyForm):
    target = forms.ModelChoiceField(queryset=Code.objects.none(), label="Merge into")

    def __init__(self, *args, code, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["target"].queryset = Code.objects.active().filter(course=code.course_id).exclude(pk=code.pk)
        self.helper = _helper("Merge")


class SplitForm(WhyForm):
    name = forms.CharField(max_length=100, label="Name of the new code")
    definition = forms.CharField(required=False, max_length=DESCRIPTION_CHARS, widget=Textarea(attrs={"rows": 2}))
    segments = forms.MultipleChoiceField(widget=forms.CheckboxSelectMultiple, label="Segments that move to the new code")

    def __init__(self, *args, code, segment_choices, **kwargs):
        super().__init__(*args, **kwargs)
        self.code = code
        self.fields["segments"].choices = segment_choices
        self.helper = _helper("Split")

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        if Code.objects.active().filter(course=self.code.course_id, name__iexact=name).exists():
            raise forms.ValidationError("An active code already has that name.")
        return name


class MemoForm(forms.ModelForm):
    class Meta:
        model = Memo
        fields = ["title", "text"]
        widgets = {"text": Textarea(attrs={"rows": 5})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.helper = _helper("Save memo")
