#!/usr/bin/env bash
# Installs what the browser tests drive: Debian's chromium and its chromedriver (the same
# version, from the same package source), where they are missing. Idempotent.
set -euo pipefail
say() { printf '[browser] %s\n' "$*" >&2; }
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
command -v apt-get >/dev/null 2>&1 || {
  say "error: chromium and chromedriver are missing and there is no apt-get; install them"
  exit 1
}
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { say "error: installing chromium needs root or sudo"; exit 1; }
  SUDO="sudo"
fi
say "installing chromium and chromium-driver (apt-get)"
$SUDO apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
  chromium chromium-driver >&2
say "ready: $(chromium --version)"
