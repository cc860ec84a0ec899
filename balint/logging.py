"""Keeping secrets out of the logs.

A request line is logged by whatever serves the app (runserver's
`django.server` logger, gunicorn's access log) and by Django itself for 4xx
and 5xx answers ("Not Found: /path"). Two of the app's URLs carry a
credential in the path: a personal calendar feed (`/calendar/feed/<token>.ics`,
which calendar apps poll without logging in) and a password-reset link
(`/accounts/reset/<uidb64>/<token>/`). Anyone who reads the logs could
subscribe to someone's sessions or, within the link's lifetime, set their
password; so those parts are replaced before a record is written.

`RedactSecretsFilter` is wired into `LOGGING` in settings (on the handlers,
so it sees every logger's records). Gunicorn does its own access logging,
outside Django's LOGGING: run it with
`--logger-class balint.logging.GunicornLogger` to redact there too.
"""

from __future__ import annotations

import logging
import re

REDACTED = "[redacted]"

_PATTERNS = [
    # The personal calendar feed: the token is the whole credential (token_urlsafe: no dots).
    (re.compile(r"(/calendar/feed/)[^/\s\"'?#.]+"), r"\1" + REDACTED),
    # Password-reset links; Django then redirects to .../set-password/, which holds no secret.
    (re.compile(r"(/reset/[^/\s\"'?#]+/)(?!set-password\b)[^/\s\"'?#]+"), r"\1" + REDACTED),
    # Secrets in query strings or form-like text.
    (re.compile(r"\b((?:token|password\d?|passwd|secret|csrfmiddlewaretoken|sessionid|csrftoken)=)[^&;\s\"']+",
                re.IGNORECASE), r"\1" + REDACTED),
]


def redact(text: str) -> str:
    """`text` with feed tokens, reset tokens and password-like parameters replaced."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactSecretsFilter(logging.Filter):
    """Rewrites a record's message when it carries a secret; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken record is the logging module's business, not ours
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


try:
    from gunicorn.glogging import Logger as _GunicornBaseLogger
except ImportError:  # gunicorn is for deployments; the app runs without it
    _GunicornBaseLogger = None

if _GunicornBaseLogger is not None:

    class GunicornLogger(_GunicornBaseLogger):
        """Gunicorn's logger with the request line, path and query redacted in the access log."""

        def atoms(self, resp, req, environ, request_time):
            atoms = super().atoms(resp, req, environ, request_time)
            # Every atom, not only the request line: a custom format may log RAW_URI or the referer.
            return {key: redact(value) if isinstance(value, str) else value for key, value in atoms.items()}
