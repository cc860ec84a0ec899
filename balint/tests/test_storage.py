"""Static file URLs in production (`balint.storage`): the manifest's hashed
names, as whitenoise's storage gives them, worked out once per process."""

import re
from unittest import mock

from django.core.management import call_command
from whitenoise.storage import CompressedManifestStaticFilesStorage

from balint.storage import StaticFilesStorage


def test_static_urls_are_the_manifests_and_are_worked_out_once(tmp_path, settings):
    settings.DEBUG = False
    settings.STATIC_ROOT = str(tmp_path)
    settings.STORAGES = {**settings.STORAGES, "staticfiles": {"BACKEND": "balint.storage.StaticFilesStorage"}}
    call_command("collectstatic", interactive=False, verbosity=0)

    storage = StaticFilesStorage()
    url = storage.url("css/app.css")
    assert re.fullmatch(r"/static/css/app\.[0-9a-f]{12}\.css", url)
    assert url == CompressedManifestStaticFilesStorage().url("css/app.css")
    with mock.patch.object(CompressedManifestStaticFilesStorage, "url", side_effect=AssertionError("asked again")):
        assert storage.url("css/app.css") == url

    settings.DEBUG = True  # as Django's: unhashed names while debugging
    assert storage.url("css/app.css") == "/static/css/app.css"
