"""Whether llama.cpp may move weights into its "extra" CPU buffer types, for the in-process backend and the server.

llama.cpp repacks weights it can into extra buffer types at load: AMX tiles on Intel CPUs with AMX, interleaved
blocks on others. Its AMX kernels crash some AMX machines (a segfault in the first decode, llama.cpp#20824;
seen on this project's 2-core Xeon machines with the bundled Q4_1 file, in the in-process backend and in the
server alike), and a crash takes the whole evaluation down with it. So where the CPU advertises AMX they are
off unless asked for; elsewhere llama.cpp keeps its own default (on). Asked for means the model option
(`--model-arg extra_buffers=true`) or, failing that, LMAUDIT_LLAMACPP_EXTRA_BUFFERS=1 (or 0) in the environment.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
ENV = "LMAUDIT_LLAMACPP_EXTRA_BUFFERS"


def cpu_has_amx(cpuinfo: Path | None = None) -> bool:
    """Whether the CPU flags (Linux's /proc/cpuinfo) include AMX's int8 tiles, which llama.cpp's AMX kernels use."""
    try:
        text = (cpuinfo or CPUINFO).read_text(encoding="ascii", errors="replace")
    except OSError:  # not Linux: llama.cpp's AMX path needs Linux's permission call anyway
        return False
    return any(line.startswith("flags") and "amx_int8" in line.split() for line in text.splitlines())


def use_extra_buffers(asked: bool | None = None) -> bool:
    """The choice: `asked` when given, else the environment's, else off exactly where the CPU has AMX."""
    if asked is not None:
        return asked
    from_env = os.environ.get(ENV)
    if from_env in ("0", "1"):
        return from_env == "1"
    return not cpu_has_amx()


@contextmanager
def extra_buffers(enabled: bool) -> Iterator[None]:
    """Models loaded inside take llama.cpp's extra buffer types only when `enabled`.

    llama-cpp-python's Llama builds its model parameters from `llama_model_default_params()` and offers no
    argument for this field, so the default itself is wrapped while the model loads, then restored."""
    import llama_cpp.llama_cpp as api

    original = api.llama_model_default_params

    def chosen():  # noqa: ANN202 - a ctypes structure
        params = original()
        params.use_extra_bufts = enabled
        return params

    api.llama_model_default_params = chosen
    try:
        yield
    finally:
        api.llama_model_default_params = original
