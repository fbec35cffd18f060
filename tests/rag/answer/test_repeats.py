"""The answer ends where the small model starts saying it again, streamed or whole alike."""

import asyncio
import re

from rag.answer.generation import Generation
from rag.answer.llm import StreamEvent
from rag.answer.repeats import RepeatCut

#: SmolLM2-135M's answer at temperature 0 (real output, max_tokens 96): the sentence, a
#: shorter restatement, and the start of a third.
REPEATED = (
    "The Zorblax reactor was built in Oslo, Norway, at the Hovinbyen test site.\n\n"
    "The Zorblax reactor was built in Norway.\n\nThe Zorblax reactor was built in"
)
FIRST = "The Zorblax reactor was built in Oslo, Norway, at the Hovinbyen test site."


def tokens(text: str) -> list[str]:
    return re.findall(r"\s*\S+", text)


def cut(pieces: list[str]) -> tuple[list[str], bool]:
    repeats = RepeatCut()
    return [repeats.feed(p) for p in pieces] + [repeats.flush()], repeats.cut


def test_a_repeated_sentence_ends_the_answer_streamed_or_whole():
    streamed, was_cut = cut(tokens(REPEATED))
    assert "".join(streamed).strip() == FIRST and was_cut
    whole, _ = cut([REPEATED])
    assert "".join(whole) == "".join(streamed)
    exact, _ = cut(tokens(FIRST + "\n\n" + FIRST))  # the "X. X." (49 vs 24 tokens)
    assert "".join(exact).strip() == FIRST


def test_an_answer_that_does_not_repeat_streams_unchanged():
    answer = (
        "Rollo led the Norse raiders. He agreed to swear fealty to King Charles III in 911. "
        "The Duchy of Normandy began as a fiefdom."
    )
    for pieces in (tokens(answer), re.findall(r".{1,3}", answer, re.S)):
        out, was_cut = cut(pieces)
        assert "".join(out) == answer and not was_cut
        assert sum(1 for piece in out if piece) > len(pieces) / 2  # released as it comes
    short, _ = cut(tokens("Yes. Yes. It is."))  # under three words: no repeat
    assert "".join(short) == "Yes. Yes. It is."


class _Model:
    def forget_window(self) -> None: ...


def test_generation_stops_reading_at_the_repeat_and_keeps_the_counts():
    read: list[str] = []

    async def stream():
        for n, piece in enumerate(tokens(REPEATED), 1):
            read.append(piece)
            yield StreamEvent(delta=piece, usage={"prompt_tokens": 50, "completion_tokens": n})
        yield StreamEvent(finish_reason="length", usage={"prompt_tokens": 50})

    class LLM:
        def stream_chat(self, messages, **options):
            assert "</source>" in options["stop"]
            return stream()

    async def run() -> tuple[list[str], Generation]:
        generation = await Generation.start(
            LLM(),  # type: ignore[arg-type]
            _Model(),  # type: ignore[arg-type]
            [{"role": "user", "content": "Where?"}],
            max_tokens=96,
            temperature=0.0,
        )
        return [d async for d in generation.deltas()], generation

    deltas, generation = asyncio.run(run())
    result = generation.result()
    assert "".join(deltas).strip() == result.text == FIRST
    assert result.finish_reason == "stop" and len(read) < len(tokens(REPEATED))
    assert result.usage["prompt_tokens"] == 50 and result.usage["completion_tokens"] == len(read)
