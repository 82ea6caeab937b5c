"""Where the KCL MultiLangDaemon's jars are, and the java command line that starts it."""

from __future__ import annotations

from pathlib import Path

from clickstream.kernel.errors import ConfigurationError
from clickstream.kernel.paths import TOOLS_DIR

KCL_JARS_DIR = TOOLS_DIR / "kcl" / "jars"
MULTILANG_DAEMON_CLASS = "software.amazon.kinesis.multilang.MultiLangDaemon"


def classpath(jars_dir: Path = KCL_JARS_DIR) -> str:
    """The daemon's classpath: every jar bootstrap resolved from infra/kcl/pom.xml."""
    jars = sorted(jars_dir.glob("*.jar"))
    if not any(jar.name.startswith("amazon-kinesis-client-multilang-") for jar in jars):
        raise ConfigurationError(
            f"the KCL MultiLangDaemon jars are not in {jars_dir}; run scripts/bootstrap.sh"
        )
    return ":".join(str(jar) for jar in jars)


def daemon_command(
    java: str,
    properties_file: Path,
    jars_dir: Path = KCL_JARS_DIR,
    log_configuration: Path | None = None,
) -> list[str]:
    """`java -cp <jars>:<properties dir> MultiLangDaemon --properties-file <file>`.

    `log_configuration` is a logback.xml; the multilang jar ships its own, which a file on
    the classpath cannot override, so it is passed with the daemon's own option.
    """
    logging = ["--log-configuration", str(log_configuration)] if log_configuration else []
    return [
        java,
        "-cp",
        f"{classpath(jars_dir)}:{properties_file.parent}",
        MULTILANG_DAEMON_CLASS,
        "--properties-file",
        str(properties_file),
        *logging,
    ]
