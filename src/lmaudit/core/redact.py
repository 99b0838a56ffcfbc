"""Credentials out of everything stored or printed: the password of `user:password@` in any URL, and the values
of key-like query (or fragment) parameters.

Run directories, logs and error messages are shared and kept; a key that reaches one of them has leaked. This
is the one place that knows what a credential in a URL looks like, so that whatever prints or stores a spec, an
argv or a message passes it through `redact` first. It works on text that is not a valid URL too (a bad port, a
typo): the point is to never show the secret, not to check the URL.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"
_SCHEME = r"[A-Za-z][A-Za-z0-9+.-]*://"
# A URL ends at whitespace, a quote, or where the next URL begins ("http://a/v1,http://b/v1").
_URL = re.compile(_SCHEME + r"(?:(?!" + _SCHEME + r")[^\s'\"<>`])+")
# Parameter names that carry a secret (api_key, access_token, X-Amz-Signature, sig, password, ...). Matching
# broadly costs at worst a masked harmless value; matching narrowly leaks a key.
_SECRET_NAME = re.compile(r"key|token|secret|passw|pwd|credential|signature|auth|session|^sig$|^pw$|^code$", re.I)


def is_secret_parameter(name: str) -> bool:
    return bool(_SECRET_NAME.search(name))


def _mask_pairs(text: str) -> str:
    """'a=1&api_key=s' -> 'a=1&api_key=***' (separators '&' and ';')."""
    parts = re.split(r"([&;])", text)
    for i in range(0, len(parts), 2):
        name, sep, value = parts[i].partition("=")
        if sep and value and is_secret_parameter(name):
            parts[i] = f"{name}={MASK}"
    return "".join(parts)


def redact_url(url: str) -> str:
    """The URL with its password (or a lone user name, often a token: https://TOKEN@host) and key-like
    parameters masked; everything else as given."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    # The authority ends at the first '/', '?' or '#' (RFC 3986); its user info ends at the last '@' in it.
    cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, tail = rest[:cut], rest[cut:]
    if "@" in authority:
        userinfo, _, host = authority.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        authority = f"{user}:{MASK}@{host}" if colon else f"{MASK}@{host}"
    elif _unencoded_password(authority) and "@" in tail:
        # 'u:pa/ss@host': a password with a '/' in it ends the authority early; mask up to the '@'.
        authority = authority.partition(":")[0] + ":" + MASK
        tail = tail[tail.index("@"):]
    path, hash_sign, fragment = tail.partition("#")
    path, question, query = path.partition("?")
    return (f"{scheme}://{authority}{path}{question}{_mask_pairs(query)}"
            f"{hash_sign}{_mask_pairs(fragment)}")


def _unencoded_password(authority: str) -> bool:
    """Whether 'x:y' cannot be host:port (y is not a port number), so y is the start of a password."""
    if authority.startswith("["):  # an IPv6 literal: its colons are the address
        return False
    _, colon, after = authority.partition(":")
    return bool(colon) and not after.isdigit()


def redact(text: str) -> str:
    """`text` with every URL in it redacted (`redact_url`)."""
    if "://" not in text:
        return text
    return _URL.sub(lambda found: redact_url(found.group(0)), text)


def redact_data(value: Any) -> Any:
    """A JSON-like value (dicts, lists, strings) with every string redacted; keys and other values unchanged."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: redact_data(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_data(item) for item in value]
    return value
