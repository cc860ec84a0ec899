"""The security baseline: deploy checks, headers, secret key, CSRF."""

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
