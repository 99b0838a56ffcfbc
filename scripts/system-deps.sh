#!/usr/bin/env bash
# System packages the tests use: bubblewrap (the code-eval sandbox). Needs root and apt; otherwise it says
# what to install and the sandbox falls back to weaker isolation (and its strict tests fail loudly).
set -uo pipefail
if command -v bwrap >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap
else
  echo "warning: bubblewrap is missing; install it (Debian/Ubuntu: apt-get install bubblewrap)" >&2
fi
