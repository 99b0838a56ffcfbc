"""The process pool and Ray give exactly the flags of a single-process scan on a multi-file corpus."""

import json
import threading

import pytest

from lmaudit.contamination import scan_index


def _as_json(result):
    return [flag.to_json() for flag in result.flags]


def test_process_pool_equals_single_process(substring_index, dirty_corpus):
    folder, _ = dirty_corpus
    single = scan_index(substring_index, [folder], workers=1, progress=False)
    pooled = scan_index(substring_index, [folder], workers=2, progress=False)
    assert _as_json(pooled) == _as_json(single)
    assert sum(f.contaminated is True for f in single.flags) >= 60
    assert pooled.stats.documents == single.stats.documents and pooled.stats.text_bytes == single.stats.text_bytes


def test_workers_are_forked_only_where_no_other_thread_runs(substring_index, dirty_corpus):
    from lmaudit.contamination.scanning import _pool_context

    folder, _ = dirty_corpus
    assert _pool_context().get_start_method() == "fork"  # the pooled scan above forked its workers
    single = scan_index(substring_index, [folder], workers=1, progress=False)
    stop = threading.Event()
    waiting = threading.Thread(target=stop.wait)
    waiting.start()
    try:
        assert _pool_context().get_start_method() == "spawn"
        spawned = scan_index(substring_index, [folder], workers=2, progress=False)
    finally:
        stop.set()
        waiting.join()
    assert _as_json(spawned) == _as_json(single)


@pytest.mark.slow
def test_ray_equals_local(substring_index, ngram_index, dirty_corpus, one_file_corpus):
    import ray

    folder, _ = dirty_corpus
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)  # a local Ray, started here
    try:
        for index in (substring_index, ngram_index):
            local = scan_index(index, [folder], progress=False)
            on_ray = scan_index(index, [folder], executor="ray", workers=2, progress=False)
            assert _as_json(on_ray) == _as_json(local)
            assert on_ray.stats.files == 11 and on_ray.stats.executor == "ray"
            assert sum(json.loads(j)["contaminated"] is True for j in _as_json(on_ray)) >= 48
        # One file shared out in pieces among the actors.
        whole, piece_bytes = one_file_corpus
        local = scan_index(substring_index, [whole], progress=False)
        on_ray = scan_index(substring_index, [whole], executor="ray", workers=2, progress=False,
                            piece_bytes=piece_bytes)
        assert _as_json(on_ray) == _as_json(local)
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def one_file_corpus(dirty_corpus, tmp_path_factory):
    """The multi-file corpus as one JSONL file (ids dropped, so evidence names documents by file:line), and a
    piece size that cuts it into 7 or more pieces."""
    from lmaudit.contamination.corpus import corpus_shards, read_batches

    folder, _ = dirty_corpus
    whole = tmp_path_factory.mktemp("one-file") / "whole.jsonl"
    with open(whole, "w", encoding="utf-8") as out:
        for shard in corpus_shards([folder]):
            for batch in read_batches(shard):
                out.writelines(json.dumps({"text": text}) + "\n" for text in batch.texts)
    return whole, whole.stat().st_size // 7


def test_one_large_file_is_shared_out_in_pieces_with_the_same_flags(substring_index, one_file_corpus):
    from lmaudit.contamination.corpus import corpus_shards, read_batches, split_shards

    whole, piece_bytes = one_file_corpus
    pieces = split_shards(corpus_shards([whole]), piece_bytes)
    assert len(pieces) >= 7 and pieces[0].start == 0 and pieces[-1].end == whole.stat().st_size
    assert all(a.end == b.start for a, b in zip(pieces, pieces[1:]))
    lines = [line for piece in pieces for batch in read_batches(piece) for line in batch.lines]
    assert lines == list(range(1, len(lines) + 1))  # every line once, numbered as in the file

    single = scan_index(substring_index, [whole], workers=1, progress=False)
    shared = scan_index(substring_index, [whole], workers=2, progress=False, piece_bytes=piece_bytes)
    assert _as_json(shared) == _as_json(single)
    assert sum(f.contaminated is True for f in single.flags) >= 60
    assert shared.stats.files == 1 and shared.stats.documents == single.stats.documents
    evidence = [e for f in single.flags for e in f.evidence]
    assert any(e.line > lines[-1] // 2 for e in evidence)  # found in later pieces, numbered as in the file
