#!/usr/bin/env bash
# Installs everything the project needs into the checkout, idempotently:
#   .tools/uv       uv (pinned), in a small virtualenv of its own
#   .venv           the project and its pinned Python dependencies (uv.lock)
#   .tools/emulator kinesis-mock (npm kinesis-local, pinned by infra/local/package-lock.json)
#   .tools/sdk      the official JavaScript SDKs the tests send with (pinned by infra/sdk)
#   .tools/kcl/jars the KCL MultiLangDaemon and its jars (pinned by infra/kcl/pom.xml), and
#   .tools/m2       the same jars in Maven layout, where amazon_kclpy's installer finds them
# Each step is skipped when its inputs have not changed since it last ran.
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.8
TOOLS=.tools
PYTHON=${PYTHON:-python3}

say() { printf '[bootstrap] %s\n' "$*" >&2; }
need() { command -v "$1" >/dev/null 2>&1 || { say "error: '$1' is not installed; $2"; exit 1; }; }

need "$PYTHON" "Python 3.11 or later is required"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { say "error: $("$PYTHON" --version) is too old; Python 3.11 or later is required"; exit 1; }
need node "Node.js 18 or later runs the Kinesis emulator"
need npm "npm installs the Kinesis emulator"
need java "Java 17 or later runs the KCL MultiLangDaemon"
need mvn "Maven resolves the KCL MultiLangDaemon's jars"

# A stamp holds the hash of a step's inputs; the step runs again only when they change.
stamp_ok() { [ -f "$TOOLS/$1.stamp" ] && [ "$(cat "$TOOLS/$1.stamp")" = "$2" ]; }
stamp_set() { mkdir -p "$TOOLS"; printf '%s' "$2" >"$TOOLS/$1.stamp"; }
inputs_hash() { cat "$@" | sha256sum | cut -d' ' -f1; }

if ! stamp_ok uv "$UV_VERSION"; then
  say "installing uv $UV_VERSION"
  rm -rf "$TOOLS/uv"
  "$PYTHON" -m venv "$TOOLS/uv"
  "$TOOLS/uv/bin/pip" install --quiet --disable-pip-version-check "uv==$UV_VERSION"
  stamp_set uv "$UV_VERSION"
fi
UV="$TOOLS/uv/bin/uv"

kcl_hash=$(inputs_hash infra/kcl/pom.xml)
if ! stamp_ok kcl "$kcl_hash" || [ ! -d "$TOOLS/kcl/jars" ]; then
  say "resolving the KCL MultiLangDaemon jars (mvn dependency:copy-dependencies)"
  rm -rf "$TOOLS/kcl"
  mvn --batch-mode --quiet -f infra/kcl/pom.xml -Dmaven.repo.local="$PWD/$TOOLS/m2" \
    dependency:copy-dependencies -DexcludeTransitive=true -DoutputDirectory="$PWD/$TOOLS/kcl/jars" >&2
  stamp_set kcl "$kcl_hash"
fi
# amazon_kclpy's installer fetches every jar of its pom from this Maven-layout repository;
# pointing it at the one mvn just filled means it downloads nothing itself.
export KCL_MVN_REPO_SEARCH_URL="file://$PWD/$TOOLS/m2/"

python_hash=$(inputs_hash pyproject.toml uv.lock infra/kcl/pom.xml)
if ! stamp_ok python "$python_hash" || [ ! -x .venv/bin/python ]; then
  say "installing Python dependencies (uv sync --locked)"
  UV_PYTHON_DOWNLOADS=never "$UV" sync --locked --quiet --python "$PYTHON"
  stamp_set python "$python_hash"
fi

emulator_hash=$(inputs_hash infra/local/package.json infra/local/package-lock.json)
if ! stamp_ok emulator "$emulator_hash" || [ ! -f "$TOOLS/emulator/node_modules/kinesis-local/main.js" ]; then
  say "installing kinesis-mock (npm ci)"
  rm -rf "$TOOLS/emulator"
  mkdir -p "$TOOLS/emulator"
  cp infra/local/package.json infra/local/package-lock.json "$TOOLS/emulator/"
  npm ci --prefix "$TOOLS/emulator" --no-audit --no-fund --loglevel=error >&2
  stamp_set emulator "$emulator_hash"
fi
sdk_hash=$(inputs_hash infra/sdk/package.json infra/sdk/package-lock.json)
if ! stamp_ok sdk "$sdk_hash" || [ ! -d "$TOOLS/sdk/node_modules/@segment/analytics-next/dist/umd" ]; then
  say "installing the SDKs the tests send with (npm ci: @segment/analytics-next, analytics-node)"
  rm -rf "$TOOLS/sdk"
  mkdir -p "$TOOLS/sdk"
  cp infra/sdk/package.json infra/sdk/package-lock.json "$TOOLS/sdk/"
  npm ci --prefix "$TOOLS/sdk" --no-audit --no-fund --loglevel=error >&2
  stamp_set sdk "$sdk_hash"
fi
say "ready"
