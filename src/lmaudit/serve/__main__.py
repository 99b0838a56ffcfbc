"""`python -m lmaudit.serve ...` is `lmaudit serve ...` (the same command and options; see `--help`)."""

from lmaudit.cli.serve import app

if __name__ == "__main__":
    app(prog_name="python -m lmaudit.serve")
