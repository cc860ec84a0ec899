"""How long free text may be, field by field: generous for what each is for,
so a paste gone wrong (a whole document in a reason box) gets a clear message
instead of being stored, and no single field can grow a page or an export
without bound. A note section's own limit is fieldnotes.models.MAX_SECTION_CHARS.
"""

# A reason or a "why" kept in a history: a few sentences, a paragraph or two.
REASON_CHARS = 2_000
# A code's definition or example, a category's or a course's description.
DESCRIPTION_CHARS = 10_000
# A researcher's memo: pages of analytic writing.
MEMO_CHARS = 50_000
# A consent form's full text.
CONSENT_TEXT_CHARS = 100_000
