# The two commands of the README, and the checks they are made of.
.PHONY: demo test check lint typecheck unit bootstrap browser bench bench-collector bench-lake soak measure fuzz

bootstrap:
	./scripts/bootstrap.sh

# The main job: local stack, producer (and, from the consumer issue on, the workers), summary.
demo: bootstrap
	.venv/bin/clickstream demo

lint: bootstrap
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/cfn-lint infra/cloudformation.yaml
	.venv/bin/lint-imports --no-cache

typecheck: bootstrap
	.venv/bin/mypy

# Debian's chromium and chromedriver, for the tests that drive a real browser.
browser:
	./scripts/browser.sh

# Everything: lint, types, unit, functional and end-to-end tests (emulators on loopback).
test: lint typecheck browser
	.venv/bin/pytest

# The inner loop of an edit: lint, types, unit and functional tests (no KCL daemon), a few
# minutes. `make test` stays the whole suite, which CI runs.
check: lint typecheck browser
	.venv/bin/pytest -m "not e2e" tests/unit tests/functional

# Nightly-style, not in CI: the strict JSON properties (collector and workers on JSON-ish
# bodies) with 20,000 examples each where the unit suite runs 300; about 10 minutes.
fuzz: bootstrap
	CLICKSTREAM_FUZZ_EXAMPLES=20000 .venv/bin/pytest -p no:cacheprovider tests/unit/test_strict_json.py

# Figures, not pass/fail: the record processor's throughput and writes per 1,000 events.
bench: bootstrap
	.venv/bin/clickstream bench

# Figures, not pass/fail: the collector's events/s and latency against a loopback Kinesis stand-in.
bench-collector: bootstrap
	.venv/bin/clickstream bench collector

# Figures, not pass/fail: an hour of raw JSONL against the lake's Parquet (bytes read, query
# time), compaction's events/s and peak memory at 1x and 2x the events (docs/lake.md).
bench-lake: bootstrap
	.venv/bin/clickstream bench lake

# Figures, not pass/fail: precision and recall of the anomaly rules on seeded scenarios.
measure: bootstrap
	.venv/bin/clickstream anomalies measure

# Not in CI: 30 minutes of steady load with worker restarts; memory, lag, exactness.
soak: bootstrap
	.venv/bin/clickstream soak
