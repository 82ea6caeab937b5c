"""The worker: KCL record processors that count, archive and alert, exactly once.

`consumer.core` is the pure part (aggregation, anomaly rules, batching, item shapes,
positions); the modules beside it are the edges: the amazon_kclpy adapter (`processor`), the
AWS sinks, and the worker process (`daemon`, `properties`, `settings`, `page_watch`).
`consumer.testing` ships in-memory sinks and a scripted daemon for tests and the bench.
"""
