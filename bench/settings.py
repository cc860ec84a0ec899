"""The project's own settings, plus the floor views (bench/urls.py).

Nothing else changes: DEBUG stays off, a real SECRET_KEY is required, the
same middleware runs. Only the host names the benchmark uses are allowed,
and collected static files go where the runner put them.
"""

import os

from balint.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
# The test Client's host, and loopback for gunicorn.
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
if os.environ.get("BENCH_STATIC_ROOT"):
    STATIC_ROOT = os.environ["BENCH_STATIC_ROOT"]
