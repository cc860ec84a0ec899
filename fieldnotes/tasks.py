"""Background work for field notes (Celery). The logic lives in `reminders`."""

from celery import shared_task
from django.db import InterfaceError, OperationalError

from .reminders import ReminderDeliveryFailed, send_overdue_reminders

# Worth another try: the mail server or the database was briefly unreachable.
# (smtplib.SMTPException is an OSError.)
TRANSIENT_ERRORS = (ReminderDeliveryFailed, OSError, OperationalError, InterfaceError)


@shared_task(
    acks_late=True,
    soft_time_limit=5 * 60,
    time_limit=6 * 60,
    autoretry_for=TRANSIENT_ERRORS,
    max_retries=5,
    retry_backoff=60,
    retry_backoff_max=15 * 60,
    retry_jitter=True,
)
def send_overdue_note_reminders() -> int:
    """Remind co-leaders of notes still missing NOTE_REMINDER_HOURS after a session.

    Run hourly by Celery beat. Safe to run twice or concurrently: each
    reminder is claimed by its NoteReminder row before it is sent.
    Returns how many e-mails were sent.
    """
    return send_overdue_reminders()
