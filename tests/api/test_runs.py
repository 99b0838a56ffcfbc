"""Whole runs through the runner and the CLI: faults, kills, dead endpoints, and the API key."""

import json
import os
import signal
import threading
import time
from collections import Counter

from lmaudit.models import load_model
from lmaudit.runner import evaluate
from lmaudit.tasks import get_task
from lmaudit.testing.background import BackgroundServer
from lmaudit.testing.faultproxy import KINDS, FaultProxy
from lmaudit.testing.stubserver import StubServer

from api_helpers import cli, cli_popen, generation_file, records


def generation_task(tmp_path, n):
    return get_task("generate", path=str(generation_file(tmp_path / "items.jsonl", n)), max_tokens=6)


def by_sample(run_dir):
    rows = records(run_dir)
    ids = [r["sample_id"] for r in rows]
    assert len(ids) == len(set(ids)), f"duplicated samples: {[k for k, c in Counter(ids).items() if c > 1][:5]}"
    return {r["sample_id"]: r for r in rows}


def test_2000_generations_through_10_percent_faults_equal_a_fault_free_run(tmp_path):
    task = generation_task(tmp_path, 2000)
    server = StubServer()
    with BackgroundServer(server.app) as upstream:
        proxy = FaultProxy(upstream.url, rate=0.10, seed=5, hold=1.5)
        with BackgroundServer(proxy.app) as faulty:
            model = load_model(f"openai:stub@{faulty.url}/v1", timeout=1.0, retry_base_delay=0.05,
                               max_concurrency=64)
            evaluate(model, [task], tmp_path / "faulty", shared_cache=False, progress=False)
            model.close()
        clean = load_model(f"openai:stub@{upstream.url}/v1")
        evaluate(clean, [task], tmp_path / "clean", shared_cache=False, progress=False)
    faulty_records, clean_records = by_sample(tmp_path / "faulty"), by_sample(tmp_path / "clean")
    assert len(faulty_records) == len(clean_records) == 2000
    for sample_id, record in clean_records.items():
        assert faulty_records[sample_id]["responses"] == record["responses"]
        assert faulty_records[sample_id]["scores"] == record["scores"]
    assert all(proxy.counts[kind] > 0 for kind in KINDS)
    assert 0.05 < sum(proxy.counts[k] for k in KINDS) / sum(proxy.counts.values()) < 0.15
    faulty_results = json.loads((tmp_path / "faulty" / "results.json").read_text())
    clean_results = json.loads((tmp_path / "clean" / "results.json").read_text())
    assert faulty_results["tasks"] == clean_results["tasks"]


def test_a_killed_run_resumes_without_resending_answered_requests(tmp_path):
    items = generation_file(tmp_path / "items.jsonl", 400)
    server = StubServer(stall_after=150)  # answers 150, then holds everything: a known point to kill at
    with BackgroundServer(server.app) as running:
        args = ["eval", "--model", f"openai:stub@{running.url}/v1", "--tasks", "generate",
                "--task-arg", f"path={items}", "--task-arg", "max_tokens=6", "--output-dir", str(tmp_path / "run"),
                "--private-cache", "--quiet", "--max-concurrency", "32"]
        process = cli_popen(*args, log=tmp_path / "first.log")
        deadline = time.monotonic() + 120
        while server.total_answered() < 150 or server.in_flight == 0:
            assert process.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the run never reached the stall point"
            time.sleep(0.05)
        time.sleep(1.0)  # the answers are on their way into the cache
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        answered_before = set(server.answered)
        received_before = Counter(server.received)
        running.call(server.release())
        done = cli(*args)
        assert done.returncode == 0, done.stderr[-3000:]
    sent_again = {key for key in server.received if server.received[key] > received_before[key]}
    assert len(answered_before) == 150
    assert not sent_again & answered_before
    assert len(by_sample(tmp_path / "run")) == 400
    assert sum(server.received.values()) - sum(received_before.values()) == 400 - 150


def test_two_endpoints_one_killed_mid_run_nothing_lost(tmp_path):
    task = generation_task(tmp_path, 600)
    first, second = StubServer(latency=0.01), StubServer(latency=0.01)
    a, b = BackgroundServer(first.app).start(), BackgroundServer(second.app).start()
    try:
        killer = threading.Thread(target=lambda: (_wait(lambda: first.total_answered() >= 100), a.stop()))
        killer.start()
        model = load_model(f"openai:stub@{a.url}/v1,{b.url}/v1", retry_base_delay=0.05)
        evaluate(model, [task], tmp_path / "run", shared_cache=False, progress=False)
        killer.join()
    finally:
        a.stop()
        b.stop()
    assert len(by_sample(tmp_path / "run")) == 600
    assert first.total_answered() >= 100 and second.total_answered() >= 300
    assert len(set(first.answered) | set(second.answered)) == 600


def test_the_api_key_never_reaches_the_run_directory_or_the_logs(tmp_path):
    key = "sk-lmaudit-test-" + os.urandom(8).hex()
    server = StubServer(api_key=key)
    items = generation_file(tmp_path / "items.jsonl", 30)
    with BackgroundServer(server.app) as running:
        args = ["eval", "--model", f"openai:stub@{running.url}/v1", "--tasks", "generate",
                "--task-arg", f"path={items}", "--private-cache", "--quiet"]
        good = cli(*args, "--output-dir", str(tmp_path / "run"), env={"LMAUDIT_API_KEY": key})
        bad = cli(*args, "--output-dir", str(tmp_path / "refused"), env={"LMAUDIT_API_KEY": key[:-4] + "0000"})
    assert good.returncode == 0, good.stderr[-3000:]
    assert server.seen_authorization.count(f"Bearer {key}") >= 30  # the key was used...
    assert bad.returncode != 0 and "LMAUDIT_API_KEY" in bad.stderr
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "samples.jsonl" for p in files) and any(p.suffix == ".sqlite" for p in files)
    for path in files:  # ...and appears nowhere: not in the manifest, the samples, the cache or the logs
        assert key.encode() not in path.read_bytes(), path
        assert key[:-4].encode() not in path.read_bytes(), path
    for output in (good.stdout, good.stderr, bad.stdout, bad.stderr):
        assert key[:-4] not in output


def _wait(condition, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.01)


def test_a_key_in_the_base_url_fails_at_once_and_is_never_printed_or_stored(tmp_path):
    """Issue 14 item 8: `http://user:KEY@host/v1` was retried as 'malformed' for a minute, printed, and stored."""
    secret = "sk-in-url-" + os.urandom(6).hex()
    server = StubServer()
    items = generation_file(tmp_path / "items.jsonl", 5)
    with BackgroundServer(server.app) as running:
        host = running.url.removeprefix("http://")
        began = time.monotonic()
        done = cli("eval", "--model", f"openai:stub@http://user:{secret}@{host}/v1", "--tasks", "generate",
                   "--task-arg", f"path={items}", "--output-dir", str(tmp_path / "run"), "--private-cache",
                   "--quiet")
        seconds = time.monotonic() - began
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "carries a credential" in done.stderr and "LMAUDIT_API_KEY" in done.stderr
    assert seconds < 60 and sum(server.received.values()) == 0  # refused before any request (60 s: interpreter start)
    assert secret not in done.stdout + done.stderr
    for path in (p for p in tmp_path.rglob("*") if p.is_file()):
        assert secret.encode() not in path.read_bytes(), path


def test_the_manifest_stores_no_url_credential_of_any_argument(tmp_path):
    secret = "S3CRET" + os.urandom(4).hex()
    server = StubServer()
    with BackgroundServer(server.app) as running:
        model = load_model(f"openai:stub@{running.url}/v1")
        evaluate(model, [generation_task(tmp_path, 3)], tmp_path / "run", shared_cache=False, progress=False,
                 model_spec=f"openai:stub@{running.url}/v1",
                 command=["lmaudit", "eval", "--task-arg", f"mirror=https://me:{secret}@data.example/x.jsonl"],
                 options={"source": f"https://data.example/x.jsonl?token={secret}&split=test"})
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert secret not in json.dumps(manifest)
    assert manifest["command"][-1] == "mirror=https://me:***@data.example/x.jsonl"
    assert manifest["options"]["source"] == "https://data.example/x.jsonl?token=***&split=test"
    assert manifest["model"]["spec"] == f"openai:stub@{running.url}/v1"  # nothing to redact: left as given
