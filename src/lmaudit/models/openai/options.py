"""What the user configures: the spec (`<model>@<base_url>[,<base_url>...]`), the options and the key.

Everything here is checked before any connection is made, so a mistake a retry cannot fix (an unsupported
scheme, a port that is not a number, a key inside the URL) is one clear line at load time, never a minute of
retries. Messages show URLs through `redact`, so a key typed into a URL is not echoed back.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from dataclasses import dataclass
from typing import Any

from lmaudit.core.errors import ConfigError, UnknownNameError
from lmaudit.core.redact import is_secret_parameter, redact

KEY_VARIABLES = ("LMAUDIT_API_KEY", "OPENAI_API_KEY")
DUMMY_KEY = "lmaudit-no-key"  # local servers accept anything; the SDK refuses an empty key
LETTER_HINT = ("for letter-choice MCQ on a chat-only API use the option loglikelihood=letters (it scores the "
               "option letters by the top_logprobs of the first answer token)")
SCHEMES = ("http", "https")
_SCHEME_AFTER_AT = re.compile(r"@(?=[A-Za-z][A-Za-z0-9+.-]*://)")


@dataclass(frozen=True)
class Options:
    """Backend options; every one can be given as a string (the CLI passes key=value pairs)."""

    api: str = "auto"  # "auto": prompts -> /completions, messages -> /chat/completions; "chat": chat only
    loglikelihood: str = "echo"  # "echo": prompt logprobs from /completions; "letters": chat top_logprobs
    top_logprobs: int = 20
    max_concurrency: int = 64
    max_retries: int = 8
    timeout: float = 120.0  # seconds per request
    retry_base_delay: float = 0.5  # seconds; doubles per attempt, with jitter
    retry_max_delay: float = 30.0
    dead_endpoint_timeout: float = 120.0  # give up once every endpoint has refused connections this long
    # "aiohttp": a lean client; "sdk": the official openai SDK, which spends ~3x the CPU per request (0.4 ms vs
    # 0.12 ms) and so falls behind lm-eval when answers arrive in bursts (docs/api-backend.md has the figures)
    http: str = "aiohttp"
    generation_logprobs: bool = False
    max_tokens_param: str = "max_tokens"  # newer OpenAI chat models want "max_completion_tokens"
    api_key_env: str = ""  # name of the variable holding the key; default LMAUDIT_API_KEY, then OPENAI_API_KEY
    prices: str = ""  # "prompt=<usd per 1M tokens>,completion=<usd per 1M tokens>"
    verify_echo: bool = True
    tag: str = ""  # added to the fingerprint: two servers that call different weights by the same name


def parse_options(raw: dict[str, Any]) -> Options:
    """Options from keyword arguments (strings allowed: "8", "true"); unknown names get the closest valid one."""
    valid = list(Options.__dataclass_fields__)
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in Options.__dataclass_fields__:
            raise UnknownNameError("openai backend option", name, valid)
        kind = type(getattr(Options(), name))
        try:
            if kind is bool and isinstance(value, str):
                if value.lower() not in {"true", "false", "1", "0", "yes", "no"}:
                    raise ValueError(value)
                value = value.lower() in {"true", "1", "yes"}
            values[name] = kind(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"openai backend option {name}={value!r}: expected {kind.__name__}") from exc
    options = Options(**values)
    if options.api not in {"auto", "chat"}:
        raise ConfigError(f"openai backend option api={options.api!r}: expected 'auto' or 'chat'")
    if options.http not in {"aiohttp", "sdk"}:
        raise ConfigError(f"openai backend option http={options.http!r}: expected 'aiohttp' or 'sdk'")
    if options.loglikelihood not in {"echo", "letters"}:
        raise ConfigError(f"openai backend option loglikelihood={options.loglikelihood!r}: "
                          "expected 'echo' or 'letters'")
    if options.max_concurrency < 1 or options.max_retries < 0 or options.timeout <= 0:
        raise ConfigError("openai backend options: max_concurrency >= 1, max_retries >= 0 and timeout > 0")
    if not 1 <= options.top_logprobs <= 20:
        raise ConfigError("openai backend option top_logprobs: expected 1-20 (the API's limit)")
    parse_prices(options.prices)
    return options


def parse_prices(text: str) -> dict[str, float]:
    """'prompt=2,completion=10' (USD per million tokens) -> {"prompt": 2.0, "completion": 10.0}."""
    if not text:
        return {}
    prices: dict[str, float] = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        name = name.strip()
        if name not in {"prompt", "completion"}:
            raise ConfigError(f"openai backend option prices: unknown price '{name}' "
                              "(expected prompt=<usd per 1M tokens>,completion=<usd per 1M tokens>)")
        try:
            prices[name] = float(value)
        except ValueError as exc:
            raise ConfigError(f"openai backend option prices: {name}={value!r} is not a number") from exc
    return prices


def parse_spec(rest: str) -> tuple[str, list[str]]:
    """'<model>@<url>[,<url>...]' -> (model, urls). The model name may itself contain '@'."""
    found = _SCHEME_AFTER_AT.search(rest)
    if not found or found.start() == 0:
        raise ConfigError(f"openai model spec '{redact(rest)}': expected openai:<model>@<base_url>[,<base_url>...], "
                          "e.g. openai:gpt-4o-mini@https://api.openai.com/v1")
    model = rest[:found.start()]
    urls = [u.strip().rstrip("/") for u in rest[found.end():].split(",") if u.strip()]
    for url in urls:
        check_base_url(url)
    if len(set(urls)) != len(urls):
        raise ConfigError(f"openai model spec lists a base URL twice: {redact(', '.join(urls))}")
    return model, urls


def check_base_url(url: str) -> None:
    """Refuse a base URL that no request could succeed with, or that would put a secret into run files."""
    shown = redact(url)
    scheme = url.partition("://")[0].lower()
    if scheme not in SCHEMES:
        raise ConfigError(f"openai model spec: base URL {shown} has the unsupported scheme '{scheme}' "
                          "(the backend speaks http and https)")
    if re.search(r"\s", url):
        raise ConfigError(f"openai model spec: base URL {shown!r} contains whitespace")
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError for a port that is not a number in 0-65535)
    except ValueError as exc:
        raise ConfigError(f"openai model spec: base URL {shown} is malformed ({redact(str(exc))})") from None
    if not parts.hostname:
        raise ConfigError(f"openai model spec: base URL {shown} names no host")
    secret_parameters = [name for name, _ in urllib.parse.parse_qsl(parts.query + "&" + parts.fragment)
                         if is_secret_parameter(name)]
    if parts.username is not None or parts.password is not None or secret_parameters:
        where = "user:password@" if parts.username is not None else f"the parameter {secret_parameters[0]}="
        raise ConfigError(f"openai model spec: base URL {shown} carries a credential ({where}); the spec is "
                          f"stored in manifest.json and shown in logs, so put the key in {' or '.join(KEY_VARIABLES)}"
                          " (or name your variable with the option api_key_env)")
    if parts.query or parts.fragment:
        raise ConfigError(f"openai model spec: base URL {shown} has a query or fragment; give the URL up to the "
                          "API's root (e.g. https://host/v1): endpoint paths are appended to it")


def api_key(options: Options) -> str:
    """The key from the environment only (never from the command line, where it would be logged)."""
    names = (options.api_key_env,) if options.api_key_env else KEY_VARIABLES
    for name in names:
        if os.environ.get(name):
            return os.environ[name]
    if options.api_key_env:
        raise ConfigError(f"openai backend: api_key_env={options.api_key_env} but that variable is not set")
    return DUMMY_KEY
