#!/usr/bin/env bash
# System packages the tests use: bubblewrap (the code-eval sandbox) and chromium (the report's browser tests).
# Needs root and apt; otherwise it says what to install and the sandbox falls back to weaker isolation (and its
# strict tests fail loudly).
set -uo pipefail
missing=()
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
# The report tests open reports in a real browser: Debian's Chromium and its WebDriver (driven by selenium).
{ command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; } || missing+=(chromium chromium-driver)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
else
  echo "warning: missing system packages: ${missing[*]}; install them (Debian/Ubuntu: apt-get install ${missing[*]})" >&2
fi
