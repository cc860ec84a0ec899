"""View decorators shared by the apps."""

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.http import JsonResponse
from django.urls import reverse

LOGIN_EXPIRED = "Your login has expired. What you typed is kept in this page: log in again and try once more."


def login_required_json(view=None, *, forms_too=False, message=LOGIN_EXPIRED):
    """Like login_required, but a script gets a 401 JSON answer instead of a
    redirect, so the page can keep what was typed and ask for a new login.

    With `forms_too`, a plain form post (one not asking for JSON) is sent to
    the login page as usual.
    """
    if view is None:
        return lambda v: login_required_json(v, forms_too=forms_too, message=message)

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not request.user.is_authenticated:
            if forms_too and "application/json" not in request.headers.get("Accept", ""):
                return redirect_to_login(request.get_full_path())
            return JsonResponse(
                {"error": "login_required", "message": message, "login_url": reverse("login")}, status=401
            )
        return view(request, *args, **kwargs)

    return wrapped
