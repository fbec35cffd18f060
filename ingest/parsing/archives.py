"""Zip bombs refused before any parser inflates them (DOCX, PPTX and XLSX are zip files).

Only the archive's directory is read: the declared sizes, the member count and each large
member's compression ratio, against ``Limits``.
"""

from __future__ import annotations

import io
import zipfile

from ingest.parsing.limits import Limits, ParseFailure

#: The file types that are zip archives.
ARCHIVES = frozenset({"docx", "pptx", "xlsx"})


def check_archive(data: bytes, file_type: str, limits: Limits) -> None:
    """Refuse zip bombs before any parser inflates them (DOCX, PPTX, XLSX)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise ParseFailure(
            f"damaged or unreadable {file_type.upper()} file: not a zip archive"
        ) from exc
    with archive:
        members = archive.infolist()
        if len(members) > limits.max_archive_members:
            raise ParseFailure(
                f"{file_type.upper()} has {len(members):,} parts, over the "
                f"{limits.max_archive_members:,} limit"
            )
        total = sum(m.file_size for m in members)
        if total > limits.max_archive_bytes:
            raise ParseFailure(
                f"{file_type.upper()} inflates to {total / 1e6:.0f} MB, over the "
                f"{limits.max_archive_bytes / 1e6:.0f} MB limit"
            )
        for m in members:
            ratio = m.file_size / max(m.compress_size, 1)
            if m.file_size > 1_000_000 and ratio > limits.max_archive_ratio:
                raise ParseFailure(
                    f"{file_type.upper()} part {m.filename[:80]!r} inflates {ratio:.0f}x "
                    f"({m.file_size / 1e6:.0f} MB), over the {limits.max_archive_ratio:.0f}x "
                    "limit (a zip bomb?)"
                )
