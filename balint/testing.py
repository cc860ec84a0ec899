"""Helpers for the tests that run real processes (Celery workers, gunicorn)
against the test database: skip or fail when a service is missing, the test
database's URL for a child process, and a Celery worker's environment and
command line."""

from __future__ import annotations

import os
import sys
from urllib.parse import quote

import pytest
from django.db import connection

# A worker runs the production settings (settings_test would run tasks eagerly),
# on the test database, with no real mail server.
WORKER_SECRET_KEY = "worker-test-secret-key-not-for-any-deployment"


def require(condition: bool, reason: str) -> None:
    """Skip locally when a service or tool is missing; in CI that is a failure."""
    if condition:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (and CI is set, so this must run)")
    pytest.skip(reason)


def database_url() -> str:
    """A DATABASE_URL (also a libpq URI) for the test database this process is using."""
    db = connection.settings_dict
    auth = quote(db["USER"] or "", safe="")
    if db["PASSWORD"]:
        auth += ":" + quote(db["PASSWORD"], safe="")
    host = quote(db["HOST"] or "", safe="")
    port = f":{db['PORT']}" if db["PORT"] else ""
    return f"postgres://{auth}@{host}{port}/{quote(db['NAME'], safe='')}"


def worker_env(**extra: str) -> dict[str, str]:
    """The environment of a Celery worker process for a test, plus `extra`."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "balint.settings",
        "DJANGO_SECRET_KEY": WORKER_SECRET_KEY,
        "DATABASE_URL": database_url(),
        "DATABASE_CONN_MAX_AGE": "0",
        **extra,
    }
    env.pop("EMAIL_HOST", None)  # never a real mail server from a test
    return env


def worker_command(queue: str, name: str, *, pool: str = "solo") -> list[str]:
    """A Celery worker consuming only `queue`, one task at a time, quiet on the broker."""
    return [
        sys.executable, "-m", "celery", "-A", "balint", "worker",
        f"--pool={pool}", "--concurrency=1", "-Q", queue, "-n", f"{name}@%h",
        "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel=INFO",
    ]


def delete_queue(name: str) -> None:
    """Remove a test queue and its binding from Redis (kombu keeps them otherwise)."""
    from balint.celery import app as celery_app

    with celery_app.connection_for_write() as conn:
        queue = celery_app.amqp.queues[name].bind(conn.default_channel)
        queue.declare()  # the channel only deletes bindings it knows
        queue.delete()
