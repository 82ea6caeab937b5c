"""clickstream: real-time clickstream analytics on Amazon Kinesis.

Three layers live here. `kernel` is what every part shares (the event contract, strict JSON,
errors, logging, AWS clients, retries, paths) and imports nothing else of ours. `stores` owns
the stored shapes (the archive's layout, the suppression list, ...) on top of the kernel.
The shell sits above every wing: the `clickstream` command (`cli`), the local AWS stack
(`local`) and the operator tools (`tools`). The import rules are import-linter contracts in
pyproject.toml, run by `make check`.
"""

__version__ = "0.1.0"
