"""llama.cpp's OpenAI-compatible server (llama-cpp-python's), with lmaudit's choice of CPU buffer types.

    python -m lmaudit.models.llamacpp_server --model file.gguf [the server's own options]

The same server as `python -m llama_cpp.server`, except that llama.cpp's extra buffer types are off where the
CPU advertises AMX (see llamacpp_cpu.py: its AMX kernels crash there); LMAUDIT_LLAMACPP_EXTRA_BUFFERS=1 or 0
decides instead.
"""

from __future__ import annotations

from lmaudit.models.llamacpp_cpu import extra_buffers, use_extra_buffers


def main() -> None:
    from llama_cpp.server.__main__ import main as serve

    with extra_buffers(use_extra_buffers()):  # for the whole life of the server: it loads its model on start
        serve()


if __name__ == "__main__":
    main()
