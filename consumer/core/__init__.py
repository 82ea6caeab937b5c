"""The consumer's pure core: aggregation, anomaly rules, batching, item shapes, positions.

No I/O here (no boto3, no amazon_kclpy): every function takes what it needs, a clock included.
"""
