"""The bytes of a text file (plain text, Markdown, HTML, e-mail) decoded: UTF-8, else the
encoding detected, with binary content refused."""

from __future__ import annotations

from ingest.parsing.limits import ParseFailure


def decode_text(data: bytes) -> tuple[str, str]:
    """The text and the encoding it was read with."""
    if b"\x00" in data[:8192]:
        raise ParseFailure("binary content in a text file (NUL bytes)")
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    matches = from_bytes(data)
    best = matches.best()
    if best is None or best.encoding is None:
        raise ParseFailure("text is not UTF-8 and its encoding could not be detected")
    # Single-byte code pages are often equally plausible; prefer the most common one
    # (Windows-1252, a superset of Latin-1) when it reads the bytes as cleanly.
    for match in matches:
        if match.encoding == "cp1252" and match.chaos <= best.chaos + 0.05:
            return str(match), "cp1252"
    return str(best), best.encoding
