#!/usr/bin/env bash
# Installs everything the project needs into the checkout, idempotently:
#   .tools/uv       uv (pinned), in a small virtualenv of its own
#   .venv           the project and its pinned Python dependencies (uv.lock)
#   .tools/emulator kinesis-mock (npm kinesis-local, pinned by infra/local/package-lock.json)
#   .tools/web      the dashboard's world map (pinned by infra/web; served by the dashboard itself)
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

# `npm ci` of a pinned package.json and lock (in infra/SOURCE) into .tools/NAME, when they
# changed or the file that proves the install (below node_modules) is missing.
npm_tools() {
  local name=$1 source=$2 proof=$3 what=$4 hash
  hash=$(inputs_hash "infra/$source/package.json" "infra/$source/package-lock.json")
  if ! stamp_ok "$name" "$hash" || [ ! -e "$TOOLS/$name/node_modules/$proof" ]; then
    say "installing $what (npm ci)"
    rm -rf "${TOOLS:?}/$name"
    mkdir -p "$TOOLS/$name"
    cp "infra/$source/package.json" "infra/$source/package-lock.json" "$TOOLS/$name/"
    npm ci --prefix "$TOOLS/$name" --no-audit --no-fund --loglevel=error >&2
    stamp_set "$name" "$hash"
  fi
}
npm_tools emulator local kinesis-local/main.js "kinesis-mock"
npm_tools web web @svg-maps/world/index.js "the dashboard's world map (@svg-maps/world)"
npm_tools sdk sdk @segment/analytics-next/dist/umd/index.js \
  "the SDKs the tests send with (@segment/analytics-next, analytics-node)"
say "ready"
