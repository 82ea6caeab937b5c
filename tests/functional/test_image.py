"""The worker image's Dockerfile: hadolint-clean, and built by the same commands as
scripts/bootstrap.sh (which every CI run executes), since no Docker engine runs here."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from clickstream.kernel.paths import PROJECT_ROOT

DOCKERFILE = (PROJECT_ROOT / "Dockerfile").read_text()
BOOTSTRAP = (PROJECT_ROOT / "scripts" / "bootstrap.sh").read_text()


def logical_lines(text: str) -> list[str]:
    """Lines with backslash continuations joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [
        line.strip()
        for line in joined.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


def command_words(text: str, program: str) -> list[str]:
    """The words of the first command line that runs `program` (a Dockerfile RUN or not)."""
    for line in logical_lines(text):
        if not line.removeprefix("RUN ").startswith(f"{program} "):
            continue
        words = shlex.split(line.removeprefix("RUN "))
        if words and words[0] == program:
            return [word for word in words if not word.startswith(">")]
    raise AssertionError(f"no {program} command found")


def test_the_dockerfile_is_hadolint_clean() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    result = subprocess.run(
        [hadolint, "--no-color", str(PROJECT_ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_the_jars_are_resolved_by_bootstraps_maven_command() -> None:
    # The same flags and goals; only where .tools is differs (the checkout, the image's /app).
    image = [w.replace("/app/.tools/", "<tools>/") for w in command_words(DOCKERFILE, "mvn")]
    checkout = [
        w.replace("$PWD/$TOOLS/", "<tools>/")
        for w in command_words(BOOTSTRAP.replace('"', ""), "mvn")
    ]
    assert image == checkout


def test_python_dependencies_come_from_the_same_lock_and_uv() -> None:
    uv_pin = re.search(r"^UV_VERSION=(\S+)$", BOOTSTRAP, re.MULTILINE)
    assert uv_pin is not None
    assert f"uv=={uv_pin.group(1)}" in DOCKERFILE
    syncs = [line for line in logical_lines(DOCKERFILE) if "uv sync" in line]
    assert syncs
    assert all("--locked" in line for line in syncs)
    assert "sync --locked" in BOOTSTRAP
    # amazon_kclpy is built against the jars Maven resolved, offline, in both.
    assert "KCL_MVN_REPO_SEARCH_URL=file:///app/.tools/m2/" in DOCKERFILE
    assert 'KCL_MVN_REPO_SEARCH_URL="file://$PWD/$TOOLS/m2/"' in BOOTSTRAP


def test_the_runtime_is_pinned_unprivileged_and_runs_consume() -> None:
    images = re.findall(r"^(?:FROM|ARG PYTHON_IMAGE=)\s*(\S+)", DOCKERFILE, re.MULTILINE)
    images += re.findall(r"COPY --from=(\S+:\S+)", DOCKERFILE)
    assert images
    for image in images:
        if image.startswith("$"):
            continue
        assert re.search(r":\d+\.\d+", image), f"{image} is not pinned to a version"
    python = re.search(r"python:(\d+\.\d+)", DOCKERFILE)
    requires = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"][
        "requires-python"
    ]
    assert python is not None
    assert f">={python.group(1)}" in requires or python.group(1) in requires
    assert re.search(r"^USER 10001", DOCKERFILE, re.MULTILINE)
    assert 'ENTRYPOINT ["clickstream", "consume"]' in DOCKERFILE
    assert 'CMD ["clickstream", "health"]' in DOCKERFILE
    assert "CLICKSTREAM_KCL_JARS_DIR=/opt/kcl/jars" in DOCKERFILE


def test_every_package_the_wheel_needs_is_copied_into_the_image() -> None:
    packages = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["hatch"][
        "build"
    ]["targets"]["wheel"]["packages"]
    copied = {
        line.split()[1]
        for line in (PROJECT_ROOT / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY ") and "--from" not in line
    }
    assert set(packages) <= copied
