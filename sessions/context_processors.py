from balint.reversing import url_for

from .access import get_access

NAV_LINKS = {
    "dashboard": "sessions:dashboard", "calendar": "sessions:calendar_settings", "admin": "admin:index",
    "password_change": "password_change", "logout": "logout",
}


def navigation(request):
    """The links of the navigation bar, and the roles the signed-in user holds
    anywhere, which decide which links it shows."""
    context = {"nav_urls": {key: url_for(name) for key, name in NAV_LINKS.items()}}
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        context["nav_roles"] = get_access(request).roles()
    return context
