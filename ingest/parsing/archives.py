"""Zip bombs refused before any parser inflates them (DOCX, PPTX and XLSX are zip files).

Only the archive's directory is read: the declared sizes, the member count and the parts'
compression ratios, against ``Limits``. The ratio is judged on the parts taken together, so
that splitting a bomb into many small parts does not hide it: the parts that inflate more
than ``max_archive_ratio`` may hold at most ``RATIO_FLOOR_BYTES`` between them (a few small,
very compressible parts are normal; 150 parts of 0.99 MB at 1000x are not), and their bytes
count however many parts there are and whatever incompressible parts (images) sit beside
them. Real Office XML compresses 5-20x.
"""

from __future__ import annotations

import io
import zipfile

from ingest.parsing.limits import Limits, ParseFailure

#: The file types that are zip archives.
ARCHIVES = frozenset({"docx", "pptx", "xlsx"})

#: Inflated bytes the parts over the ratio may hold together before the file is refused.
RATIO_FLOOR_BYTES = 1_000_000


def check_archive(data: bytes, file_type: str, limits: Limits) -> None:
    """Refuse zip bombs before any parser inflates them (DOCX, PPTX, XLSX)."""
    kind = file_type.upper()
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise ParseFailure(f"damaged or unreadable {kind} file: not a zip archive") from exc
    with archive:
        members = archive.infolist()
        if len(members) > limits.max_archive_members:
            raise ParseFailure(
                f"{kind} has {len(members):,} parts, over the {limits.max_archive_members:,} limit"
            )
        total = sum(m.file_size for m in members)
        if total > limits.max_archive_bytes:
            raise ParseFailure(
                f"{kind} inflates to {total / 1e6:.0f} MB, over the "
                f"{limits.max_archive_bytes / 1e6:.0f} MB limit"
            )
        over = [
            m for m in members if _ratio(m.file_size, m.compress_size) > limits.max_archive_ratio
        ]
        inflated = sum(m.file_size for m in over)
        if inflated <= RATIO_FLOOR_BYTES:
            return
        limit = f"over the {limits.max_archive_ratio:.0f}x limit (a zip bomb?)"
        if len(over) == 1:
            [m] = over
            raise ParseFailure(
                f"{kind} part {m.filename[:80]!r} inflates "
                f"{_ratio(m.file_size, m.compress_size):.0f}x ({m.file_size / 1e6:.0f} MB), {limit}"
            )
        ratio = _ratio(inflated, sum(m.compress_size for m in over))
        raise ParseFailure(
            f"{kind} has {len(over):,} parts that inflate {ratio:.0f}x together "
            f"({inflated / 1e6:.0f} MB), {limit}"
        )


def _ratio(inflated: int, compressed: int) -> float:
    return inflated / max(compressed, 1)
