"""The template's IAM policies: least privilege, read from infra/cloudformation.yaml itself."""

from __future__ import annotations

import json
from typing import Any

import pytest

from clickstream.kernel.paths import DEFAULT_TEMPLATE
from clickstream.local.template import load_template
from clickstream.stores.suppression import SuppressionSettings
from consumer.metrics import METRIC_NAMES

TEMPLATE = load_template(DEFAULT_TEMPLATE)

NO_RESOURCE_LEVEL_PERMISSIONS = {"cloudwatch:PutMetricData"}
"""Actions AWS cannot scope by resource: `*` is the only resource they take, so each must
be narrowed by a condition instead."""

AWS_MANAGED_POLICIES = {"service-role/AmazonECSTaskExecutionRolePolicy"}


def statements() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for logical_id, resource in TEMPLATE["Resources"].items():
        if resource["Type"] not in ("AWS::IAM::Role", "AWS::IAM::Policy"):
            continue
        for policy in resource["Properties"].get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                found.append((logical_id, statement))
    return found


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_the_template_has_inline_policies_to_check() -> None:
    assert len(statements()) >= 5


@pytest.mark.parametrize(("role", "statement"), statements(), ids=lambda v: str(v)[:40])
def test_no_statement_allows_a_wildcard_action(role: str, statement: dict[str, Any]) -> None:
    for action in as_list(statement["Action"]):
        assert "*" not in action, f"{role}: wildcard action {action}"
    assert "NotAction" not in statement
    assert statement["Effect"] == "Allow"


@pytest.mark.parametrize(("role", "statement"), statements(), ids=lambda v: str(v)[:40])
def test_a_wildcard_resource_only_where_aws_allows_nothing_else(
    role: str, statement: dict[str, Any]
) -> None:
    resources = [json.dumps(r) for r in as_list(statement["Resource"])]
    if '"*"' in resources:
        assert set(as_list(statement["Action"])) <= NO_RESOURCE_LEVEL_PERMISSIONS, role
        assert statement.get("Condition"), f"{role}: unscoped `*` resource"
    for resource in resources:
        if resource == '"*"':
            continue
        # Object prefixes (`/raw/*`) are the only other wildcard: every name is known.
        assert resource.count("*") == 0 or resource.endswith('/*"}'), (role, resource)


def s3_grants(role: str) -> dict[str, set[str]]:
    """action -> the bucket paths a role's statements grant it on."""
    found: dict[str, set[str]] = {}
    for owner, statement in statements():
        if owner != role:
            continue
        for action in as_list(statement["Action"]):
            if action.startswith("s3:"):
                paths = {r.get("Fn::Sub", "bucket") for r in as_list(statement["Resource"])}
                found.setdefault(action, set()).update(paths)
    return found


SALT = "${ArchiveBucket.Arn}/forget-receipts/_salt"


def test_workers_write_under_the_archive_prefixes_only_and_delete_nothing() -> None:
    assert s3_grants("WorkerTaskRole") == {
        "s3:PutObject": {
            "${ArchiveBucket.Arn}/raw/*",
            "${ArchiveBucket.Arn}/dead-letter/*",
            "${ArchiveBucket.Arn}/verdicts/*",
            "${ArchiveBucket.Arn}/lake/late/*",
        },
        "s3:GetObject": {SALT},
    }


def test_the_suppression_list_is_read_by_the_collector_and_workers_written_by_forget() -> None:
    table = {"Fn::GetAtt": ["SuppressionTable", "Arn"]}
    on_table = {
        role: set(as_list(statement["Action"]))
        for role, statement in statements()
        if table in as_list(statement["Resource"])
    }
    assert on_table == {
        "WorkerTaskRole": {"dynamodb:Scan"},
        "CollectorTaskRole": {"dynamodb:Scan"},
        "ForgetTaskRole": {"dynamodb:Scan", "dynamodb:PutItem", "dynamodb:DeleteItem"},
    }
    spec = TEMPLATE["Resources"]["SuppressionTable"]["Properties"]
    assert spec["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert spec["KeySchema"] == [{"AttributeName": "id_hash", "KeyType": "HASH"}]


def test_forget_may_rewrite_the_stores_that_hold_a_person_and_nothing_else() -> None:
    held = {
        f"${{ArchiveBucket.Arn}}/{prefix}/*"
        for prefix in ("raw", "events", "lake", "dead-letter", "verdicts", "forget-receipts")
    }
    assert s3_grants("ForgetTaskRole") == {
        "s3:ListBucket": {"bucket"},
        "s3:ListBucketVersions": {"bucket"},
        "s3:GetBucketVersioning": {"bucket"},
        **{
            action: held
            for action in (
                "s3:GetObject",
                "s3:PutObject",
                "s3:DeleteObject",
                "s3:DeleteObjectVersion",
                "s3:AbortMultipartUpload",
            )
        },
    }
    dynamodb = {
        str(statement["Resource"]["Fn::GetAtt"][0]): set(as_list(statement["Action"]))
        for role, statement in statements()
        if role == "ForgetTaskRole" and str(as_list(statement["Action"])[0]).startswith("dynamodb")
    }
    assert dynamodb == {
        "SessionsTable": {"dynamodb:GetItem", "dynamodb:DeleteItem"},
        "AlertsTable": {"dynamodb:Scan", "dynamodb:DeleteItem"},
        "SuppressionTable": {"dynamodb:Scan", "dynamodb:PutItem", "dynamodb:DeleteItem"},
    }
    task = TEMPLATE["Resources"]["ForgetTaskDefinition"]["Properties"]
    assert task["TaskRoleArn"] == {"Fn::GetAtt": ["ForgetTaskRole", "Arn"]}
    (container,) = task["ContainerDefinitions"]
    from consumer.settings import unknown_settings
    from insights.settings import LakeSettings

    names = {variable["Name"] for variable in container["Environment"]}
    # What `clickstream forget` reads by name (the stack's outputs), then its settings.
    by_name = {
        "CLICKSTREAM_ARCHIVE_BUCKET",
        "CLICKSTREAM_SESSIONS_TABLE",
        "CLICKSTREAM_ALERTS_TABLE",
    }
    settings = {name: "x" for name in names - by_name}
    assert unknown_settings(settings, [SuppressionSettings, LakeSettings]) == []
    assert {"CLICKSTREAM_SUPPRESSION_TABLE", "CLICKSTREAM_SESSIONS_TABLE"} <= set(names)


def test_compaction_reads_raw_and_writes_only_the_lake() -> None:
    lake = {"${ArchiveBucket.Arn}/events/*", "${ArchiveBucket.Arn}/lake/*"}
    assert s3_grants("CompactionTaskRole") == {
        "s3:ListBucket": {"bucket"},
        "s3:GetObject": {"${ArchiveBucket.Arn}/raw/*"} | lake,
        "s3:PutObject": lake,
        "s3:DeleteObject": lake,
        "s3:AbortMultipartUpload": lake,
    }
    writers = {
        role
        for role, statement in statements()
        if {"s3:PutObject", "s3:DeleteObject"} & set(as_list(statement["Action"]))
    }
    assert writers == {"WorkerTaskRole", "CompactionTaskRole", "ForgetTaskRole"}


def test_the_schedule_may_only_run_the_compaction_task_and_pass_its_roles() -> None:
    role = TEMPLATE["Resources"]["CompactionScheduleRole"]["Properties"]
    run, pass_role = role["Policies"][0]["PolicyDocument"]["Statement"]
    assert run["Action"] == "ecs:RunTask"
    assert run["Resource"] == {"Ref": "CompactionTaskDefinition"}
    assert pass_role["Action"] == "iam:PassRole"
    assert pass_role["Resource"] == [
        {"Fn::GetAtt": ["CompactionTaskRole", "Arn"]},
        {"Fn::GetAtt": ["WorkerExecutionRole", "Arn"]},
    ]
    task = TEMPLATE["Resources"]["CompactionTaskDefinition"]["Properties"]
    (container,) = task["ContainerDefinitions"]
    assert container["Command"][-3:] == ["compact", "--since", "48h"]
    from insights.settings import LakeSettings

    lake_settings = {f"CLICKSTREAM_LAKE_{name.upper()}" for name in LakeSettings.model_fields}
    names = {variable["Name"] for variable in container["Environment"]}
    assert {n for n in names if n.startswith("CLICKSTREAM_LAKE_")} <= lake_settings


def test_metrics_only_in_the_projects_and_kcls_namespaces() -> None:
    found = {
        role: statement["Condition"]["StringEquals"]["cloudwatch:namespace"]
        for role, statement in statements()
        if "cloudwatch:PutMetricData" in as_list(statement["Action"])
    }
    assert found == {
        "WorkerTaskRole": [{"Ref": "MetricsNamespace"}, {"Fn::Sub": "${EventStream}-consumer"}],
        "CollectorTaskRole": {"Ref": "MetricsNamespace"},
    }


def test_managed_policies_are_only_the_execution_role_s() -> None:
    for logical_id, resource in TEMPLATE["Resources"].items():
        for arn in resource.get("Properties", {}).get("ManagedPolicyArns", []):
            assert logical_id in {"WorkerExecutionRole", "CollectorExecutionRole"}
            assert arn["Fn::Sub"].split(":policy/")[1] in AWS_MANAGED_POLICIES


def test_alarms_and_dashboard_use_the_metric_names_the_workers_emit() -> None:
    ours = {"Ref": "MetricsNamespace"}
    for resource in TEMPLATE["Resources"].values():
        if (
            resource["Type"] == "AWS::CloudWatch::Alarm"
            and resource["Properties"]["Namespace"] == ours
        ):
            assert resource["Properties"]["MetricName"] in METRIC_NAMES
    body = TEMPLATE["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"][0]
    used = {
        metric[1]
        for widget in json.loads(body)["widgets"]
        for metric in widget["properties"]["metrics"]
        if metric[0] == "${Namespace}"
    }
    from collector.metrics import METRIC_NAMES as COLLECTOR_METRIC_NAMES

    assert used == set(METRIC_NAMES) | set(COLLECTOR_METRIC_NAMES)


def test_every_task_environment_variable_is_a_setting_the_worker_reads() -> None:
    from consumer.settings import ConsumerSettings, unknown_settings

    container = TEMPLATE["Resources"]["WorkerTaskDefinition"]["Properties"]["ContainerDefinitions"][
        0
    ]
    names = {variable["Name"]: "x" for variable in container["Environment"]}
    assert unknown_settings(names, [ConsumerSettings, SuppressionSettings]) == []
    required = {
        f"CLICKSTREAM_{name.upper()}"
        for name, field in ConsumerSettings.model_fields.items()
        if field.is_required()
    }
    assert required <= set(names)


def test_the_service_runs_on_fargate_in_the_given_network_with_the_task_role() -> None:
    resources = TEMPLATE["Resources"]
    service = resources["WorkerService"]["Properties"]
    assert service["LaunchType"] == "FARGATE"
    network = service["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert network["Subnets"] == {"Ref": "Subnets"}
    assert network["SecurityGroups"] == [{"Ref": "WorkerSecurityGroup"}]
    assert network["AssignPublicIp"] == {"Ref": "AssignPublicIp"}
    task = resources["WorkerTaskDefinition"]["Properties"]
    assert task["RequiresCompatibilities"] == ["FARGATE"]
    assert task["NetworkMode"] == "awsvpc"
    assert task["TaskRoleArn"] == {"Fn::GetAtt": ["WorkerTaskRole", "Arn"]}
    assert task["ExecutionRoleArn"] == {"Fn::GetAtt": ["WorkerExecutionRole", "Arn"]}
    # Every worker resource exists only with an image, the collector's only with write keys
    # too; the data plane always.
    for name, resource in resources.items():
        assert (resource.get("Condition") == "DeployWorkers") == name.startswith("Worker"), name
        collector_conditions = {"DeployCollector", "CollectorHttps"}
        in_collector = resource.get("Condition") in collector_conditions
        assert in_collector == name.startswith("Collector"), name
    group = resources["WorkerSecurityGroup"]["Properties"]
    assert "SecurityGroupIngress" not in group
    assert [rule["FromPort"] for rule in group["SecurityGroupEgress"]] == [443]


def test_the_collector_task_role_may_only_put_records_and_read_the_streams_status() -> None:
    role = TEMPLATE["Resources"]["CollectorTaskRole"]["Properties"]
    (policy,) = role["Policies"]
    write, suppression, salt, metrics = policy["PolicyDocument"]["Statement"]
    assert suppression["Action"] == "dynamodb:Scan"
    assert salt == {
        "Sid": "ReadTheSuppressionSalt",
        "Effect": "Allow",
        "Action": "s3:GetObject",
        "Resource": {"Fn::Sub": "${ArchiveBucket.Arn}/forget-receipts/_salt"},
    }
    assert write["Action"] == ["kinesis:PutRecords", "kinesis:DescribeStreamSummary"]
    assert write["Resource"] == {"Fn::GetAtt": ["EventStream", "Arn"]}
    assert metrics["Action"] == "cloudwatch:PutMetricData"


def test_the_collector_task_reads_its_keys_from_the_secret_and_knows_every_variable() -> None:
    from collector.settings import CollectorSettings
    from consumer.settings import unknown_settings

    task = TEMPLATE["Resources"]["CollectorTaskDefinition"]["Properties"]
    (container,) = task["ContainerDefinitions"]
    assert (container["EntryPoint"], container["Command"]) == (["clickstream"], ["collect"])
    names = {variable["Name"]: "x" for variable in container["Environment"]}
    assert unknown_settings(names, [CollectorSettings, SuppressionSettings]) == []
    assert "CLICKSTREAM_COLLECTOR_WRITE_KEYS" not in names  # never in the template's text
    assert container["Secrets"] == [
        {
            "Name": "CLICKSTREAM_COLLECTOR_WRITE_KEYS",
            "ValueFrom": {"Ref": "CollectorWriteKeysSecretArn"},
        }
    ]
    reader = TEMPLATE["Resources"]["CollectorExecutionRole"]["Properties"]["Policies"][0]
    (statement,) = reader["PolicyDocument"]["Statement"]
    assert statement["Resource"] == {"Ref": "CollectorWriteKeysSecretArn"}
    assert container["HealthCheck"]["Command"] == ["CMD", "clickstream", "health", "--collector"]


def test_the_collector_sits_behind_the_load_balancer_checked_on_ready() -> None:
    resources = TEMPLATE["Resources"]
    group = resources["CollectorTargetGroup"]["Properties"]
    assert (group["HealthCheckPath"], group["TargetType"], group["Port"]) == ("/ready", "ip", 8080)
    listener = resources["CollectorListener"]["Properties"]
    assert listener["Port"] == {"Fn::If": ["CollectorHttps", 443, 80]}
    assert listener["Protocol"] == {"Fn::If": ["CollectorHttps", "HTTPS", "HTTP"]}
    service = resources["CollectorService"]["Properties"]
    (attachment,) = service["LoadBalancers"]
    assert attachment["TargetGroupArn"] == {"Ref": "CollectorTargetGroup"}
    tasks = resources["CollectorSecurityGroup"]["Properties"]["SecurityGroupIngress"]
    assert [rule["SourceSecurityGroupId"] for rule in tasks] == [
        {"Ref": "CollectorLoadBalancerSecurityGroup"}
    ]
    scaling = resources["CollectorRequestScaling"]["Properties"]
    metric = scaling["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"]
    assert metric["PredefinedMetricType"] == "ALBRequestCountPerTarget"


def test_the_collector_believes_x_forwarded_for_from_the_load_balancers_ranges_only() -> None:
    """Before: `*`, so the leftmost entry, which the client writes, was the client's address."""
    (container,) = TEMPLATE["Resources"]["CollectorTaskDefinition"]["Properties"][
        "ContainerDefinitions"
    ]
    environment = {entry["Name"]: entry["Value"] for entry in container["Environment"]}
    trusted = environment["CLICKSTREAM_COLLECTOR_TRUSTED_PROXIES"]
    assert trusted == {"Fn::Join": [",", {"Ref": "LoadBalancerSubnetCidrs"}]}
    default = TEMPLATE["Parameters"]["LoadBalancerSubnetCidrs"]["Default"]
    assert "*" not in default
    assert default.split(",") == ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]
