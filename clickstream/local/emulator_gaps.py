"""What moto's CloudFormation skips of the template, applied by the project from the
template's own text: properties it drops (TTL, PITR, bucket settings, stream encryption and
retention) and resource types it does not create (Glue, alarms). See docs/local-stack.md."""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable
from typing import Any, Final

from botocore.exceptions import ClientError

from clickstream.kernel import aws
from clickstream.local.settings import LocalStackSettings
from clickstream.local.template import (
    StackContext,
    evaluate_conditions,
    resolve,
    resources_of_type,
)


def apply_skipped_properties(
    template: dict[str, Any],
    context: StackContext,
    settings: LocalStackSettings,
    kinesis: Any,
) -> list[str]:
    """Apply, from the template's own text, the properties moto's CloudFormation dropped.

    Each is applied only when the deployed resource lacks it, so that an emulator that
    learns to honour a property makes the step a no-op; every one applied is reported.
    """
    conditions = evaluate_conditions(template, context)
    dynamodb = aws.local_client("dynamodb", settings.moto_endpoint, settings.region)
    s3 = aws.local_client("s3", settings.moto_endpoint, settings.region)
    applied: list[str] = []

    for logical_id, raw in resources_of_type(template, "AWS::DynamoDB::Table").items():
        props = resolve(raw, context, conditions)
        table = context.ref(logical_id)
        ttl = props.get("TimeToLiveSpecification")
        current = dynamodb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
        if ttl and ttl.get("Enabled") and current.get("TimeToLiveStatus") != "ENABLED":
            dynamodb.update_time_to_live(
                TableName=table,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
            )
            applied.append(f"{table}: TTL on {ttl['AttributeName']}")
        pitr = props.get("PointInTimeRecoverySpecification", {})
        if str(pitr.get("PointInTimeRecoveryEnabled")).lower() == "true":
            backups = dynamodb.describe_continuous_backups(TableName=table)
            status = backups["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
            if status["PointInTimeRecoveryStatus"] != "ENABLED":
                dynamodb.update_continuous_backups(
                    TableName=table,
                    PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
                )
                applied.append(f"{table}: point-in-time recovery")

    for logical_id, raw in resources_of_type(template, "AWS::S3::Bucket").items():
        props = resolve(raw, context, conditions)
        bucket = context.ref(logical_id)
        block = props.get("PublicAccessBlockConfiguration")
        if block and not _exists(functools.partial(s3.get_public_access_block, Bucket=bucket)):
            s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=block)
            applied.append(f"{bucket}: public access block")
        lifecycle = props.get("LifecycleConfiguration")
        if lifecycle and not _exists(
            functools.partial(s3.get_bucket_lifecycle_configuration, Bucket=bucket)
        ):
            s3.put_bucket_lifecycle_configuration(
                Bucket=bucket,
                LifecycleConfiguration={"Rules": [_lifecycle_rule(r) for r in lifecycle["Rules"]]},
            )
            applied.append(f"{bucket}: lifecycle rules")

    for raw in resources_of_type(template, "AWS::S3::BucketPolicy").values():
        props = resolve(raw, context, conditions)
        bucket = props["Bucket"]
        document = dict(props["PolicyDocument"])
        # moto enforces bucket policies, and its S3 is plain HTTP on loopback: a TLS-only
        # statement would refuse every request, so that statement stays in AWS only.
        statements = [
            s for s in document.get("Statement", []) if "aws:SecureTransport" not in json.dumps(s)
        ]
        if len(statements) < len(document.get("Statement", [])):
            applied.append(f"{bucket}: TLS-only policy statement left out (emulator is plain HTTP)")
        if statements and not _exists(functools.partial(s3.get_bucket_policy, Bucket=bucket)):
            s3.put_bucket_policy(
                Bucket=bucket, Policy=json.dumps({**document, "Statement": statements})
            )
            applied.append(f"{bucket}: bucket policy")

    for logical_id, raw in resources_of_type(template, "AWS::Kinesis::Stream").items():
        props = resolve(raw, context, conditions)
        stream = context.ref(logical_id)
        summary = kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]
        encryption = props.get("StreamEncryption")
        if encryption and summary.get("EncryptionType") != encryption["EncryptionType"]:
            kinesis.start_stream_encryption(
                StreamName=stream,
                EncryptionType=encryption["EncryptionType"],
                KeyId=encryption["KeyId"],
            )
            applied.append(f"{stream}: server-side encryption (kinesis-mock)")
        retention = int(props.get("RetentionPeriodHours", 24))
        if retention > summary.get("RetentionPeriodHours", 24):
            kinesis.increase_stream_retention_period(
                StreamName=stream, RetentionPeriodHours=retention
            )
            applied.append(f"{stream}: retention {retention} h (kinesis-mock)")
    return applied


SKIPPED_RESOURCE_TYPES: Final = (
    "AWS::Glue::Database",
    "AWS::Glue::Table",
    "AWS::CloudWatch::Alarm",
    "AWS::Athena::NamedQuery",
)
"""Resource types moto's CloudFormation does not create (it warns and goes on) and that
`local up` creates itself through moto's own APIs, from the template's text."""


def create_skipped_resources(
    template: dict[str, Any], context: StackContext, settings: LocalStackSettings
) -> list[str]:
    """Create the template's resources moto's CloudFormation skipped, in template order.

    Only the data plane is deployed locally (no ImageUri: the workers are local processes),
    so these are the Athena tables, views and named queries and the alarms; each one created
    is reported.
    """
    conditions = evaluate_conditions(template, context)
    glue = aws.local_client("glue", settings.moto_endpoint, settings.region)
    cloudwatch = aws.local_client("cloudwatch", settings.moto_endpoint, settings.region)
    athena = aws.local_client("athena", settings.moto_endpoint, settings.region)
    physical_ids = dict(context.physical_ids)
    created: list[str] = []
    for logical_id, resource in template.get("Resources", {}).items():
        kind = resource.get("Type")
        condition = resource.get("Condition")
        if kind not in SKIPPED_RESOURCE_TYPES or logical_id in physical_ids:
            continue
        if condition is not None and not conditions[condition]:
            continue
        here = dataclasses.replace(context, physical_ids=physical_ids)
        props = resolve(resource.get("Properties", {}), here, conditions)
        if kind == "AWS::Glue::Database":
            name = props["DatabaseInput"]["Name"]
            glue.create_database(DatabaseInput=props["DatabaseInput"])
        elif kind == "AWS::Glue::Table":
            name = props["TableInput"]["Name"]
            glue.create_table(DatabaseName=props["DatabaseName"], TableInput=props["TableInput"])
            name = f"{props['DatabaseName']}.{name}"
        elif kind == "AWS::Athena::NamedQuery":
            name = props["Name"]
            athena.create_named_query(
                Name=name,
                Database=props["Database"],
                Description=props["Description"],
                QueryString=props["QueryString"],
            )
        else:
            name = props["AlarmName"]
            numbers = ("Threshold", "EvaluationPeriods", "Period")
            alarm = {k: v for k, v in props.items() if k not in numbers}
            alarm["Dimensions"] = [
                {"Name": d["Name"], "Value": d["Value"]} for d in props.get("Dimensions", [])
            ]
            cloudwatch.put_metric_alarm(
                **alarm,
                Threshold=float(props["Threshold"]),
                EvaluationPeriods=int(props["EvaluationPeriods"]),
                Period=int(props["Period"]),
            )
        physical_ids[logical_id] = name
        created.append(f"{name}: {kind} created through moto's API (its CloudFormation skips it)")
    return created


def _exists(read: Callable[[], Any]) -> bool:
    try:
        read()
    except ClientError as exc:
        if exc.response["Error"]["Code"].startswith("NoSuch"):
            return False
        raise
    return True


def _lifecycle_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """CloudFormation's lifecycle rule shape, in the S3 API's shape."""
    api_rule: dict[str, Any] = {
        "ID": rule.get("Id", ""),
        "Status": rule["Status"],
        "Filter": {"Prefix": rule.get("Prefix", "")},
    }
    if "Transitions" in rule:
        api_rule["Transitions"] = [
            {"Days": int(t["TransitionInDays"]), "StorageClass": t["StorageClass"]}
            for t in rule["Transitions"]
        ]
    if "ExpirationInDays" in rule:
        api_rule["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
    if "AbortIncompleteMultipartUpload" in rule:
        days = int(rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])
        api_rule["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": days}
    return api_rule
