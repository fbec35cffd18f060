"""E-mail (``.eml``): partitioned by unstructured like any format, with two rules of its own:
its bytes must be text (binary content is refused as for a text file), and its title is
its subject."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ingest.parsing.text import decode_text

if TYPE_CHECKING:
    from unstructured.documents.elements import Element as RawElement


def check_email(data: bytes) -> None:
    """Refuse binary content the way a text file's is refused (``ParseFailure``)."""
    decode_text(data)


def email_subject(elements: list[RawElement]) -> str:
    """The subject, from the first element whose metadata carries one ("" if none)."""
    for element in elements:
        subject = getattr(element.metadata, "subject", None)
        if subject:
            return str(subject)[:200]
    return ""
