"""An answer's sources in response headers, for clients that keep headers but drop the body's
extra fields: LangChain's ``ChatOpenAI`` keeps no ``rag`` field, but with
``include_response_headers=True`` it puts the headers in ``response_metadata["headers"]``.

The sources are known before generation starts (the pipeline's first event), so streams
carry the same headers as whole responses, on ``/v1/query`` and ``/v1/chat/completions``:

* ``X-RAG-Sources``: a JSON list, ``[{"n", "document_id", "title", "source"}, ...]`` in the
  order the model was shown them (``source``: the display name, never a server path). ASCII
  only (``\\uXXXX`` escapes), at most ``MAX_SOURCES_BYTES``: titles and names are cut to
  ``MAX_FIELD_CHARS`` and sources that do not fit are left out (the body has them all);
* ``X-RAG-Sources-Count``: how many sources the answer had (more than the list when cut);
* ``X-RAG-Request-Id``: the request id (as ``X-Request-Id``), the key to the logs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from rag.answer.budget import Source

SOURCES = "X-RAG-Sources"
SOURCES_COUNT = "X-RAG-Sources-Count"
REQUEST_ID = "X-RAG-Request-Id"
#: What CORS lets a browser client read (``api.app``).
EXPOSED_HEADERS = (SOURCES, SOURCES_COUNT, REQUEST_ID, "X-Request-Id")
#: Bound of ``X-RAG-Sources``: proxies refuse large header blocks (nginx: 4-8 KB in all).
MAX_SOURCES_BYTES = 2048
MAX_FIELD_CHARS = 80


def answer_headers(sources: Sequence[Source], request_id: str | None) -> dict[str, str]:
    """The headers of an answer with these ``sources`` (see the module notes)."""
    items: list[str] = []
    for source in sources:
        hit = source.hit
        item = json.dumps(
            {
                "n": source.n,
                "document_id": hit.document_id,
                "title": hit.title[:MAX_FIELD_CHARS],
                "source": hit.display_name[:MAX_FIELD_CHARS],
            },
            ensure_ascii=True,
            separators=(",", ":"),
        )
        if len("[" + ",".join([*items, item]) + "]") > MAX_SOURCES_BYTES:
            break
        items.append(item)
    headers = {SOURCES: "[" + ",".join(items) + "]", SOURCES_COUNT: str(len(sources))}
    if request_id:
        headers[REQUEST_ID] = request_id
    return headers
