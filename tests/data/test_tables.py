import gzip
import json

import pytest

from lmaudit.core.errors import DataError, RowError
from lmaudit.data.tables import find_dataset, read_rows, require_field


def test_reads_jsonl_csv_and_gzip(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"q": "x", "n": 1}\n\n{"q": "y", "n": 2}\n')
    (tmp_path / "b.csv").write_text("q,n\nx,1\n\"y, z\",2\n")
    with gzip.open(tmp_path / "c.jsonl.gz", "wt") as handle:
        handle.write(json.dumps({"q": "x"}) + "\n")
    rows = list(read_rows(tmp_path / "a.jsonl"))
    assert [r.values["q"] for r in rows] == ["x", "y"] and [r.line for r in rows] == [1, 3]
    assert [r.values["q"] for r in read_rows(tmp_path / "b.csv")] == ["x", "y, z"]
    assert list(read_rows(tmp_path / "c.jsonl.gz"))[0].values == {"q": "x"}


def test_malformed_jsonl_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"q": "ok"}\n{"q": oops}\n')
    with pytest.raises(RowError) as info:
        list(read_rows(path))
    assert f"{path}, line 2" in str(info.value) and "invalid JSON" in str(info.value)


def test_csv_with_wrong_field_count(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("a,b\n1,2\n3\n")
    with pytest.raises(RowError, match=r"line 3: 1 fields, expected 2"):
        list(read_rows(path))


def test_require_field_names_the_field(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"question": 3}\n')
    row = next(read_rows(path))
    with pytest.raises(RowError, match="field 'answer': missing field"):
        require_field(row, "answer")
    with pytest.raises(RowError, match="field 'question': expected str"):
        require_field(row, "question")


def test_missing_dataset_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("LMAUDIT_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError) as info:
        find_dataset("MMLU", "mmlu", how_to_get="Download it.")
    message = str(info.value)
    assert str(tmp_path / "mmlu") in message and "LMAUDIT_DATA_DIR" in message and "Download it." in message


def test_unsupported_suffix(tmp_path):
    (tmp_path / "x.xml").write_text("<a/>")
    with pytest.raises(DataError, match="unsupported file type"):
        list(read_rows(tmp_path / "x.xml"))
