"""Static files as whitenoise serves them (compressed, names with a content
hash from the manifest), with each file's URL worked out once per process.

`{% static %}` asks the storage for a URL on every use: a manifest lookup,
then urljoin and quoting, about 20 µs each, four to six times a page. The
manifest is read once when the process starts and does not change while it
runs, so neither does the URL.
"""

from django.conf import settings
from whitenoise.storage import CompressedManifestStaticFilesStorage


class StaticFilesStorage(CompressedManifestStaticFilesStorage):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._urls: dict[str, str] = {}

    def url(self, name, force=False):
        if force or settings.DEBUG:  # DEBUG serves names unhashed, and may be switched on in tests
            return super().url(name, force)
        try:
            return self._urls[name]
        except KeyError:
            url = self._urls[name] = super().url(name)
            return url
