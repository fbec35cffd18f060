"""A tqdm progress bar for terminal runs: files done, tokens/s, ETA."""

from __future__ import annotations

from tqdm import tqdm

from ingest.progress import FileDone, ProgressEvent, RunStarted, TokensEmbedded


class TerminalProgress:
    """A run's ``Progress``: the bar appears at ``RunStarted`` and closes with the context."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: tqdm | None = None
        self.tokens = 0

    def __enter__(self) -> TerminalProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()

    def __call__(self, event: ProgressEvent) -> None:
        if not self.enabled:
            return
        match event:
            case RunStarted(files=files):
                self.bar = tqdm(total=files, unit="file", dynamic_ncols=True)
            case FileDone() if self.bar is not None:
                self.bar.update(1)
            case TokensEmbedded(tokens=tokens) if self.bar is not None:
                self.tokens += tokens
                rate = self.tokens / max(self.bar.format_dict["elapsed"], 1e-6)
                self.bar.set_postfix_str(f"{rate:,.0f} tokens/s")
