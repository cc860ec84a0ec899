"""Database sessions that remember when their row expires, for the idle timeout.

A session ends SESSION_COOKIE_AGE seconds after it was last saved. Saving it
on every request (SESSION_SAVE_EVERY_REQUEST) would make that an idle timeout,
at the cost of a write on every request; instead `IdleSessionRefreshMiddleware`
saves it again only once the stored expiry is a few minutes old, which it can
tell from `stored_expiry` without another query.
"""

from django.contrib.sessions.backends import db


class SessionStore(db.SessionStore):
    #: When the stored row expires, as read with the session; None for a new or unknown session.
    stored_expiry = None

    def _get_session_from_db(self):
        row = super()._get_session_from_db()
        self.stored_expiry = row.expire_date if row is not None else None
        return row

    async def _aget_session_from_db(self):
        row = await super()._aget_session_from_db()
        self.stored_expiry = row.expire_date if row is not None else None
        return row
