"""`python -m clickstream.cli`: how the local workers and the tests start the command."""

from clickstream.cli import app

app()
