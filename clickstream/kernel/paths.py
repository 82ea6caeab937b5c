"""Where the project's own files live, for a checkout installed in development mode."""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
"""The checkout: `infra/`, `.tools/` (what `scripts/bootstrap.sh` installs) and the packages."""

DEFAULT_TEMPLATE = PROJECT_ROOT / "infra" / "cloudformation.yaml"
TOOLS_DIR = PROJECT_ROOT / ".tools"
