"""Operator tools: the benchmark, the soak, the exactness check, anomaly measurement."""
