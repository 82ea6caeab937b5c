"""The KCL runtime the bootstrap installs: pinned jars, amazon_kclpy, a daemon that loads."""

from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import amazon_kclpy

from clickstream.kernel.paths import PROJECT_ROOT
from consumer.kcl_runtime import KCL_JARS_DIR, daemon_command

POM = PROJECT_ROOT / "infra" / "kcl" / "pom.xml"
NS = {"m": "http://maven.apache.org/POM/4.0.0"}


def pinned_jars() -> set[str]:
    """artifact-version.jar of every dependency of infra/kcl/pom.xml, properties expanded."""
    root = ET.parse(POM).getroot()
    properties = {
        element.tag.split("}")[1]: element.text or ""
        for element in root.iterfind("m:properties/*", NS)
    }

    def expand(text: str) -> str:
        return re.sub(r"\$\{([^}]+)\}", lambda m: properties[m.group(1)], text)

    jars = set()
    for dependency in root.iterfind("m:dependencies/m:dependency", NS):
        artifact = dependency.findtext("m:artifactId", namespaces=NS)
        version = dependency.findtext("m:version", namespaces=NS)
        jars.add(expand(f"{artifact}-{version}.jar"))
    return jars


def test_the_classpath_is_exactly_the_pinned_jar_set() -> None:
    installed = {jar.name for jar in KCL_JARS_DIR.glob("*.jar")}
    assert installed == pinned_jars()
    assert "amazon-kinesis-client-multilang-3.1.3.jar" in installed


def test_amazon_kclpy_was_installed_with_the_same_jars() -> None:
    # Its installer fetched them from the Maven-layout repository that mvn filled.
    bundled = {jar.name for jar in (Path(amazon_kclpy.__file__).parent / "jars").glob("*.jar")}
    assert bundled == pinned_jars()


def test_the_daemon_starts_and_reads_its_arguments(tmp_path: Path) -> None:
    # GIVEN the daemon's command line for a properties file that does not exist
    java = shutil.which("java")
    assert java, "java must be installed"
    command = daemon_command(java, tmp_path / "missing.properties")
    # WHEN it runs
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    # THEN the JVM found the daemon's class on the classpath and got as far as the file
    assert "ClassNotFoundException" not in result.stderr
    assert re.search(r"Unable to find property file .*missing\.properties", result.stderr)
