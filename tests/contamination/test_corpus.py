"""Corpus files: every format read the same way, ids and lines kept, bad paths and files named in errors."""

import gzip
import json

import pytest

from lmaudit.contamination.corpus import corpus_shards, read_batches
from lmaudit.core.errors import DataError

DOCS = ["First document.", "Second — with “Unicode”.", "", "Fourth\twith a tab."]


def _write_all(folder):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"id": f"doc-{i}", "text": t} for i, t in enumerate(DOCS)]
    (folder / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with gzip.open(folder / "b.jsonl.gz", "wt", encoding="utf-8") as handle:
        handle.write("".join(json.dumps({"text": r["text"]}) + "\n\n" for r in rows))  # blank lines between
    (folder / "c.txt").write_text("\n".join(DOCS) + "\n", encoding="utf-8")
    with gzip.open(folder / "d.txt.gz", "wt", encoding="utf-8") as handle:
        handle.write("\r\n".join(DOCS))
    pq.write_table(pa.Table.from_pylist(rows), folder / "e.parquet")
    (folder / "notes.md").write_text("not a corpus file")


def test_every_format_yields_the_same_documents(tmp_path):
    _write_all(tmp_path)
    shards = corpus_shards([tmp_path])  # a folder: every corpus file below it, sorted; notes.md ignored
    assert [s.path.rsplit("/", 1)[1] for s in shards] == ["a.jsonl", "b.jsonl.gz", "c.txt", "d.txt.gz", "e.parquet"]
    for shard in shards:
        batches = list(read_batches(shard, batch_chars=20))  # small batches: documents span several
        texts = [t for b in batches for t in b.texts]
        ids = [b.doc_id(i) for b in batches for i in range(len(b.texts))]
        lines = [line for b in batches for line in b.lines]
        if shard.format == "txt":  # one document per line; an empty line is no document
            assert texts == [d for d in DOCS if d]
            assert lines == [1, 2, 4] and ids[0] == f"{shard.path}:1"
        else:
            assert texts == DOCS
        if shard.path.endswith(("a.jsonl", "e.parquet")):
            assert ids == [f"doc-{i}" for i in range(4)] and lines == [1, 2, 3, 4]
        if shard.path.endswith("b.jsonl.gz"):
            assert lines == [1, 3, 5, 7] and ids[1] == f"{shard.path}:3"
        assert sum(b.text_bytes for b in batches) == sum(len(t.encode()) for t in texts)
    # The same file named twice (by path and by glob) is scanned once.
    assert len(corpus_shards([tmp_path / "a.jsonl", str(tmp_path / "*.jsonl")])) == 1


def test_errors_name_what_is_wrong(tmp_path):
    _write_all(tmp_path)
    with pytest.raises(DataError, match="matches no file"):
        corpus_shards([str(tmp_path / "*.nothing")])
    with pytest.raises(DataError, match="corpus file not found"):
        corpus_shards([tmp_path / "missing.jsonl"])
    with pytest.raises(DataError, match="unsupported corpus file type"):
        corpus_shards([tmp_path / "notes.md"])
    with pytest.raises(DataError, match="no corpus given"):
        corpus_shards([])
    with pytest.raises(DataError, match="no column 'body'"):
        list(read_batches(corpus_shards([tmp_path / "e.parquet"])[0], text_field="body"))
    (tmp_path / "bad.txt").write_bytes(b"fine\n\xff\xfe broken\n")
    with pytest.raises(DataError, match=r"bad.txt, line 2: not UTF-8"):
        list(read_batches(corpus_shards([tmp_path / "bad.txt"])[0]))
    (tmp_path / "bad.jsonl.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="cannot be read"):
        list(read_batches(corpus_shards([tmp_path / "bad.jsonl.gz"])[0]))


def _reference_documents(path, text_field="text", id_field="id"):
    """Line by line, as the reader before block parsing did it: (line, id, text) of every document."""
    documents = []
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if path.suffix == ".txt":
                text = raw.decode("utf-8").rstrip("\r\n")
                if text:
                    documents.append((number, None, text))
                continue
            if not raw.strip():
                continue
            row = json.loads(raw)
            if row[text_field] is not None:
                documents.append((number, None if row.get(id_field) is None else str(row.get(id_field)),
                                  row[text_field]))
    return documents


@pytest.mark.parametrize("batch_chars", [1, 700, 1 << 22])
def test_block_reader_equals_line_by_line_reading_and_cuts_batches_by_characters(tmp_path, monkeypatch,
                                                                                 batch_chars):
    from lmaudit.contamination import corpus

    monkeypatch.setattr(corpus, "READ_BYTES", 256)  # many blocks, lines cut across block ends
    lines = []
    for k in range(300):
        row = {"id": k if k % 3 else f"d{k}", "text": f"Doc {k} " + "ωx" * (k % 40) + ("\x00" if k % 11 == 0 else "")}
        if k % 13 == 0:
            row["text"] = None
        if k % 17 == 0:
            del row["id"]
        line = json.dumps(row, ensure_ascii=k % 2 == 0)
        if k % 19 == 0:
            line = line.replace('"text": "', '"text": "\\ud800', 1)  # only the standard parser takes it
        lines.append(line + ("\r\n" if k % 7 == 0 else "\n") + ("\n" if k % 23 == 0 else ""))
    (tmp_path / "a.jsonl").write_text("".join(lines)[:-1], encoding="utf-8")  # no final line end
    (tmp_path / "b.txt").write_text("".join(f"line {k} ä\r\n" + ("\n" if k % 5 == 0 else "") for k in range(300)),
                                    encoding="utf-8")
    for path in (tmp_path / "a.jsonl", tmp_path / "b.txt"):
        batches = list(read_batches(corpus_shards([path])[0], batch_chars=batch_chars))
        got = [doc for b in batches for doc in zip(b.lines, b.ids, b.texts)]
        assert got == _reference_documents(path)
        for batch in batches[:-1]:  # each batch ends with the document that brings it to batch_chars
            assert batch.chars >= batch_chars > batch.chars - len(batch.texts[-1])
        assert all(b.text_bytes == sum(len(t.encode("utf-8", "surrogatepass")) for t in b.texts) for b in batches)
