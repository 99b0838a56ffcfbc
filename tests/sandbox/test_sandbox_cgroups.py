"""Where sandbox cgroups are made, what is written into them, and that they are gone afterwards."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lmaudit.sandbox import Limits, Sandbox, cgroups


def _own_memory_group() -> Path | None:
    """This process's v1 memory group, if the machine mounts that hierarchy (as this project's machines do)."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            candidate = Path("/sys/fs/cgroup/memory") / path.lstrip("/")
            return candidate if candidate.is_dir() else None
    return None


def test_a_writable_memory_hierarchy_is_found():
    own = _own_memory_group()
    if os.geteuid() != 0 or own is None or not os.access(own, os.W_OK):
        pytest.skip("no writable cgroup v1 memory hierarchy here (the sandbox falls back, see test_info)")
    support = cgroups.detect()
    assert support.version == 1 and support.memory_parent == own, support


def test_groups_are_made_joined_and_removed():
    support = cgroups.detect()
    if support.version is None:
        pytest.skip(f"no cgroups here: {support.reason}")
    before = {p.name for p in support.memory_parent.iterdir() if p.name.startswith("lmaudit-")}
    sandbox = Sandbox(Limits(wall_seconds=10, total_memory_bytes=200 << 20), workers=2)
    # Inside, the program sees its own group's cap (the v1 file, or v2's memory.max).
    program = ("import pathlib\nline = [l for l in open('/proc/self/cgroup').read().splitlines()"
               " if 'memory' in l.split(':')[1] or l.startswith('0::')][0]\nprint(line, file=__import__('sys').stderr)\n"
               "assert 'lmaudit-' in line, line\n")
    results = sandbox.run_many([program] * 4)
    assert all(r.passed for r in results), results[0].stderr
    cgroups.remove_leftovers()
    after = {p.name for p in support.memory_parent.iterdir() if p.name.startswith("lmaudit-")}
    assert after <= before, f"groups left behind: {after - before}"


def test_v2_groups_under_a_delegated_parent(tmp_path, monkeypatch):
    """The v2 writer against a plain directory laid out like a delegated cgroup2 subtree (no kernel here:
    this machine mounts v1 controllers, so the v2 controllers cannot be tried for real)."""
    parent = tmp_path / "delegated"
    parent.mkdir()
    (parent / "cgroup.subtree_control").write_text("cpu memory pids\n")
    monkeypatch.setenv("LMAUDIT_SANDBOX_CGROUP", str(parent))
    mounts = [("/", str(tmp_path), "cgroup2", {"rw"})]
    support = cgroups._v2(mounts, {"": "/elsewhere"})
    assert isinstance(support, cgroups.CgroupSupport)
    assert (support.version, support.memory_parent, support.pids_parent) == (2, parent, parent)
    _kernel_files_on_mkdir(monkeypatch, parent)
    group = cgroups.SandboxCgroup(support, 300 << 20, 34)
    directory = group.directories[0]
    assert (directory / "memory.max").read_text() == str(300 << 20)
    assert (directory / "pids.max").read_text() == "34"
    assert (directory / "memory.swap.max").read_text() == "0"
    (directory / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    assert group.oom_kills() == 1
    group.close_fds()
    for entry in directory.iterdir():  # a real group's files vanish with it; here they are plain files
        entry.unlink()
    group.remove()
    assert not directory.exists()


def test_v2_without_delegation_says_why(tmp_path, monkeypatch):
    parent = tmp_path / "plain"
    parent.mkdir()
    (parent / "cgroup.subtree_control").write_text("cpu\n")
    monkeypatch.setenv("LMAUDIT_SANDBOX_CGROUP", str(parent))
    outcome = cgroups._v2([("/", str(tmp_path), "cgroup2", {"rw"})], {"": "/"})
    assert isinstance(outcome, str) and "does not delegate the memory controller" in outcome
    assert cgroups._v2([], {}) == "no cgroup2 mount"


def _kernel_files_on_mkdir(monkeypatch, parent: Path) -> None:
    """Make mkdir under `parent` do what the kernel's does for a cgroup: create its interface files."""
    real_mkdir = Path.mkdir

    def mkdir(self, *args, **kwargs):
        real_mkdir(self, *args, **kwargs)
        if self.parent == parent:
            for name in ("memory.swap.max", "cgroup.procs"):
                (self / name).write_text("")

    monkeypatch.setattr(Path, "mkdir", mkdir)
