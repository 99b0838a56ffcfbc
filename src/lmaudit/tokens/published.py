"""Published numbers lmaudit checks itself against or relates premiums to.

GPT4_MMLU_3SHOT: GPT-4's 3-shot accuracy (%) on MMLU translated into 26 languages by Azure Translate, and on the
English original, as plotted in Figure 5 of OpenAI (2023), "GPT-4 Technical Report", arXiv:2303.08774. Typed
in from the figure; the FLORES-200 code of each language was added here.

petrov_counts(): Petrov, La Malfa, Torr and Bibi (2023), "Language Model Tokenizers Introduce Unfairness Between
Languages", NeurIPS 2023: token counts of each FLORES-200 language (dev then devtest, joined with single spaces)
for 27 tokenizers, published in their repository's assets/tokenization_lengths.csv (MIT). lmaudit does not ship
that table: `petrov_counts(path)` reads it where the user keeps it, and by default the data folder's sample.
"""

from __future__ import annotations

import csv
from pathlib import Path

from lmaudit.core.errors import DataError

GPT4_CITATION = ("OpenAI (2023). GPT-4 Technical Report. arXiv:2303.08774, Figure 5: 3-shot accuracy on MMLU "
                 "translated into other languages (Azure Translate).")
PETROV_CITATION = ("Petrov, La Malfa, Torr, Bibi (2023). Language Model Tokenizers Introduce Unfairness Between "
                   "Languages. NeurIPS 2023. Token counts: github.com/AleksandarPetrov/tokenization-fairness "
                   "(MIT), assets/tokenization_lengths.csv.")

# (FLORES code, language as the report names it, accuracy %)
GPT4_MMLU_3SHOT: tuple[tuple[str, str, float], ...] = (
    ("eng_Latn", "English", 85.5), ("ita_Latn", "Italian", 84.1), ("afr_Latn", "Afrikaans", 84.1),
    ("spa_Latn", "Spanish", 84.0), ("deu_Latn", "German", 83.7), ("fra_Latn", "French", 83.6),
    ("ind_Latn", "Indonesian", 83.1), ("rus_Cyrl", "Russian", 82.7), ("pol_Latn", "Polish", 82.1),
    ("ukr_Cyrl", "Ukrainian", 81.9), ("ell_Grek", "Greek", 81.4), ("lvs_Latn", "Latvian", 80.9),
    ("zho_Hans", "Mandarin", 80.1), ("arb_Arab", "Arabic", 80.0), ("tur_Latn", "Turkish", 80.0),
    ("jpn_Jpan", "Japanese", 79.9), ("swh_Latn", "Swahili", 78.5), ("cym_Latn", "Welsh", 77.5),
    ("kor_Hang", "Korean", 77.0), ("isl_Latn", "Icelandic", 76.5), ("ben_Beng", "Bengali", 73.2),
    ("urd_Arab", "Urdu", 72.6), ("npi_Deva", "Nepali", 72.2), ("tha_Thai", "Thai", 71.8),
    ("pan_Guru", "Punjabi", 71.4), ("mar_Deva", "Marathi", 66.7), ("tel_Telu", "Telugu", 62.0),
)

# lmaudit tokenizer spec -> the column of Petrov et al.'s table that holds the same tokenizer's counts.
PETROV_COLUMNS = {"tiktoken:r50k_base": "r50k_base", "tiktoken:p50k_base": "p50k_base",
                  "tiktoken:p50k_edit": "p50k_edit", "tiktoken:cl100k_base": "cl100k_base", "tiktoken:gpt2": "GPT-2"}


def petrov_counts(path: str | Path | None = None) -> dict[str, dict[str, int]]:
    """{tokenizer column: {FLORES code: tokens}} of Petrov et al.'s published counts.

    `path` is their table (`assets/tokenization_lengths.csv` of the paper's repository, with a `flores_code`
    column added), or a long table with columns language, tokenizer, tokens. lmaudit ships neither; by default
    the sample in the data folder (`$LMAUDIT_DATA_DIR/flores200/petrov_counts_sample.csv`) is read.
    """
    from lmaudit.data import find_dataset

    if path is None:
        path = find_dataset("Petrov et al.'s published counts", "flores200/petrov_counts_sample.csv",
                            how_to_get="lmaudit does not ship their table: give its path instead.")
    rows = list(csv.DictReader(Path(path).read_text(encoding="utf-8").splitlines()))
    if not rows:
        raise DataError(f"{path}: no rows")
    out: dict[str, dict[str, int]] = {}
    if {"language", "tokenizer", "tokens"} <= set(rows[0]):
        for row in rows:
            out.setdefault(row["tokenizer"], {})[row["language"]] = int(row["tokens"])
        return out
    if "flores_code" not in rows[0]:
        raise DataError(f"{path}: expected columns language,tokenizer,tokens or flores_code plus one per tokenizer")
    columns = [c for c in rows[0] if c not in {"flores_code", "Language"}]
    return {column: {row["flores_code"]: int(row[column]) for row in rows} for column in columns}