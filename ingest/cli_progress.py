"""A tqdm progress bar for terminal runs: files done, tokens/s, ETA."""

from __future__ import annotations

from typing import Any

from tqdm import tqdm


class TerminalProgress:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: tqdm | None = None
        self.tokens = 0

    def __enter__(self) -> TerminalProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()

    def __call__(self, event: str, detail: dict[str, Any]) -> None:
        if not self.enabled:
            return
        if event == "start":
            self.bar = tqdm(total=detail["files"], unit="file", dynamic_ncols=True)
        elif event == "file" and self.bar is not None:
            self.bar.update(1)
        elif event == "tokens" and self.bar is not None:
            self.tokens += detail["tokens"]
            rate = self.tokens / max(self.bar.format_dict["elapsed"], 1e-6)
            self.bar.set_postfix_str(f"{rate:,.0f} tokens/s")
