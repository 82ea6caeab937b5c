"""How far the workers are: KCL's checkpoints and lease owners against what was written."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from clickstream.kernel.dynamo import scan_table


def leases(client: Any, lease_table: str) -> dict[str, dict[str, Any]]:
    """shard id -> KCL's lease item (checkpoint, owner, ...); empty while KCL has not created
    its lease table yet."""
    try:
        rows = scan_table(client, lease_table)
    except client.exceptions.ResourceNotFoundException:
        return {}
    return {str(item["leaseKey"]): item for item in rows if "leaseKey" in item}


def lease_checkpoints(client: Any, lease_table: str) -> dict[str, str]:
    """shard id -> KCL's checkpoint (a sequence number, or TRIM_HORIZON / SHARD_END ...);
    empty while KCL has not created its lease table yet."""
    return {
        shard: str(item.get("checkpoint", ""))
        for shard, item in leases(client, lease_table).items()
    }


def lease_owners(client: Any, lease_table: str) -> dict[str, str]:
    """shard id -> the worker holding its lease now (absent while unassigned)."""
    return {
        str(item["leaseKey"]): str(item["leaseOwner"])
        for item in scan_table(client, lease_table)
        if "leaseKey" in item and item.get("leaseOwner")
    }


def last_sequences(per_run: Iterable[Mapping[str, str] | None]) -> dict[str, str]:
    """The last sequence number written to each shard over several runs (their manifests'
    `last_sequence_per_shard`): where a consumer that read everything has checkpointed."""
    last: dict[str, str] = {}
    for run in per_run:
        for shard, sequence in (run or {}).items():
            last[shard] = max(last.get(shard, "0"), sequence, key=int)
    return last


def caught_up(checkpoints: Mapping[str, str], last_sequences: Mapping[str, str]) -> bool:
    """Whether every shard's checkpoint has reached the last sequence number written to it."""
    for shard_id, last in last_sequences.items():
        checkpoint = checkpoints.get(shard_id, "")
        if checkpoint == "SHARD_END":
            continue
        if not checkpoint.isdigit() or int(checkpoint) < int(last):
            return False
    return True
