"""Importing a note from an uploaded .txt, .docx or .odt file.

Every file is built here: real documents from python-docx and odfpy, and
handcrafted zips for the damaged and hostile ones.
"""

import io
import random
import zipfile

import docx
import pytest
from docx.oxml import parse_xml
from docx.oxml.ns import nsdecls
from odf import teletype
from odf.office import Annotation
from odf.opendocument import OpenDocumentText
from odf.table import Table, TableCell, TableColumn, TableRow
from odf.text import H, LineBreak, P, S, Span

from fieldnotes.documents import MAX_BYTES, MAX_CHARS, DocumentError, read_document

FINNISH = "Ryhmä käsitteli potilastapausta: lääkärin epävarmuus, Åbo, öinen päivystys 🩺"
SUPPORTED = "only .txt, .docx and .odt files can be imported"
ODT_MIMETYPE = b"application/vnd.oasis.opendocument.text"
MANIFEST = b"""<?xml version="1.0" encoding="UTF-8"?>
<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0">
 <manifest:file-entry manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.text"/>
 <manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>
</manifest:manifest>"""
BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"
 xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0">
 <office:body><office:text><text:p>&lol9;</text:p></office:text></office:body>
</office:document-content>"""


def _docx_bytes(document) -> bytes:
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def _odt_bytes(document) -> bytes:
    buffer = io.BytesIO()
    document.write(buffer)
    return buffer.getvalue()


def _odt_with(*elements) -> bytes:
    document = OpenDocumentText()
    for element in elements:
        document.text.addElement(element)
    return _odt_bytes(document)


def _odt_zip(content: bytes, manifest: bytes = MANIFEST) -> bytes:
    """A minimal .odt assembled by hand, so its content.xml can be anything."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(zipfile.ZipInfo("mimetype"), ODT_MIMETYPE)
        archive.writestr("META-INF/manifest.xml", manifest)
        archive.writestr("content.xml", content)
    return buffer.getvalue()


def _rewrite_member(data: bytes, member: str, change) -> bytes:
    """Copy a zip, passing one member's bytes through change()."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(
        buffer, "w", zipfile.ZIP_DEFLATED
    ) as target:
        for info in source.infolist():
            content = source.read(info)
            target.writestr(info, change(content) if info.filename == member else content)
    return buffer.getvalue()


def _refusal(filename: str, data: bytes) -> str:
    with pytest.raises(DocumentError) as caught:
        read_document(filename, data)
    return str(caught.value)


# --- plain text ---------------------------------------------------------------


def test_utf8_text_keeps_finnish_letters_and_emoji():
    assert read_document("note.txt", FINNISH.encode("utf-8")) == FINNISH


def test_utf8_byte_order_mark_is_dropped():
    assert read_document("note.txt", b"\xef\xbb\xbf" + FINNISH.encode("utf-8")) == FINNISH


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_with_byte_order_mark_is_decoded(encoding):
    bom = {"utf-16": b"", "utf-16-le": b"\xff\xfe", "utf-16-be": b"\xfe\xff"}[encoding]
    assert read_document("note.txt", bom + FINNISH.encode(encoding)) == FINNISH


def test_windows_1252_western_text_is_decoded():
    text = "Päivän “tapaus”: lääkäri – 5 € – jäi miettimään. Seuraava kerta öisin."
    assert read_document("note.txt", text.encode("cp1252")) == text


def test_crlf_and_lone_cr_become_newlines():
    data = b"first\r\nsecond\rthird\nfourth"
    assert read_document("note.txt", data) == "first\nsecond\nthird\nfourth"


def test_decomposed_letters_are_normalised_to_nfc():
    decomposed = "Ryhma\u0308 ka\u0308vi la\u0308pi"
    assert read_document("note.txt", decomposed.encode("utf-8")) == "Ryhmä kävi läpi"


def test_control_characters_are_removed_and_tabs_kept():
    data = b"a\x00b\x07c\td\x0be\x1bf\x0cg"
    assert read_document("note.txt", data) == "abc\tdefg"


def test_trailing_whitespace_at_the_end_is_removed():
    assert read_document("note.txt", b"line one  \nline two \t\n\n  \n") == "line one  \nline two"


def test_extension_is_matched_case_insensitively():
    assert read_document("C:\\fakepath\\NOTE.TXT", b"hello") == "hello"


def test_cyrillic_code_page_is_refused_as_unknown_encoding():
    message = _refusal("note.txt", "Группа обсуждала случай пациента".encode("cp1251"))
    assert "couldn't be recognised" in message and "UTF-8" in message


def test_damaged_utf8_is_refused_rather_than_read_as_windows_1252():
    damaged = FINNISH.encode("utf-8") + b"\xff"
    assert "UTF-8" in _refusal("note.txt", damaged)


def test_utf16_without_byte_order_mark_is_refused():
    assert "UTF-8" in _refusal("note.txt", "Ryhmä".encode("utf-16-le"))


def test_binary_data_is_refused():
    rng = random.Random(7)
    noise = bytes(rng.getrandbits(8) for _ in range(4096))
    assert "UTF-8" in _refusal("photo.txt", noise)


def test_only_whitespace_is_refused_as_no_text():
    assert "no text" in _refusal("note.txt", b" \r\n\t\n")


def test_text_of_exactly_max_chars_is_accepted():
    assert len(read_document("note.txt", b"x" * MAX_CHARS)) == MAX_CHARS


def test_text_over_max_chars_is_refused():
    message = _refusal("note.txt", "ä".encode("utf-8") * (MAX_CHARS + 1))
    assert "too long" in message and "200,000" in message


# --- refusals common to all formats --------------------------------------------


@pytest.mark.parametrize("filename", ["note.pdf", "note.doc", "note", ".txt", "note.txt.exe"])
def test_other_file_types_are_refused(filename):
    assert SUPPORTED in _refusal(filename, b"hello")


@pytest.mark.parametrize("filename", ["note.txt", "note.docx", "note.odt"])
def test_empty_file_is_refused(filename):
    assert "is empty" in _refusal(filename, b"")


@pytest.mark.parametrize("filename", ["note.txt", "note.docx", "note.odt"])
def test_file_over_max_bytes_is_refused(filename):
    message = _refusal(filename, b"a" * (MAX_BYTES + 1))
    assert "too large" in message and "10 MB" in message


def test_document_error_is_a_value_error():
    assert issubclass(DocumentError, ValueError)


# --- .docx ------------------------------------------------------------------


def test_docx_paragraphs_and_tables_come_in_document_order():
    document = docx.Document()
    document.add_heading("Istunto 3", level=1)
    document.add_paragraph("Ennen taulukkoa.")
    table = document.add_table(rows=2, cols=2)
    for row, cells in enumerate(table.rows):
        for column, cell in enumerate(cells.cells):
            cell.text = f"r{row}c{column}"
    table.cell(1, 1).add_paragraph("toinen kappale solussa")
    document.add_paragraph("Taulukon jälkeen.")

    assert read_document("note.docx", _docx_bytes(document)) == "\n".join(
        [
            "Istunto 3",
            "Ennen taulukkoa.",
            "r0c0",
            "r0c1",
            "r1c0",
            "r1c1",
            "toinen kappale solussa",
            "Taulukon jälkeen.",
        ]
    )


def test_docx_keeps_finnish_letters_emoji_tabs_and_line_breaks():
    document = docx.Document()
    paragraph = document.add_paragraph(FINNISH)
    paragraph.add_run("\tsarkain")
    paragraph.add_run().add_break()
    paragraph.add_run("uusi rivi")
    document.add_paragraph("")
    assert read_document("note.docx", _docx_bytes(document)) == f"{FINNISH}\tsarkain\nuusi rivi"


def test_docx_decomposed_letters_are_normalised_to_nfc():
    document = docx.Document()
    document.add_paragraph("la\u0308a\u0308ka\u0308ri")
    assert read_document("note.docx", _docx_bytes(document)) == "lääkäri"


def test_docx_tracked_insertion_is_kept_and_deletion_left_out():
    document = docx.Document()
    paragraph = document.add_paragraph("Ryhmä ")
    paragraph._p.append(
        parse_xml(
            f'<w:ins {nsdecls("w")} w:id="1" w:author="A"><w:r><w:t>hiljeni</w:t></w:r></w:ins>'
        )
    )
    paragraph._p.append(
        parse_xml(
            f'<w:del {nsdecls("w")} w:id="2" w:author="A">'
            "<w:r><w:delText> poistettu</w:delText></w:r></w:del>"
        )
    )
    assert read_document("note.docx", _docx_bytes(document)) == "Ryhmä hiljeni"


def test_docx_without_text_is_refused():
    document = docx.Document()
    document.add_paragraph("   ")
    assert "no text" in _refusal("note.docx", _docx_bytes(document))


def test_text_file_renamed_to_docx_is_refused_as_damaged():
    message = _refusal("note.docx", FINNISH.encode("utf-8"))
    assert "Word document" in message and "damaged" in message


def test_zip_that_is_not_a_word_document_is_refused_as_damaged():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("readme.txt", "not a document")
    assert "damaged" in _refusal("note.docx", buffer.getvalue())


def test_password_protected_docx_is_refused_with_a_hint():
    # Word stores an encrypted .docx in an OLE compound file, not a zip.
    ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 4088
    message = _refusal("secret.docx", ole)
    assert "password" in message and "Word document" in message


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_docx_with_a_doctype_is_refused(encoding):
    def add_doctype(xml: bytes) -> bytes:
        body = xml.decode("utf-8").split("?>", 1)[1]
        declaration = f'<?xml version="1.0" encoding="{encoding}"?>'
        return (declaration + '<!DOCTYPE w [<!ENTITY x "x">]>' + body).encode(encoding)

    document = docx.Document()
    document.add_paragraph("hello")
    data = _rewrite_member(_docx_bytes(document), "word/document.xml", add_doctype)
    assert "safety" in _refusal("note.docx", data)


# --- .odt -------------------------------------------------------------------


def test_odt_headings_paragraphs_tables_spaces_tabs_and_line_breaks():
    spaced = P()
    teletype.addTextToElement(spaced, "kolme   välilyöntiä\tja sarkain")
    broken = P(text="rivi")
    broken.addElement(LineBreak())
    broken.addText("toinen rivi")
    table = Table(name="T")
    table.addElement(TableColumn(numbercolumnsrepeated=2))
    for row in range(2):
        table_row = TableRow()
        for column in range(2):
            cell = TableCell()
            cell.addElement(P(text=f"r{row}c{column}"))
            table_row.addElement(cell)
        table.addElement(table_row)
    data = _odt_with(H(outlinelevel=1, text="Istunto 3"), P(text=FINNISH), spaced, broken, table)

    assert read_document("note.odt", data) == "\n".join(
        [
            "Istunto 3",
            FINNISH,
            "kolme   välilyöntiä\tja sarkain",
            "rivi",
            "toinen rivi",
            "r0c0",
            "r0c1",
            "r1c0",
            "r1c1",
        ]
    )


def test_odt_comment_is_left_out_of_the_paragraph():
    paragraph = P(text="Ryhmä ")
    comment = Annotation()
    comment.addElement(P(text="kommentti"))
    paragraph.addElement(comment)
    paragraph.addElement(Span(text="jatkoi"))
    assert read_document("note.odt", _odt_with(paragraph)) == "Ryhmä jatkoi"


def test_odt_decomposed_letters_are_normalised_to_nfc():
    assert read_document("note.odt", _odt_with(P(text="la\u0308hete"))) == "lähete"


def test_odt_without_text_is_refused():
    assert "no text" in _refusal("note.odt", _odt_with(P(text=""), H(outlinelevel=1)))


def test_odt_with_huge_space_count_is_refused_as_too_long():
    paragraph = P(text="a")
    paragraph.addElement(S(c=999_999_999))
    assert "too long" in _refusal("note.odt", _odt_with(paragraph))


def test_billion_laughs_odt_is_refused():
    assert "safety" in _refusal("laughs.odt", _odt_zip(BILLION_LAUGHS))


def test_malformed_odt_content_is_refused_without_printing_it(capsys):
    message = _refusal("note.odt", _odt_zip(b"<office:document-content><text:p>salainen"))
    assert "damaged" in message
    assert "salainen" not in capsys.readouterr().out


def test_password_protected_odt_is_refused():
    manifest = MANIFEST.replace(
        b'"text/xml"/>',
        b'"text/xml"><manifest:encryption-data manifest:checksum="x"/></manifest:file-entry>',
    )
    assert "password" in _refusal("secret.odt", _odt_zip(b"\x8f\x02binary", manifest))


def test_word_document_renamed_to_odt_is_refused_as_damaged():
    document = docx.Document()
    document.add_paragraph("hello")
    assert "damaged" in _refusal("note.odt", _docx_bytes(document))


# --- zip bombs ----------------------------------------------------------------


def _zip_of(members: dict[str, bytes | tuple[int, bytes]], level: int = 9) -> bytes:
    """A zip whose members are bytes, or (count, chunk) written chunk by chunk."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=level) as archive:
        for name, content in members.items():
            with archive.open(name, "w", force_zip64=True) as member:
                if isinstance(content, bytes):
                    member.write(content)
                else:
                    count, chunk = content
                    for _ in range(count):
                        member.write(chunk)
    return buffer.getvalue()


@pytest.mark.parametrize("filename", ["bomb.docx", "bomb.odt"])
def test_zip_bomb_with_60_mb_of_zeros_is_refused(filename):
    bomb = _zip_of({"word/document.xml": (60, bytes(1024 * 1024)), "content.xml": b"<x/>"})
    assert len(bomb) < 200_000
    assert "unpack" in _refusal(filename, bomb)


def test_member_compressed_more_than_100_times_is_refused():
    bomb = _zip_of({"content.xml": (5, bytes(1024 * 1024))})
    assert "unpack" in _refusal("note.odt", bomb)


def test_members_unpacking_past_50_mb_in_total_are_refused():
    # Each member compresses only about 20 times, but six of them make 54 MB.
    rng = random.Random(3)
    chunk = bytes(rng.getrandbits(8) if i % 16 == 0 else 32 for i in range(1024 * 1024))
    members = {f"word/part{k}.xml": (9, chunk) for k in range(6)}
    data = _zip_of(members, level=1)  # level 9 takes half a minute on this data
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert all(i.file_size < 100 * i.compress_size for i in archive.infolist())
    assert len(data) < MAX_BYTES
    assert "unpack" in _refusal("note.docx", data)
