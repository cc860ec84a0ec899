"""Turn an uploaded note document (.txt, .docx or .odt) into plain text.

Pure Python with no Django imports, so it can run in a view or a task alike.
Every refusal is a DocumentError whose message can be shown to the uploader
as it is; nothing from a library's traceback reaches them.
"""

from __future__ import annotations

import codecs
import io
import math
import re
import unicodedata
import zipfile
import zlib
from xml.sax import SAXException
from xml.sax.handler import ContentHandler, ErrorHandler, feature_namespaces

import defusedxml.sax
import docx
from docx.oxml.ns import qn
from odf import opendocument
from odf.namespaces import DRAWNS, OFFICENS, TEXTNS

from balint.safezip import looks_like_a_bomb


class DocumentError(ValueError):
    """A file that cannot be read as a note; str(e) is a message for the user."""


MAX_BYTES = 10 * 1024 * 1024
MAX_CHARS = 200_000

# Zip-bomb limits, checked on the archive's directory before any library
# unpacks a member. zipfile never returns more than a member's declared size
# (it truncates at file_size), and python-docx and odfpy both read through
# zipfile, so the declared sizes bound what gets unpacked.
MAX_UNPACKED_BYTES = 50 * 1024 * 1024
MAX_RATIO = 100
# Below this a member cannot be a bomb; text-heavy XML can compress very well.
RATIO_FLOOR_BYTES = 1024 * 1024

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_CONTROL_CHARS = re.compile("[\x00-\x08\x0b-\x1f]")
_UTF8_SEQUENCE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}"
)
# A DTD is how entity-expansion and external-entity attacks get in, and
# neither Word nor LibreOffice writes one into these parts.
_DTD_MARKERS = tuple(
    marker.encode(encoding)
    for marker in ("<!DOCTYPE", "<!ENTITY")
    for encoding in ("ascii", "utf-16-le", "utf-16-be")
)
_ODF_XML_PARTS = ("content.xml", "styles.xml", "meta.xml", "settings.xml")

_SUPPORTED = "only .txt, .docx and .odt files can be imported"


def read_document(filename: str, data: bytes) -> str:
    """Return the text of an uploaded note file, or raise DocumentError.

    The text is NFC-normalised, uses "\\n" line endings with one line per
    paragraph, keeps tabs, has C0 control characters other than tab and
    newline removed, and has no whitespace at its end.
    """
    name = _display_name(filename)
    extension = _extension(filename)
    readers = {".txt": _read_txt, ".docx": _read_docx, ".odt": _read_odt}
    if extension not in readers:
        raise DocumentError(f"“{name}” can't be imported: {_SUPPORTED}.")
    if not data:
        raise DocumentError(f"“{name}” is empty.")
    if len(data) > MAX_BYTES:
        raise DocumentError(
            f"“{name}” is {math.ceil(len(data) * 10 / (1024 * 1024)) / 10} MB, which is too large: "
            f"files up to {MAX_BYTES // (1024 * 1024)} MB can be imported."
        )

    text = _clean(readers[extension](name, bytes(data)))
    if not text.strip():
        raise DocumentError(f"“{name}” contains no text to import.")
    if len(text) > MAX_CHARS:
        raise _too_long(name, len(text))
    return text


def _too_long(name: str, length: int | None = None) -> DocumentError:
    size = f" ({length:,} characters)" if length is not None else ""
    return DocumentError(
        f"The text in “{name}” is too long{size}: at most {MAX_CHARS:,} "
        "characters can be imported. Please shorten it and try again."
    )


def _display_name(filename: str) -> str:
    # Some browsers send a full client-side path.
    return re.split(r"[\\/]", filename.strip())[-1] or "unnamed file"


def _extension(filename: str) -> str:
    name = _display_name(filename)
    dot = name.rfind(".")
    return name[dot:].lower() if dot > 0 else ""


def _clean(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL_CHARS.sub("", text)
    return unicodedata.normalize("NFC", text).rstrip()


# --- .txt -------------------------------------------------------------------


def _read_txt(name: str, data: bytes) -> str:
    # UTF-32 is tested first: its little-endian BOM starts with UTF-16's.
    for bom, encoding in (
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF32_LE, "utf-32-le"),
        (codecs.BOM_UTF32_BE, "utf-32-be"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
    ):
        if data.startswith(bom):
            try:
                return data[len(bom) :].decode(encoding)
            except UnicodeDecodeError:
                raise _unknown_encoding(name) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    # Not UTF-8: the one legacy encoding accepted is Windows-1252, what
    # Notepad and Word call "ANSI" on Western-European Windows. Latin-1 is
    # not used as a fallback: it agrees with cp1252 except at 0x80-0x9F,
    # where cp1252 has the curly quotes, dashes and euro sign such files
    # really contain and Latin-1 has invisible control codes.
    text = _as_western_text(data)
    if text is None:
        raise _unknown_encoding(name)
    return text


def _as_western_text(data: bytes) -> str | None:
    """Decode data as cp1252 if it plausibly is Western-European text.

    Guesses are refused rather than risk silently importing mojibake: text
    with NUL bytes (UTF-16 without a BOM, or binary), bytes cp1252 leaves
    undefined, more than a trace of control codes, mostly UTF-8 sequences (a
    damaged UTF-8 file), or more accented than plain letters (Cyrillic or
    Greek in an 8-bit code page decodes to accented Latin letters).
    """
    if b"\x00" in data:
        return None
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        return None
    controls = sum(1 for c in text if c < " " and c not in "\t\n\r\f")
    if controls * 100 > len(text):
        return None
    high_bytes = sum(1 for b in data if b >= 0x80)
    utf8_bytes = sum(len(m) for m in _UTF8_SEQUENCE.findall(data))
    if utf8_bytes * 2 >= high_bytes:
        return None
    ascii_letters = sum(1 for c in text if c.isascii() and c.isalpha())
    other_letters = sum(1 for c in text if not c.isascii() and c.isalpha())
    if other_letters >= ascii_letters:
        return None
    return text


def _unknown_encoding(name: str) -> DocumentError:
    return DocumentError(
        f"The text encoding of “{name}” couldn't be recognised. Please save the "
        "file as UTF-8 (in Notepad: File › Save as, then Encoding: UTF-8) and "
        "upload it again."
    )


# --- shared checks for zipped formats ----------------------------------------


def _open_zip(name: str, data: bytes, kind: str, resave: str) -> zipfile.ZipFile:
    """Open data as a zip after refusing the non-zips and bombs."""
    if data.startswith(_OLE_MAGIC):
        # Word saves a password-protected .docx as an encrypted OLE container,
        # the same container format as the old binary .doc.
        raise DocumentError(
            f"“{name}” couldn't be opened as {kind}: it looks like a "
            "password-protected document or an older-format file. Please remove "
            f"the password, {resave}, and upload it again."
        )
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
        raise _corrupt(name, kind, resave) from None

    if any(member.flag_bits & 0x1 for member in members):
        raise _password_protected(name)
    if looks_like_a_bomb(members, max_unpacked=MAX_UNPACKED_BYTES, max_ratio=MAX_RATIO,
                         ratio_floor=RATIO_FLOOR_BYTES):
        raise _bomb(name, resave)

    try:
        for member in members:
            if member.filename.lower().endswith((".xml", ".rels")) and _has_dtd(
                archive, member
            ):
                raise DocumentError(
                    f"“{name}” contains internal markup that isn't allowed for "
                    f"safety reasons, so it wasn't opened. Please {resave} and "
                    "upload the new file."
                )
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError):
        raise _corrupt(name, kind, resave) from None
    return archive


def _has_dtd(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> bool:
    overlap = max(len(marker) for marker in _DTD_MARKERS)
    tail = b""
    with archive.open(member) as stream:
        while chunk := stream.read(1024 * 1024):
            window = tail + chunk
            if any(marker in window for marker in _DTD_MARKERS):
                return True
            tail = window[-overlap:]
    return False


def _corrupt(name: str, kind: str, resave: str) -> DocumentError:
    return DocumentError(
        f"“{name}” couldn't be opened as {kind}. The file may be damaged, or it "
        f"may be another kind of file renamed. Please {resave} and upload it again."
    )


def _password_protected(name: str) -> DocumentError:
    return DocumentError(
        f"“{name}” is password-protected. Please remove the password and upload "
        "it again."
    )


def _bomb(name: str, resave: str) -> DocumentError:
    return DocumentError(
        f"“{name}” would unpack to far more data than a note can hold, so it "
        f"wasn't opened. Please {resave} (without large pictures) and upload "
        "the new file."
    )


# --- .docx ------------------------------------------------------------------

_DOCX_KIND = "a Word document (.docx)"
_DOCX_RESAVE = "open it in Word and save it as .docx"

_W_P, _W_T, _W_BR, _W_TYPE = qn("w:p"), qn("w:t"), qn("w:br"), qn("w:type")
_MC = "{http://schemas.openxmlformats.org/markup-compatibility/2006}"
# Block-level elements whose paragraphs are part of the text, walked in
# document order: tables row by row, content controls, custom XML wrappers.
_DOCX_BLOCK_CONTAINERS = {
    qn(tag)
    for tag in ("w:tbl", "w:tr", "w:tc", "w:sdt", "w:sdtContent", "w:customXml")
} | {_MC + "AlternateContent", _MC + "Choice"}
# Inside a paragraph: properties, deleted or moved-away revisions, and
# drawings (text boxes; Word also stores each one twice, in mc:Choice and
# mc:Fallback) are not part of the note's running text.
_DOCX_INLINE_SKIP = {
    qn(tag)
    for tag in (
        "w:pPr", "w:rPr", "w:sdtPr", "w:sdtEndPr", "w:del", "w:moveFrom",
        "w:drawing", "w:pict", "w:object", "w:txbxContent",
    )
} | {_MC + "Fallback"}
_DOCX_INLINE_TEXT = {
    qn("w:tab"): "\t",
    qn("w:ptab"): "\t",
    qn("w:cr"): "\n",
    qn("w:noBreakHyphen"): "-",
}


def _read_docx(name: str, data: bytes) -> str:
    _open_zip(name, data, _DOCX_KIND, _DOCX_RESAVE).close()
    # python-docx parses with lxml's XMLParser(resolve_entities=False) (see
    # docx/oxml/parser.py); lxml also leaves DTD loading and network access
    # off by default. The DTD scan above refuses entity declarations anyway.
    try:
        document = docx.Document(io.BytesIO(data))
        body = document.element.body
    except Exception:  # the library raises many types on malformed input
        raise _corrupt(name, _DOCX_KIND, _DOCX_RESAVE) from None
    paragraphs: list[str] = []
    _docx_blocks(body, paragraphs)
    return "\n".join(paragraphs)


def _docx_blocks(element, out: list[str]) -> None:
    for child in element:
        if child.tag == _W_P:
            out.append(_docx_inline(child))
        elif child.tag in _DOCX_BLOCK_CONTAINERS:
            _docx_blocks(child, out)


def _docx_inline(element) -> str:
    # Walks the XML rather than using Paragraph.text, which skips runs
    # inside tracked insertions (w:ins) and inline content controls.
    parts: list[str] = []
    for child in element:
        tag = child.tag
        if not isinstance(tag, str) or tag in _DOCX_INLINE_SKIP:
            continue  # comments and processing instructions have no str tag
        if tag == _W_T:
            parts.append(child.text or "")
        elif tag in _DOCX_INLINE_TEXT:
            parts.append(_DOCX_INLINE_TEXT[tag])
        elif tag == _W_BR:
            # Page and column breaks end a page, not a line, as in python-docx.
            if child.get(_W_TYPE, "textWrapping") == "textWrapping":
                parts.append("\n")
        else:
            parts.append(_docx_inline(child))
    return "".join(parts)


# --- .odt -------------------------------------------------------------------

_ODT_KIND = "an OpenDocument text file (.odt)"
_ODT_RESAVE = "open it in LibreOffice Writer and save it as .odt"

_ODF_PARAGRAPHS = {(TEXTNS, "p"), (TEXTNS, "h")}
# Not running text: change-tracking history (holds deleted paragraphs),
# form controls, comments, footnotes, and frames (pictures, text boxes).
_ODF_SKIP_NAMESPACES = {DRAWNS}
_ODF_SKIP = {
    (TEXTNS, "tracked-changes"),
    (TEXTNS, "note"),
    (OFFICENS, "annotation"),
    (OFFICENS, "forms"),
}


def _read_odt(name: str, data: bytes) -> str:
    archive = _open_zip(name, data, _ODT_KIND, _ODT_RESAVE)
    with archive:
        try:
            manifest = archive.read("META-INF/manifest.xml")
        except KeyError:
            manifest = b""
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError):
            raise _corrupt(name, _ODT_KIND, _ODT_RESAVE) from None
        if b"encryption-data" in manifest:
            raise _password_protected(name)
        # odfpy prints a part it cannot parse to stdout (the note's text in
        # the server log) and carries on with an empty document, so the parts
        # it would parse are checked first with the parser it uses,
        # namespace-aware as in odfpy and here also refusing any DTD.
        try:
            for member in archive.infolist():
                if member.filename.rsplit("/", 1)[-1] in _ODF_XML_PARTS:
                    with archive.open(member) as stream:
                        _check_xml(stream)
        except (SAXException, ValueError, zipfile.BadZipFile, zlib.error, OSError):
            # defusedxml's refusals are ValueErrors.
            raise _corrupt(name, _ODT_KIND, _ODT_RESAVE) from None

    try:
        # odfpy parses every part with defusedxml.sax (entities forbidden,
        # external entities off), so no entity is expanded or fetched.
        document = opendocument.load(io.BytesIO(data))
        mimetype = document.mimetype
        body = document.text
    except Exception:  # the library raises many types on malformed input
        raise _corrupt(name, _ODT_KIND, _ODT_RESAVE) from None
    if not mimetype.startswith("application/vnd.oasis.opendocument.text"):
        raise _corrupt(name, _ODT_KIND, _ODT_RESAVE)
    collected = _OdtText()
    try:
        collected.blocks(body)
    except _TooLong:
        raise _too_long(name) from None
    return "\n".join(collected.paragraphs)


def _check_xml(stream) -> None:
    parser = defusedxml.sax.make_parser()
    parser.forbid_dtd = True
    parser.setFeature(feature_namespaces, True)
    parser.setContentHandler(ContentHandler())
    parser.setErrorHandler(ErrorHandler())
    parser.parse(stream)


def _odf_skipped(element) -> bool:
    return element.qname in _ODF_SKIP or element.qname[0] in _ODF_SKIP_NAMESPACES


class _TooLong(Exception):
    pass


class _OdtText:
    """Collects an ODF body's paragraphs; text:s is the one element that can
    expand (c="999999999" is a gigabyte of spaces), so its spaces are counted
    against MAX_CHARS as they are made."""

    def __init__(self) -> None:
        self.paragraphs: list[str] = []
        self.spaces_left = MAX_CHARS

    def blocks(self, element) -> None:
        # Lists, sections and tables (cell by cell, row by row) are walked
        # through; each text:p and text:h is one paragraph.
        for child in element.childNodes:
            if child.nodeType != child.ELEMENT_NODE or _odf_skipped(child):
                continue
            if child.qname in _ODF_PARAGRAPHS:
                self.paragraphs.append(self.inline(child))
            else:
                self.blocks(child)

    def inline(self, element) -> str:
        # As odf.teletype.extractText, except that comments, footnotes and
        # frames inside a paragraph are left out instead of run into its text.
        parts: list[str] = []
        for child in element.childNodes:
            if child.nodeType == child.TEXT_NODE:
                parts.append(child.data)
            elif child.nodeType != child.ELEMENT_NODE or _odf_skipped(child):
                continue
            elif child.qname == (TEXTNS, "s"):
                count = child.getAttribute("c")
                count = int(count) if count and count.isdigit() else 1
                self.spaces_left -= count
                if self.spaces_left < 0:
                    raise _TooLong
                parts.append(" " * count)
            elif child.qname == (TEXTNS, "tab"):
                parts.append("\t")
            elif child.qname == (TEXTNS, "line-break"):
                parts.append("\n")
            else:
                parts.append(self.inline(child))
        return "".join(parts)
