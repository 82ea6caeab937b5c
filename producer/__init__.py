"""Ways synthetic events enter the stream: the seeded generator, malformed records, file
replay, the manifest (ground truth), and the PutRecords sender (with KPL aggregation)."""
