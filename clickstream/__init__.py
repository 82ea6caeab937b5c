"""clickstream: real-time clickstream analytics on Amazon Kinesis.

This package's top-level modules are the kernel every part shares (the event contract,
errors, logging, AWS clients, paths) and import nothing else of ours. Above everything sit
its sub-packages: the `clickstream` command (`cli`), the local AWS stack (`local`) and the
operator tools (`tools`).
"""

__version__ = "0.1.0"
