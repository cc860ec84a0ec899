"""A database outage answers 503 with a page that says so, instead of a bare 500.

When PostgreSQL restarts (an upgrade, a failover, a crash) the requests in
flight lose their connection and new ones are refused until it is back. That
is not a bug in the page the user asked for: it is a short outage, and the
right answer is "try again in a moment" (503 with Retry-After), with nothing
half-written, because every write runs in a transaction that the database
rolled back. Django closes the broken connection when the request ends and
health-checks persistent ones before reuse (CONN_HEALTH_CHECKS), so the app
recovers by itself once the database answers again.

The outage may surface in a view (caught by `process_exception`), or in a
middleware outside the view, which Django turns into a response before this
middleware sees it: loading the session or the user (a 500; the
`got_request_exception` signal marks such a request) or saving the session
after the view (a login, or the idle-timeout refresh: the session middleware
reports any failed save as "session interrupted", a bare 400; the
connection's `errors_occurred` flag tells it was the database). Both become
the 503. Any other failure gets the friendly templates/500.html.
"""

from __future__ import annotations

import logging
import sys
from datetime import timedelta

from django.conf import settings
from django.core.signals import got_request_exception
from django.db import InterfaceError, OperationalError, connections
from django.http import HttpResponse, JsonResponse
from django.template import loader
from django.utils import timezone
from django.utils.cache import patch_cache_control
from django.utils.html import escape

from .logging import redact

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 10
MESSAGE = (
    "The database is briefly unavailable. A change you were making was saved completely or not at all; "
    "please try again in a moment."
)


def _wants_json(request) -> bool:
    return request.content_type == "application/json" or "application/json" in request.headers.get("Accept", "")


def _is_outage(exc: BaseException | None) -> bool:
    """A lost or refused connection, not a bad query.

    psycopg2 reports both a refused connection and a server that went away
    mid-query (administrator shutdown, closed connection) as OperationalError
    or InterfaceError; a constraint violation or a syntax error is another
    DatabaseError subclass and stays a 500, since that is a bug to fix.
    """
    return isinstance(exc, (OperationalError, InterfaceError))


def _mark_outage(sender, request=None, **kwargs) -> None:
    # Sent by Django while it handles the exception, so sys.exc_info() is that exception.
    if request is not None and _is_outage(sys.exc_info()[1]):
        request.database_outage = True


got_request_exception.connect(_mark_outage, dispatch_uid="balint.middleware.mark_outage")


def _database_failed() -> bool:
    """Did a database operation fail in this request (other than a constraint or data error)?"""
    return any(conn.errors_occurred for conn in connections.all(initialized_only=True))


def _outage_response(request, response: HttpResponse | None = None) -> HttpResponse:
    """The 503 answer; `response` (Django's 500, with the headers the other
    middleware gave it, such as the CSP) is reused when there is one."""
    if _wants_json(request):
        body, content_type = JsonResponse({"error": "unavailable", "message": MESSAGE}).content, "application/json"
    else:
        # The template uses no context processors and no database: it must
        # render while the database is away.
        body, content_type = loader.render_to_string("503.html").encode(), "text/html; charset=utf-8"
    if response is None:
        response = HttpResponse(body, content_type=content_type, status=503)
    else:
        response.status_code = 503
        response.content = body
        response["Content-Type"] = content_type
        if response.has_header("Content-Length"):  # set by CommonMiddleware for the old body
            response["Content-Length"] = str(len(body))
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    patch_cache_control(response, no_store=True)
    return response


class DatabaseUnavailableMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        for conn in connections.all(initialized_only=True):
            if conn.connection is None:
                # Left over from a connection closed after an error; reconnecting resets it anyway.
                conn.errors_occurred = False
        response = self.get_response(request)
        if response.status_code == 500 and getattr(request, "database_outage", False):
            response = _outage_response(request, response)
        elif response.status_code == 400 and _database_failed():
            response = _outage_response(request, response)
        return response

    def process_exception(self, request, exception):
        if not _is_outage(exception):
            return None
        # Say which kind, never the query or its parameters (they may hold note text).
        logger.warning("Database unavailable during %s %s: %s", request.method, redact(request.path),
                       type(exception).__name__)
        return _outage_response(request)


# --- Security: request size, caching of private pages, the activity log -------------

activity_log = logging.getLogger("balint.activity")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


class RequestTooLargeMiddleware:
    """A body over DATA_UPLOAD_MAX_MEMORY_SIZE gets a 413 that says so, before anything reads it.

    Without this, Django raises RequestDataTooBig wherever the body is first
    read (the CSRF check, a view) and answers a bare "Bad Request (400)".
    File uploads (multipart) are left to the views, which know their own
    limits and check `upload.size` before reading a byte.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if limit is not None and not request.content_type.startswith("multipart/"):
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            if length > limit:
                return self._refuse(request, length, limit)
        return self.get_response(request)

    @staticmethod
    def _refuse(request, length: int, limit: int):
        message = (f"This request is too large ({_megabytes(length)}); at most {_megabytes(limit)} can be sent "
                   "at once. Nothing was saved: shorten the text or split it, then try again.")
        if _wants_json(request):
            response = JsonResponse({"error": "too_big", "message": message}, status=413)
        else:
            page = (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Too large · Balint groups"
                    f"</title></head><body><h1>Too large to send</h1><p>{escape(message)}</p>"
                    "<p>Go back to keep what you typed.</p></body></html>")
            response = HttpResponse(page, status=413)
        response["Cache-Control"] = "no-store"
        return response


class NoStoreForSignedInMiddleware:
    """Every answer to a signed-in user may carry note text, names or consent
    decisions: tell browsers and proxies not to keep a copy (`no-store, private`).

    One rule for every page, JSON answer and download, rather than a
    decorator per view that a new view could forget.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            patch_cache_control(response, no_store=True, private=True)
        return response


def _user_id(request) -> str | None:
    user = getattr(request, "user", None)
    return str(user.pk) if user is not None and user.is_authenticated else None


class ActivityLogMiddleware:
    """One log line per change and per download: who (the user's id), what
    (method, path, status); the log formatter adds when.

    Never the body, the query string or the user's name: bodies hold note
    text and passwords, and the audit log in the database has the details.
    Paths pass through `redact`, so a feed or reset token is never written.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        changing = request.method not in SAFE_METHODS
        # Read before the view runs too: after a logout the request's user is anonymous.
        before = _user_id(request) if changing else None
        response = self.get_response(request)
        download = response.get("Content-Disposition", "").startswith("attachment")
        if changing or download:
            who = _user_id(request) or before or "-"
            activity_log.info("user=%s %s %s %s", who, request.method, redact(request.path), response.status_code)
        return response


class IdleSessionRefreshMiddleware:
    """The idle timeout: a signed-in session ends SESSION_COOKIE_AGE seconds after the last request.

    The session row is saved again (moving its expiry forward) only when it
    was last saved more than IDLE_REFRESH_SECONDS ago, so a busy user costs one
    write every few minutes rather than one per request. Needs the session
    engine `balint.session_store`, which reads the row's expiry with the session.
    """

    IDLE_REFRESH_SECONDS = 5 * 60

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        session = getattr(request, "session", None)
        expiry = getattr(session, "stored_expiry", None)
        if expiry is not None and session.accessed and not session.modified and not session.is_empty():
            age = session.get_session_cookie_age()
            saved_at = expiry - timedelta(seconds=age)
            if timezone.now() - saved_at >= timedelta(seconds=min(self.IDLE_REFRESH_SECONDS, age // 10)):
                session.modified = True  # the session middleware saves it, with a fresh expiry and cookie
        return response
