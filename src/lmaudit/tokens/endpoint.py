"""What an OpenAI-compatible endpoint bills: `usage.prompt_tokens` of a completion request whose prompt is the text.

One request per text (a response's usage covers exactly its own prompt), `max_tokens=1` so the generated part
costs almost nothing, requests in parallel on a small thread pool, and a few retries on 429/5xx. The key comes
from the environment (LMAUDIT_API_KEY, else OPENAI_API_KEY) and is never stored; URLs are stored without
credentials.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from lmaudit.core.errors import ConfigError, ModelError
from lmaudit.core.redact import redact_url
from lmaudit.tokens.tokenizers import Measured

KEY_VARIABLES = ("LMAUDIT_API_KEY", "OPENAI_API_KEY")
RETRIES = 4


class EndpointTokenizer:
    separable = False

    def __init__(self, model: str, base_url: str, *, concurrency: int = 8, timeout: float = 60.0):
        if not re.match(r"https?://[^/\s]+", base_url):
            raise ConfigError(f"openai tokenizer: '{redact_url(base_url)}' is not an http(s) base URL")
        self.model, self.base_url = model, base_url.rstrip("/")
        self.name = f"openai:{model}"
        self.concurrency, self.timeout = concurrency, timeout
        self._key = next((os.environ[v] for v in KEY_VARIABLES if os.environ.get(v)), None)

    @classmethod
    def from_spec(cls, rest: str) -> "EndpointTokenizer":
        found = re.search(r"@(?=https?://)", rest)
        if not found or found.start() == 0:
            raise ConfigError(f"openai tokenizer '{rest}': expected openai:<model>@<base_url>, e.g. "
                              "openai:gpt-4o-mini@https://api.openai.com/v1")
        return cls(rest[:found.start()], rest[found.end():])

    def fingerprint(self) -> str:
        return f"openai:{self.model}@{redact_url(self.base_url)}"

    def _prompt_tokens(self, text: str) -> int:
        body = json.dumps({"model": self.model, "prompt": text, "max_tokens": 1, "temperature": 0}).encode()
        headers = {"Content-Type": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        for attempt in range(RETRIES + 1):
            request = urllib.request.Request(f"{self.base_url}/completions", data=body, headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                    usage = json.loads(answer.read()).get("usage") or {}
                break
            except urllib.error.HTTPError as error:
                if error.code in {429, 500, 502, 503, 504} and attempt < RETRIES:
                    time.sleep(0.5 * 2 ** attempt)
                    continue
                raise ModelError(f"{self.fingerprint()}: HTTP {error.code} for a token-count request") from None
            except (urllib.error.URLError, TimeoutError) as error:
                if attempt < RETRIES:
                    time.sleep(0.5 * 2 ** attempt)
                    continue
                reason = getattr(error, "reason", error)
                raise ModelError(f"{self.fingerprint()}: cannot reach the endpoint ({reason})") from None
        if not isinstance(usage.get("prompt_tokens"), int):
            raise ModelError(f"{self.fingerprint()}: the answer has no usage.prompt_tokens, so the endpoint does "
                             "not report what it bills")
        return usage["prompt_tokens"]

    def measure(self, texts: Sequence[str]) -> Measured:
        with ThreadPoolExecutor(self.concurrency) as pool:
            # An empty text is billed nothing; servers disagree on whether they accept one at all.
            tokens = list(pool.map(lambda t: self._prompt_tokens(t) if t else 0, texts))
        return Measured(np.array(tokens, np.int64), np.zeros(len(texts), np.int64), np.zeros(len(texts), np.int64))

    def measure_units(self, words: Sequence[str]) -> Measured:
        return self.measure([" " + w for w in words])
