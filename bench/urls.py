"""The app's URLs plus two floor views, mounted only by bench/settings.py.

The floors show what any request costs here before the view does its work:
`floor` is a constant response through the whole middleware stack;
`floor-auth` also loads the session and the user, as every page of the app
does for a logged-in user.
"""

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.urls import path
from django.views.decorators.http import require_GET

from balint.urls import urlpatterns as app_urlpatterns


@require_GET
def floor(request):
    return HttpResponse(b"ok", content_type="text/plain")


@login_required
@require_GET
def floor_auth(request):
    return HttpResponse(b"ok", content_type="text/plain")


urlpatterns = [
    path("bench/floor", floor, name="bench_floor"),
    path("bench/floor-auth", floor_auth, name="bench_floor_auth"),
    *app_urlpatterns,
]
