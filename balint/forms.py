"""Forms shared by the apps: the login forms (the app's and the Django admin's),
and a textarea that never truncates what is typed or pasted."""

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.core.validators import MaxLengthValidator


class _UsernameLengthChecked:
    """AuthenticationForm puts the username's maximum length on the widget only,
    so an overlong username went on to authenticate() and to django-axes, whose
    record of the failed attempt could not store it (a 500 on PostgreSQL). No
    account has such a name, so refusing it before logging in tells nothing."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        field = self.fields["username"]
        field.validators.append(MaxLengthValidator(field.max_length))


class LoginForm(_UsernameLengthChecked, AuthenticationForm):
    pass


class AdminLoginForm(_UsernameLengthChecked, AdminAuthenticationForm):
    pass


class Textarea(forms.Textarea):
    """A textarea without the `maxlength` attribute Django adds from the
    field's max_length: browsers cut a paste at it without a word, so a long
    reason or memo would lose its end silently. The form says instead how long
    the text may be, and comes back with every character typed."""

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        context["widget"]["attrs"].pop("maxlength", None)
        return context
