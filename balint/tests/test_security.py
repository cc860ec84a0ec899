"""The security baseline: deploy checks, headers, secret key, CSRF."""

import json
import os
import subprocess
import sys
from pathlib import Path

from django.urls import reverse

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION_ENV = {
    "DJANGO_SECRET_KEY": "k" * 20 + "-production-like-secret-3a9f1c7e5b2d4068a1c9e7f5d3b1a0c8e6",
    "DJANGO_ALLOWED_HOSTS": "balint.example.org",
    "DJANGO_DEBUG": "",
    "DJANGO_SETTINGS_MODULE": "balint.settings",
}


def _manage(*args, env_extra):
    # The test process allows async-unsafe calls for Playwright; a deployment never does.
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"} | env_extra
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True)


def test_check_deploy_is_clean_with_production_settings():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env_extra=PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr


def test_secret_key_is_required_when_debug_is_off():
    result = _manage("check", env_extra={**PRODUCTION_ENV, "DJANGO_SECRET_KEY": ""})
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in result.stderr


def test_pages_carry_a_csp_without_inline_script(client, world):
    client.force_login(world.leader)
    response = client.get(reverse("sessions:dashboard"))
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response["X-Frame-Options"] == "DENY"
    assert "<script>" not in response.text  # every script is a file


def test_forms_are_csrf_protected(world):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(world.admin)
    response = client.post(reverse("sessions:group_new", args=[world.course.pk]), {"name": "Sneaky", "capacity": 9})
    assert response.status_code == 403
    assert not world.course.groups.filter(name="Sneaky").exists()


# --- Headers with production settings, and on every page --------------------------------

PROBE = """
import json
from django.conf import settings
from django.test import Client
client = Client(HTTP_HOST="balint.example.org")
secure = client.get("/healthz", secure=True)
plain = client.get("/accounts/login/")  # /healthz is exempt: load balancers probe it over HTTP
print(json.dumps({
    "secure": dict(secure.items()), "plain_status": plain.status_code, "plain_location": plain.get("Location"),
    "session_cookie_secure": settings.SESSION_COOKIE_SECURE, "csrf_cookie_secure": settings.CSRF_COOKIE_SECURE,
    "session_cookie_httponly": settings.SESSION_COOKIE_HTTPONLY, "session_age": settings.SESSION_COOKIE_AGE,
}))
"""


def test_production_settings_send_hsts_and_redirect_to_https(tmp_path):
    env = PRODUCTION_ENV | {"DATABASE_URL": f"sqlite:///{tmp_path / 'probe.sqlite3'}"}
    result = _manage("shell", "-c", PROBE, env_extra=env)
    assert result.returncode == 0, result.stderr
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    headers = {k.lower(): v for k, v in probe["secure"].items()}
    assert headers["strict-transport-security"] == "max-age=31536000; includeSubDomains; preload"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "same-origin"
    assert headers["x-frame-options"] == "DENY"
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "unsafe-inline" not in headers["content-security-policy"]
    assert probe["plain_status"] == 301 and probe["plain_location"].startswith("https://balint.example.org/")
    assert probe["session_cookie_secure"] and probe["csrf_cookie_secure"] and probe["session_cookie_httponly"]
    assert probe["session_age"] == 2 * 60 * 60


def test_every_page_carries_the_csp_and_framing_headers(client, world, django_user_model):
    from sessions.tests.test_url_matrix import MATRIX, Objects

    from .test_security_requests import permitted_user

    objects = Objects(world)
    for name, (build, methods, who) in sorted(MATRIX.items()):
        if "GET" not in methods:
            continue
        client.force_login(permitted_user(world, who, django_user_model))
        response = client.get(reverse(name, kwargs=build(objects)))
        csp = response.get("Content-Security-Policy", "")
        script_src = next((d for d in csp.split(";") if d.strip().startswith("script-src")), "")
        assert script_src.split() == ["script-src", "'self'"], f"{name}: {csp!r}"
        assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
        assert response["X-Frame-Options"] == "DENY"
        assert response["X-Content-Type-Options"] == "nosniff"
