"""The process pool and Ray give exactly the flags of a single-process scan on a multi-file corpus."""

import json

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


@pytest.mark.slow
def test_ray_equals_local(substring_index, ngram_index, dirty_corpus):
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
    finally:
        ray.shutdown()
