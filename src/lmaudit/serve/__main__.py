"""python -m lmaudit.serve --model SPEC [--name NAME] [--host H] [--port P] [--chat-only] [--api-key-env VAR]"""

import argparse
import sys

from lmaudit.core.errors import LmauditError
from lmaudit.serve import serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lmaudit.serve", description=__doc__)
    parser.add_argument("--model", default="smollm2", help="an hf-backend model spec (default smollm2)")
    parser.add_argument("--name", help="the model id clients send (default: the spec)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port (printed)")
    parser.add_argument("--chat-only", action="store_true", help="serve /v1/chat/completions only")
    parser.add_argument("--api-key-env", help="require the key held in this environment variable")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    args = parser.parse_args(argv)
    try:
        serve(args.model, name=args.name, host=args.host, port=args.port, chat_only=args.chat_only,
              api_key_env=args.api_key_env, threads=args.threads)
    except LmauditError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
