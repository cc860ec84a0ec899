"""Forms for a course admin managing the course's people and roles."""

from __future__ import annotations

from crispy_forms.helper import FormHelper
from crispy_forms.layout import Column, Layout, Row, Submit
from django import forms
from django.core.exceptions import ValidationError

from ..models import COURSE_ROLES, GROUP_ROLES, Course, Group, Membership, Role
from ..services.people import find_user_by_email, is_pending, role_label


class _RoleFields(forms.Form):
    role = forms.ChoiceField(choices=Role.choices, initial=Role.LEADER)
    group = forms.ModelChoiceField(
        queryset=Group.objects.none(),
        required=False,
        empty_label="— whole course —",
        help_text="Needed for a leader or co-leader; left empty for a course admin or researcher.",
        error_messages={"invalid_choice": "Choose a group of this course."},
    )

    def __init__(self, *args, course: Course, **kwargs):
        super().__init__(*args, **kwargs)
        self.course = course
        self.fields["group"].queryset = Group.objects.filter(course=course).order_by("name")

    def clean(self):
        cleaned = super().clean()
        role, group = cleaned.get("role"), cleaned.get("group")
        if role in GROUP_ROLES and group is None and "group" not in self.errors:
            self.add_error("group", f"A {Role(role).label.lower()} needs a group: choose one.")
        if role in COURSE_ROLES and group is not None:
            self.add_error(
                "group", f"A {Role(role).label.lower()} belongs to the whole course: leave the group empty."
            )
        return cleaned

    def _check_duplicate(self, user) -> None:
        role, group = self.cleaned_data.get("role"), self.cleaned_data.get("group")
        if user is None or not role or self.errors:
            return
        if Membership.objects.filter(user=user, course=self.course, role=role, group=group).exists():
            self.add_error(None, f"{user.get_username()} is already {role_label(role, group)}.")


class PersonAddForm(_RoleFields):
    email = forms.EmailField(label="E-mail")
    first_name = forms.CharField(max_length=150, required=False)
    last_name = forms.CharField(max_length=150, required=False)
    field_order = ["email", "first_name", "last_name", "role", "group"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.existing_user = None
        self.fields["email"].help_text = (
            "If there is no account with this address, one is created and a link to set a password is e-mailed."
        )
        self.helper = FormHelper()
        self.helper.form_method = "post"
        self.helper.attrs = {"novalidate": ""}
        self.helper.layout = Layout(
            "email",
            Row(Column("first_name", css_class="col-sm-6"), Column("last_name", css_class="col-sm-6")),
            "role",
            "group",
            Submit("submit", "Add person", css_class="btn-primary"),
        )

    def clean_email(self) -> str:
        email = self.cleaned_data["email"].strip()
        try:
            self.existing_user = find_user_by_email(email)
        except ValidationError as error:
            raise forms.ValidationError(error.message_dict["email"]) from None
        return email

    def clean(self):
        cleaned = super().clean()
        if self.existing_user is None and "email" in cleaned and not (
            cleaned.get("first_name") or cleaned.get("last_name")
        ):
            self.add_error("first_name", "A new account needs a name: give a first or last name.")
        if self.existing_user is not None and not is_pending(self.existing_user):
            self._check_duplicate(self.existing_user)  # a pending person is sent a fresh link instead
        return cleaned


class RoleAddForm(_RoleFields):
    """A further role for someone already in the course (one small form per person)."""

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user

    def clean(self):
        cleaned = super().clean()
        self._check_duplicate(self.user)
        return cleaned
