"""Llama 3.1 token counting with tiktoken, exact to the served model's own tokenizer.

Budgets are promises to the LLM server: a count that is off by a few percent turns into a
400 "context length exceeded" at the window edge. So we load Meta's own BPE ranks (shipped
inside a wheel, hash-checked) and Meta's split pattern, and count the chat-templated prompt
rather than summing its parts.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from functools import lru_cache
from pathlib import Path

import tiktoken
from tiktoken.load import load_tiktoken_bpe

from rag.assets import llama_tokenizer_file
from rag.settings import default_model_dir

LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_NAMED_SPECIALS = [
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|reserved_special_token_0|>",
    "<|reserved_special_token_1|>",
    "<|finetune_right_pad_id|>",
    "<|reserved_special_token_2|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eom_id|>",
    "<|eot_id|>",
    "<|python_tag|>",
]
NUM_SPECIAL = 256


_model_dir: Path | None = None


def use_model_dir(model_dir: Path) -> None:
    """Where the tokenizer file lies (``Settings.model_dir``); set by whoever holds the
    settings (the pipeline, the ingest worker) before the first count."""
    global _model_dir
    _model_dir = Path(model_dir)


def llama3_encoding() -> tiktoken.Encoding:
    """Built once per model dir from the hash-checked tokenizer file."""
    return _encoding(_model_dir or default_model_dir())


@lru_cache(maxsize=2)
def _encoding(model_dir: Path) -> tiktoken.Encoding:
    ranks = load_tiktoken_bpe(str(llama_tokenizer_file(model_dir)))
    base = len(ranks)
    names = _NAMED_SPECIALS + [
        f"<|reserved_special_token_{i}|>" for i in range(3, NUM_SPECIAL - len(_NAMED_SPECIALS) + 3)
    ]
    specials = {name: base + i for i, name in enumerate(names)}
    return tiktoken.Encoding(
        name="llama3.1", pat_str=LLAMA3_PATTERN, mergeable_ranks=ranks, special_tokens=specials
    )


def count_tokens(text: str) -> int:
    """Llama 3.1 tokens of plain text; special-token lookalikes in documents count as text."""
    return len(llama3_encoding().encode(text, disallowed_special=()))


def encode(text: str) -> list[int]:
    return llama3_encoding().encode(text, disallowed_special=())


def decode(tokens: Sequence[int]) -> str:
    return llama3_encoding().decode(list(tokens))


def render_llama31_chat(messages: Sequence[dict[str, str]], today: date | None = None) -> str:
    """Llama 3.1 Instruct's chat template (as in its tokenizer_config.json), generation prompt on.

    The template always opens the system turn with knowledge-cutoff and date lines, which
    cost tokens that a sum of message lengths would miss.
    """
    day = (today or date.today()).strftime("%d %b %Y")
    parts = ["<|begin_of_text|>"]
    system = ""
    rest = list(messages)
    if rest and rest[0]["role"] == "system":
        system = rest.pop(0)["content"].strip()
    parts.append(
        "<|start_header_id|>system<|end_header_id|>\n\n"
        f"Cutting Knowledge Date: December 2023\nToday Date: {day}\n\n{system}<|eot_id|>"
    )
    for message in rest:
        parts.append(
            f"<|start_header_id|>{message['role']}<|end_header_id|>\n\n"
            f"{message['content'].strip()}<|eot_id|>"
        )
    parts.append("<|start_header_id|>assistant<|end_header_id|>\n\n")
    return "".join(parts)


def count_llama31_chat(messages: Sequence[dict[str, str]]) -> int:
    """Exact prompt tokens vLLM will see for these messages under Llama 3.1's template.

    Message contents are encoded as text (a document quoting ``<|eot_id|>`` stays text, as
    vLLM's tokenizer also treats content), the template markers as special tokens.
    """
    enc = llama3_encoding()
    total = 0
    rendered = render_llama31_chat([{**m, "content": "\x00"} for m in messages])
    # Markers: encode the template with placeholders, then add each content's own count.
    skeleton = rendered.split("\x00")
    for piece in skeleton:
        total += len(enc.encode(piece, allowed_special="all"))
    for message in messages:
        total += len(enc.encode(message["content"].strip(), disallowed_special=()))
    return total
