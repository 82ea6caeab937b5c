"""The kernel every part of the project shares: the event contract and its strict JSON, page
keys, times, errors, logging, AWS clients and DynamoDB values, retries, metrics, paths.

It imports nothing else of ours (an import-linter contract holds it), so any wing, the
stores and the shell can build on it.
"""
