"""The front door: an HTTP collector that answers only once its events are in the stream.

`intake` and `segment` are pure (bodies in, contract records out); `delivery` batches records
across requests into PutRecords calls; `app` is the ASGI edge; `kinesis` the aiobotocore edge.
"""
