"""How note text is stored: NFC, "\\n" line endings, no control characters but tab."""

import re
import unicodedata

# C0 controls except tab and newline, DEL, and the C1 range. PostgreSQL cannot
# store NUL at all, and none of these can be typed meaningfully in a note.
# Lone surrogates (JSON can carry "\ud800") cannot be encoded as UTF-8 at all.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def normalise(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    return unicodedata.normalize("NFC", text)
