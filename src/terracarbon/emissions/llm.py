"""Optional LLM ensemble member: any OpenAI-compatible ``/v1/chat/completions`` endpoint picks one NAICS child.

Off by default. Enable with ``NaicsClassifier(..., llm=LLMMember(base_url, model))`` or the CLI's
``--llm-url URL --llm-model NAME`` (API key from ``--llm-key`` or ``$TERRACARBON_LLM_API_KEY``/``$OPENAI_API_KEY``).
The member sends the description and the candidate codes with titles and reads back one code; a reply that names no
candidate is ignored (no vote). Replies are cached per (level, description, options).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from terracarbon.errors import ConfigError, TerracarbonError

__all__ = ["LLMMember", "LLMError"]

_LEVEL_WORDS = {2: "sector", 3: "subsector", 4: "industry group", 5: "industry", 6: "national industry"}


class LLMError(TerracarbonError):
    """The LLM endpoint failed or answered something unusable."""


class LLMMember:
    """Chooses among NAICS candidates with a chat-completions model.

    Args:
        base_url: server root, e.g. ``http://127.0.0.1:8000`` (``/v1/chat/completions`` is appended unless the URL
            already ends with it).
        model: model name sent in the request.
        api_key: bearer token (default: ``$TERRACARBON_LLM_API_KEY`` or ``$OPENAI_API_KEY``; none for local servers).
        timeout: seconds per request.
        strict: raise :class:`LLMError` on failures instead of abstaining.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        temperature: float = 0.0,
        strict: bool = False,
    ):
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"LLM endpoint must be an http(s) URL, got {base_url!r}")
        url = base_url.rstrip("/")
        if not url.endswith("/chat/completions"):
            url = url + ("/chat/completions" if url.endswith("/v1") else "/v1/chat/completions")
        self.url = url
        self.model = model
        self.api_key = (
            api_key or os.environ.get("TERRACARBON_LLM_API_KEY") or os.environ.get("OPENAI_API_KEY")
        )
        self.timeout = timeout
        self.temperature = temperature
        self.strict = strict
        self.calls = 0
        self._cache: dict[tuple, str | None] = {}

    def prompt(self, description: str, options: Sequence[tuple[str, str]], level: int) -> list[dict]:
        lines = "\n".join(f"{code}: {title}" for code, title in options)
        word = _LEVEL_WORDS.get(level, "category")
        return [
            {
                "role": "system",
                "content": "You classify businesses into the North American Industry Classification System (NAICS). "
                "Answer with exactly one code from the list and nothing else.",
            },
            {
                "role": "user",
                "content": f"Business description: {description}\n\nWhich NAICS {word} fits best?\n{lines}\n\nCode:",
            },
        ]

    def choose(self, description: str, options: Sequence[tuple[str, str]], *, level: int = 6) -> str | None:
        """Return the code the model picks among ``options`` ((code, title) pairs), or ``None`` (abstain)."""
        import requests

        key = (level, description, tuple(c for c, _ in options))
        if key in self._cache:
            return self._cache[key]
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        body = {
            "model": self.model,
            "messages": self.prompt(description, options, level),
            "temperature": self.temperature,
            "max_tokens": 16,
        }
        self.calls += 1
        try:
            resp = requests.post(self.url, json=body, headers=headers, timeout=self.timeout)
            resp.raise_for_status()
            text = resp.json()["choices"][0]["message"]["content"]
        except Exception as exc:  # network, HTTP, JSON shape
            if self.strict:
                raise LLMError(f"LLM endpoint {self.url} failed: {exc}") from exc
            self._cache[key] = None
            return None
        choice = self.parse(text, [c for c, _ in options])
        self._cache[key] = choice
        return choice

    @staticmethod
    def parse(text: str, codes: Sequence[str]) -> str | None:
        """First candidate code mentioned in ``text`` (longest codes first), else ``None``."""
        text = text or ""
        for tok in re.findall(r"\d{2}-\d{2}|\d{2,6}", text):
            if tok in codes:
                return tok
        return None
