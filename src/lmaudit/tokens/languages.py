"""Language codes and names: FLORES-200 codes (`hin_Deva`) with their English names, and the mapping of other
corpora's codes (NTREX-128's `hin`, `aze-Latn`) onto them."""

from __future__ import annotations

import csv
from functools import lru_cache
from importlib import resources

# ISO 639-1 codes (locales such as MMMLU's `DE_DE`) and macro-language codes -> the FLORES-200 language code.
_ALIASES = {"ar": "arb", "bn": "ben", "de": "deu", "en": "eng", "es": "spa", "fr": "fra", "hi": "hin", "id": "ind",
            "it": "ita", "ja": "jpn", "ko": "kor", "pt": "por", "sw": "swh", "yo": "yor", "zh": "zho", "ru": "rus",
            "tr": "tur", "pl": "pol", "uk": "ukr", "el": "ell", "th": "tha", "te": "tel", "mr": "mar", "ur": "urd",
            "pa": "pan", "ne": "npi", "cy": "cym", "is": "isl", "lv": "lvs", "af": "afr", "vi": "vie", "nl": "nld",
            "ara": "arb", "fas": "pes", "msa": "zsm", "swa": "swh", "lav": "lvs", "nep": "npi", "aze": "azj",
            "uzb": "uzn", "mon": "khk", "pus": "pbt", "orm": "gaz", "sqi": "als", "yid": "ydd", "mlg": "plt"}
# Languages FLORES-200 has in two scripts: the script a bare language code means.
_DEFAULT_SCRIPT = {"ace": "Latn", "arb": "Arab", "bjn": "Latn", "kas": "Arab", "knc": "Latn", "min": "Latn",
                   "taq": "Latn", "zho": "Hans"}


@lru_cache(maxsize=1)
def flores_names() -> dict[str, str]:
    """FLORES-200 code -> English name, for the 204 languages (names from the langcodes package, see data/)."""
    text = resources.files("lmaudit.tokens").joinpath("data/flores200_languages.tsv").read_text(encoding="utf-8")
    rows = list(csv.reader(text.splitlines(), delimiter="\t"))
    return {code: name for code, name in rows[1:]}


def language_name(code: str) -> str:
    """The English name of a FLORES code; other codes are their own name."""
    return flores_names().get(code, code)


def script_of(code: str) -> str:
    """The script part of a FLORES code (`Deva` of `hin_Deva`), or '' for codes without one."""
    _, _, script = code.partition("_")
    return script


def to_flores(code: str, known: set[str] | None = None) -> str:
    """A FLORES-200 code for `code` where one is unambiguous; the code itself otherwise.

    Accepts FLORES codes, NTREX-style ISO codes with an optional script or region (`aze-Latn`, `srp-Cyrl`,
    `fra`), and locale codes (`DE_DE`, `de-de`) whose language part has one FLORES code.
    """
    names = flores_names()
    if code in names:
        return code
    known = known if known is not None else set(names)
    base, _, suffix = code.replace("_", "-").partition("-")
    base = _ALIASES.get(base.lower(), base.lower())
    candidates = sorted(c for c in known if c.split("_")[0] == base)
    if suffix and suffix.title() in {script_of(c) for c in candidates}:
        return f"{base}_{suffix.title()}"
    if len(candidates) == 1:
        return candidates[0]
    default = f"{base}_{_DEFAULT_SCRIPT.get(base, '')}"
    return default if default in candidates else code
