"""The whole template, workers included, deployed through CloudFormation onto the local
stack's moto; and what `local up` adds that moto's CloudFormation skips (Athena table,
alarms)."""

from __future__ import annotations

import ast
import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from clickstream.kernel import aws
from clickstream.kernel.paths import DEFAULT_TEMPLATE
from clickstream.local.stack import LocalStackState
from clickstream.stores.archive_layout import RAW_PREFIX, partition_path
from clickstream.stores.suppression import SuppressionSettings
from consumer.metrics import METRIC_NAMES
from consumer.settings import ConsumerSettings, unknown_settings

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/clickstream-worker:0.1.0"


def client(state: LocalStackState, service: str) -> Any:
    return aws.local_client(service, state.moto_endpoint, state.region)


@pytest.fixture(scope="module")
def production(local_stack: LocalStackState) -> dict[str, str]:
    """A second stack from the same template, with workers: what `aws cloudformation
    deploy` would create in an account, in the default VPC's subnets."""
    ec2 = client(local_stack, "ec2")
    vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])
    cfn = client(local_stack, "cloudformation")
    secret = client(local_stack, "secretsmanager").create_secret(
        Name="prod/collector-write-keys", SecretString="key-one-123,key-two-456"
    )
    parameters = {
        "CollectorWriteKeysSecretArn": secret["ARN"],
        "LoadBalancerSubnets": ",".join(s["SubnetId"] for s in subnets["Subnets"][:2]),
        "CollectorAllowedOrigins": "https://www.example.com",
        "ImageUri": IMAGE,
        "VpcId": vpc["VpcId"],
        "Subnets": ",".join(s["SubnetId"] for s in subnets["Subnets"][:2]),
        "DesiredCount": "2",
        "MinCount": "1",
        "MaxCount": "4",
        "AlarmEmail": "ops@example.com",
        "LogRetentionDays": "14",
        "GlueDatabaseName": "clickstream_prod",
    }
    cfn.create_stack(
        StackName="prod",
        TemplateBody=DEFAULT_TEMPLATE.read_text(),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_IAM"],
    )
    deadline = time.monotonic() + 120
    while True:
        stack = cfn.describe_stacks(StackName="prod")["Stacks"][0]
        if not stack["StackStatus"].endswith("IN_PROGRESS") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
    return {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}


def test_the_worker_service_runs_the_image_with_the_stacks_settings(
    local_stack: LocalStackState, production: dict[str, str]
) -> None:
    ecs = client(local_stack, "ecs")
    (service,) = ecs.describe_services(
        cluster=production["WorkerCluster"], services=[production["WorkerService"]]
    )["services"]
    assert service["desiredCount"] == 2
    # moto's CloudFormation keeps a service's cluster, task definition and count, and a task
    # definition's family, containers and memory; Fargate, awsvpc, the subnets and the roles
    # are checked in the template itself (tests/unit/test_template_policies.py).
    task = ecs.describe_task_definition(taskDefinition=service["taskDefinition"])["taskDefinition"]
    assert task["memory"] == "2048"
    (container,) = task["containerDefinitions"]
    assert container["image"] == IMAGE
    assert container["healthCheck"]["command"] == ["CMD", "clickstream", "health"]
    assert container["logConfiguration"]["logDriver"] == "awslogs"
    environment = {e["name"]: e["value"] for e in container["environment"]}
    assert unknown_settings(environment, [ConsumerSettings, SuppressionSettings]) == []
    assert environment["CLICKSTREAM_STREAM_NAME"] == production["StreamName"]
    assert environment["CLICKSTREAM_ALERTS_TABLE"] == production["AlertsTableName"]
    assert environment["CLICKSTREAM_APPLICATION_NAME"] == f"{production['StreamName']}-consumer"


def test_the_task_role_names_every_resource_it_touches(
    local_stack: LocalStackState, production: dict[str, str]
) -> None:
    iam = client(local_stack, "iam")
    role = production["WorkerTaskRoleArn"].rsplit("/", 1)[1]
    (name,) = iam.list_role_policies(RoleName=role)["PolicyNames"]
    document = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
    if isinstance(document, str):
        # moto hands back what CloudFormation gave it: JSON, or a Python dict's repr.
        try:
            document = json.loads(document)
        except json.JSONDecodeError:
            document = ast.literal_eval(document)
    text = json.dumps(document)
    for resource in (
        production["StreamArn"],
        f"table/{production['SessionsTableName']}",
        f"table/{production['StreamName']}-consumer",
        f"{production['ArchiveBucketArn']}/raw/*",
    ):
        assert resource in text
    for statement in document["Statement"]:
        actions = (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
        assert not any("*" in action for action in actions)


def test_logs_alarms_topic_and_dashboard_exist(
    local_stack: LocalStackState, production: dict[str, str]
) -> None:
    logs = client(local_stack, "logs")
    (group,) = logs.describe_log_groups(logGroupNamePrefix=production["WorkerLogGroup"])[
        "logGroups"
    ]
    assert group["retentionInDays"] == 14
    sns = client(local_stack, "sns")
    assert sns.get_topic_attributes(TopicArn=production["AlarmTopicArn"])["Attributes"]
    cloudwatch = client(local_stack, "cloudwatch")
    body = cloudwatch.get_dashboard(DashboardName=production["DashboardName"])["DashboardBody"]
    widgets = json.loads(body)["widgets"]
    shown = {
        metric[1]
        for widget in widgets
        for metric in widget["properties"]["metrics"]
        if isinstance(metric[1], str)
    }
    assert set(METRIC_NAMES) <= shown
    assert production["AthenaTable"] == "clickstream_prod.raw_events"


def test_local_up_creates_the_athena_table_and_alarms_moto_skips(
    local_stack: LocalStackState,
) -> None:
    outputs = local_stack.outputs
    glue = client(local_stack, "glue")
    database, table_name = outputs["AthenaTable"].split(".")
    table = glue.get_table(DatabaseName=database, Name=table_name)["Table"]
    # The projected location of an hour is exactly where the processors archive that hour.
    template = table["Parameters"]["storage.location.template"]
    hour = datetime(2026, 11, 23, 9, tzinfo=UTC)
    projected = (
        template.replace("${year}", "2026")
        .replace("${month}", "11")
        .replace("${day}", "23")
        .replace("${hour}", "09")
    )
    bucket = outputs["ArchiveBucketName"]
    assert projected == f"s3://{bucket}/{partition_path(RAW_PREFIX, hour)}"
    assert [key["Name"] for key in table["PartitionKeys"]] == ["year", "month", "day", "hour"]
    cloudwatch = client(local_stack, "cloudwatch")
    alarms = cloudwatch.describe_alarms(AlarmNamePrefix=local_stack.stack_name)["MetricAlarms"]
    assert {a["MetricName"] for a in alarms} == {
        "GetRecords.IteratorAgeMilliseconds",
        "DeadLetters",
        "WorkerErrors",
    }
    assert all(a["AlarmActions"] == [outputs["AlarmTopicArn"]] for a in alarms)
    # AND the site owner's named queries, each the text the read side's module writes
    from insights.named_queries import named_queries

    athena = client(local_stack, "athena")
    ids = athena.list_named_queries()["NamedQueryIds"]
    stored = {
        found["Name"]: found
        for found in (athena.get_named_query(NamedQueryId=named)["NamedQuery"] for named in ids)
    }
    for query in named_queries():
        assert stored[query.name]["QueryString"] == query.sql
        assert stored[query.name]["Database"] == database
    # AND the table of page views the funnels' and paths' queries read, with their time
    views = glue.get_table(DatabaseName=database, Name="page_views")["Table"]
    assert views["TableType"] == "EXTERNAL_TABLE"
    assert [c["Name"] for c in views["StorageDescriptor"]["Columns"]] == [
        "session_id", "event_time", "event_id", "page",
    ]  # fmt: skip


def test_the_collector_is_deployed_behind_a_load_balancer_over_http_without_a_certificate(
    local_stack: LocalStackState, production: dict[str, str]
) -> None:
    assert production["CollectorProtocol"] == "HTTP only: no certificate given"
    elb = client(local_stack, "elbv2")
    (balancer,) = [
        b
        for b in elb.describe_load_balancers()["LoadBalancers"]
        if production["CollectorUrl"] == f"http://{b['DNSName']}"
    ]
    assert balancer["Scheme"] == "internet-facing"
    (listener,) = elb.describe_listeners(LoadBalancerArn=balancer["LoadBalancerArn"])["Listeners"]
    assert (listener["Port"], listener["Protocol"]) == (80, "HTTP")
    target_group_arn = listener["DefaultActions"][0]["TargetGroupArn"]
    (group,) = elb.describe_target_groups(TargetGroupArns=[target_group_arn])["TargetGroups"]
    assert (group["HealthCheckPath"], group["Port"], group["TargetType"]) == ("/ready", 8080, "ip")
    ecs = client(local_stack, "ecs")
    (service,) = ecs.describe_services(
        cluster=production["WorkerCluster"], services=[production["CollectorService"]]
    )["services"]
    assert service["desiredCount"] == 2
    task = ecs.describe_task_definition(taskDefinition=service["taskDefinition"])["taskDefinition"]
    (container,) = task["containerDefinitions"]
    assert container["image"] == IMAGE
    environment = {e["name"]: e["value"] for e in container["environment"]}
    assert environment["CLICKSTREAM_COLLECTOR_STREAM_NAME"] == production["StreamName"]
    assert environment["CLICKSTREAM_COLLECTOR_ALLOWED_ORIGINS"] == "https://www.example.com"


def test_the_compaction_task_is_scheduled_hourly_and_daily_with_its_own_role(
    local_stack: LocalStackState, production: dict[str, str]
) -> None:
    events = client(local_stack, "events")
    rules = {
        rule["ScheduleExpression"]: rule["Name"]
        for rule in events.list_rules()["Rules"]
        if rule["Name"].startswith("prod-")
    }
    assert set(rules) == {"cron(20 * * * ? *)", "cron(40 3 * * ? *)"}
    ecs = client(local_stack, "ecs")
    for expression, name in rules.items():
        (target,) = events.list_targets_by_rule(Rule=name)["Targets"]
        task_arn = target["EcsParameters"]["TaskDefinitionArn"]
        task = ecs.describe_task_definition(taskDefinition=task_arn)["taskDefinition"]
        assert task_arn.endswith(production["CompactionTaskDefinition"].rsplit("/", 1)[-1])
        (container,) = task["containerDefinitions"]
        assert container["image"] == IMAGE
        assert container["command"][-2:] == ["--since", "48h"]
        if expression.startswith("cron(40"):
            override = json.loads(target["Input"])["containerOverrides"][0]["command"]
            assert override[-2:] == ["--since", "32d"]
    assert production["AthenaLakeTable"] == "clickstream_prod.events"
