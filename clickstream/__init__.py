"""clickstream: real-time clickstream analytics on Amazon Kinesis.

This package holds what the producer and the consumer share (the event contract, logging,
errors), the `clickstream` command line and the local AWS stack.
"""

__version__ = "0.1.0"
