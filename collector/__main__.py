"""`python -m collector`: the collector with settings from the environment only (what
`clickstream local up --collector` starts; `clickstream collect` is the same with options)."""

from clickstream.kernel.logging import configure_logging
from collector.server import serve
from collector.settings import CollectorSettings

if __name__ == "__main__":
    settings = CollectorSettings()
    configure_logging(settings.log_level)
    serve(settings)
