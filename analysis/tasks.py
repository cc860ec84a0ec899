"""Background work for reports (Celery). The logic lives in `jobs`.

The task takes the report's id only and re-reads the row; the row is the truth
about the job, not the result backend. Acknowledged late and rejected back to
the queue when its worker process dies, retried with backoff on transient
database or broker errors, bounded by time limits.
"""

import os

from celery import shared_task
from django.db import InterfaceError, OperationalError
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from . import jobs

TRANSIENT_ERRORS = (OperationalError, InterfaceError, BrokerError, RedisConnectionError, RedisTimeoutError)
SOFT_TIME_LIMIT, TIME_LIMIT = jobs.report_time_limits()


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=TRANSIENT_ERRORS,
    max_retries=5,
    retry_backoff=5,
    retry_backoff_max=120,
    retry_jitter=True,
    soft_time_limit=SOFT_TIME_LIMIT,
    time_limit=TIME_LIMIT,
)
def build_report(self, report_id: int) -> str:
    """Build report `report_id`; see `jobs.report_run`. Returns its outcome.

    A duplicate delivery finds the report claimed or finished and does nothing.
    """
    node = self.request.hostname or f"in-process@{os.uname().nodename}"
    return jobs.report_run(report_id, worker=f"{node} pid {os.getpid()}")


@shared_task(acks_late=True, soft_time_limit=50, time_limit=60)
def sweep_reports() -> dict:
    """Re-queue or fail reports whose worker stopped; re-send queued ones nobody took.

    Run every minute by Celery beat; safe to run twice or concurrently. A
    failed run needs no retry: the next minute's run is one.
    """
    return jobs.report_sweep()
