"""infra/cloudformation.yaml: lint-clean, and resolvable the way the local stack reads it."""

from __future__ import annotations

from cfnlint.api import ManualArgs, lint

from clickstream.kernel.paths import DEFAULT_TEMPLATE
from clickstream.local.template import (
    StackContext,
    evaluate_conditions,
    load_template,
    resolve,
    resources_of_type,
)


def test_template_is_cfn_lint_clean_warnings_included() -> None:
    matches = lint(DEFAULT_TEMPLATE.read_text(), config=ManualArgs(regions=["us-east-1"]))
    assert [f"{m.rule.id}: {m.message}" for m in matches] == []


def test_resolver_evaluates_the_templates_intrinsics() -> None:
    template = load_template(DEFAULT_TEMPLATE)
    context = StackContext(
        stack_name="demo",
        region="eu-west-1",
        account_id="111122223333",
        # What a deployed stack reports: every parameter, defaults included.
        parameters={
            **{name: str(spec.get("Default", "")) for name, spec in template["Parameters"].items()},
            "PointInTimeRecovery": "true",
            "ShardCount": "2",
            "StreamRetentionHours": "48",
            "ArchiveTransitionDays": "30",
            "ArchiveGlacierDays": "180",
            "ImageUri": "",
            "AlarmEmail": "ops@example.com",
        },
        physical_ids={"ArchiveBucket": "demo-archive"},
        resource_types={"ArchiveBucket": "AWS::S3::Bucket"},
    )
    conditions = evaluate_conditions(template, context)
    assert conditions == {
        "EnablePointInTimeRecovery": True,
        "DeployWorkers": False,
        "DeployCollector": False,
        "CollectorHttps": False,
        "CollectorAccessLogs": False,
        "SubscribeAlarmEmail": True,
        "DeployCompaction": False,
        "ExpireLake": False,
    }
    tables = {
        k: resolve(v, context, conditions)
        for k, v in resources_of_type(template, "AWS::DynamoDB::Table").items()
    }
    assert tables["SessionsTable"]["TableName"] == "demo-sessions"
    assert tables["SessionsTable"]["PointInTimeRecoverySpecification"] == {
        "PointInTimeRecoveryEnabled": True
    }
    assert all(
        t["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
        for t in tables.values()
    )
    policy = resolve(
        template["Resources"]["ArchiveBucketPolicy"]["Properties"], context, conditions
    )
    assert policy["PolicyDocument"]["Statement"][0]["Resource"] == [
        "arn:aws:s3:::demo-archive",
        "arn:aws:s3:::demo-archive/*",
    ]
    # AWS::NoValue leaves the property out, as CloudFormation does: the lake is kept.
    bucket = resolve(template["Resources"]["ArchiveBucket"]["Properties"], context, conditions)
    rules = {rule["Id"]: rule for rule in bucket["LifecycleConfiguration"]["Rules"]}
    assert rules["raw-archive-expires"]["ExpirationInDays"] == "35"
    assert "ExpirationInDays" not in rules["lake-to-colder-storage"]
    assert rules["lake-manifests-expire"]["Status"] == "Disabled"
