"""The faster scan writes byte for byte the flags the scan of 2026-12-01 wrote (before issue 15's rework).

The digests below were computed with that code (git 64d4320) on the same corpus: the real multi-format
corpus with 60 perturbed MMLU items injected (conftest), plus one file of awkward lines written here (NUL
characters, lone surrogates, blank and whitespace-only lines, CRLF ends, null texts, numeric ids, every script
of the data folder, items leaked across line ends and into mixed scripts). Source paths are written relative to
the corpus folder so that the digest does not depend on the temporary folder.
"""

import hashlib
import json
import random

import pytest

from lmaudit.contamination import scan_index

# method -> (sha256 of the flags, number of contaminated flags), from the code of git 64d4320.
EXPECTED = {
    "substring": ("1940c44ecab2d3801f4d6b1aca0fc8b63098f8223549872d84b771eb9bb40912", 99),
    "ngram": ("220c9302baed7af51248c45851d207bc6119a362936687337fda29d67f7845cd", 90),
}


def _awkward_lines(items, data_dir) -> list[bytes]:
    rng = random.Random(15)
    news = []
    for language in ("ref.rus", "ref.zho-CN", "ref.hin", "ref.ell", "ref.deu"):
        path = data_dir / "ntrex128" / "NTREX-128" / f"newstest2019-{language}.txt"
        news += path.read_text(encoding="utf-8").splitlines()[:200]
    leaked = rng.sample(items, 40)
    rows: list[bytes] = []
    for k, text in enumerate(news):
        if k % 25 == 0:
            item = leaked[k // 25]
            text = f"{text} {item.text.upper()} {news[k - 1]}"  # a leaked item between two scripts
        row: dict = {"id": k if k % 3 else f"doc-{k}", "text": text}
        if k % 17 == 0:
            row["text"] = text.replace(" ", "\x00", 3)  # NUL inside a text
        if k % 29 == 0:
            row["text"] = None  # skipped
        if k % 31 == 0:
            del row["id"]
        line = json.dumps(row, ensure_ascii=k % 2 == 0).encode("utf-8")
        if k % 37 == 0:
            line = line.replace(b'"text": "', b'"text": "\\ud800 ', 1)  # a lone surrogate (json, not orjson)
        rows.append(line + (b"\r\n" if k % 7 == 0 else b"\n"))
        if k % 41 == 0:
            rows.append(b"\n" if k % 2 else b"   \n")  # blank lines are skipped
    for item in leaked[-8:]:  # whole items at the start of a line and as the last line
        rows.append(json.dumps({"text": item.text}).encode("utf-8") + b"\n")
    rows.append(json.dumps({"id": "last", "text": leaked[0].text.lower()}).encode("utf-8"))  # no final newline
    return rows


@pytest.fixture(scope="module")
def golden_corpus(dirty_corpus, mmlu_items, data_dir):
    folder, _ = dirty_corpus
    (folder / "awkward.jsonl").write_bytes(b"".join(_awkward_lines(mmlu_items, data_dir)))
    yield folder
    (folder / "awkward.jsonl").unlink()


def _digest(result, folder) -> tuple[str, int]:
    text = "\n".join(flag.to_json() for flag in result.flags).replace(json.dumps(str(folder))[1:-1], "<corpus>")
    return hashlib.sha256(text.encode("utf-8")).hexdigest(), sum(f.contaminated is True for f in result.flags)


@pytest.mark.parametrize("method", ["substring", "ngram"])
def test_flags_are_byte_identical_to_the_previous_scan(method, golden_corpus, substring_index, ngram_index):
    index = {"substring": substring_index, "ngram": ngram_index}[method]
    single = scan_index(index, [golden_corpus], progress=False)
    assert _digest(single, golden_corpus) == EXPECTED[method]
    if method == "substring":  # two processes, the files shared out in pieces, give the same bytes
        pooled = scan_index(index, [golden_corpus], workers=2, piece_bytes=1 << 20, progress=False)
        assert _digest(pooled, golden_corpus) == EXPECTED[method]
