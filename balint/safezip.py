"""The one zip-bomb rule shared by every upload that is a zip (.docx, .odt, .qdpx)."""

import zipfile
from collections.abc import Iterable


def looks_like_a_bomb(members: Iterable[zipfile.ZipInfo], *, max_unpacked: int, max_ratio: int,
                      ratio_floor: int) -> bool:
    """True when the declared sizes unpack to more than `max_unpacked` bytes in
    all, or a member over `ratio_floor` bytes is compressed more than
    `max_ratio` to 1. Checked on the directory, before anything is unpacked."""
    total = 0
    for member in members:
        if member.file_size > ratio_floor and member.file_size > member.compress_size * max_ratio:
            return True
        total += member.file_size
        if total > max_unpacked:
            return True
    return False
