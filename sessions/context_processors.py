from .access import get_access


def navigation(request):
    """The roles the signed-in user holds anywhere, for the navigation bar."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"nav_roles": get_access(request).roles()}
