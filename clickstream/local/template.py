"""Reading `infra/cloudformation.yaml` back after a deploy, to see what the emulator skipped.

moto's CloudFormation creates every resource of the template but drops some of their
properties (TTL, bucket policies, public access blocks, lifecycle rules, stream
encryption). `resolve` evaluates the few intrinsic functions the template uses, against the
deployed stack's parameters and physical ids, so the local stack can apply those
properties itself from the template's own text rather than from a second copy of them.
Pure: no I/O.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from clickstream.kernel.errors import LocalStackError

_SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")


def load_template(path: Path) -> dict[str, Any]:
    """Parse a CloudFormation template (YAML short-form tags included) into plain data."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LocalStackError(f"cannot read template {path}: {exc.strerror}") from None
    # cfn-lint takes ~2 s to import (sympy among its dependencies): only what parses or
    # lints a template pays it, not every command that imports the local stack.
    from cfnlint.decode import decode_str

    template, problems = decode_str(text)
    if problems or not isinstance(template, Mapping):
        detail = problems[0].message if problems else "not a mapping"
        raise LocalStackError(f"template {path} does not parse: {detail}")
    plain: dict[str, Any] = _plain(template)
    return plain


def lint_errors(path: Path, region: str) -> list[str]:
    """cfn-lint's errors (not its warnings) for the template, one line each."""
    from cfnlint.api import ManualArgs, lint

    matches = lint(path.read_text(encoding="utf-8"), config=ManualArgs(regions=[region]))
    return [
        f"{m.rule.id} line {m.linenumber}: {m.message}"
        for m in matches
        if m.rule.severity == "error"
    ]


def _plain(value: Any) -> Any:
    """cfn-lint's node classes carry line marks; turn them into dicts, lists and scalars."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


@dataclass(frozen=True)
class StackContext:
    """What intrinsic functions resolve against: one deployed stack."""

    stack_name: str
    region: str
    account_id: str
    parameters: Mapping[str, str]
    physical_ids: Mapping[str, str]
    resource_types: Mapping[str, str] = field(default_factory=dict)

    def pseudo(self, name: str) -> str | None:
        return {
            "AWS::StackName": self.stack_name,
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }.get(name)

    def ref(self, name: str) -> str:
        for source in (self.pseudo(name), self.parameters.get(name), self.physical_ids.get(name)):
            if source is not None:
                return source
        raise LocalStackError(f"template reference {name!r} names no parameter or resource")

    def get_att(self, resource: str, attribute: str) -> str:
        physical_id = self.ref(resource)
        resource_type = self.resource_types.get(resource, "")
        if attribute == "Arn" and resource_type == "AWS::S3::Bucket":
            return f"arn:aws:s3:::{physical_id}"
        if attribute == "Arn" and resource_type == "AWS::Kinesis::Stream":
            return f"arn:aws:kinesis:{self.region}:{self.account_id}:stream/{physical_id}"
        if attribute == "Arn" and resource_type == "AWS::DynamoDB::Table":
            return f"arn:aws:dynamodb:{self.region}:{self.account_id}:table/{physical_id}"
        raise LocalStackError(f"cannot resolve Fn::GetAtt {resource}.{attribute} locally")


def evaluate_conditions(template: Mapping[str, Any], context: StackContext) -> dict[str, bool]:
    """The template's Conditions, for the `Fn::Equals`/`Not`/`And`/`Or` forms it uses."""
    conditions: dict[str, bool] = {}
    declared = template.get("Conditions", {})

    def truth(expression: Any) -> bool:
        if isinstance(expression, Mapping) and len(expression) == 1:
            ((function, argument),) = expression.items()
            if function == "Fn::Equals":
                left, right = (resolve(part, context, conditions) for part in argument)
                return str(left) == str(right)
            if function == "Fn::Not":
                return not truth(argument[0])
            if function == "Fn::And":
                return all(truth(part) for part in argument)
            if function == "Fn::Or":
                return any(truth(part) for part in argument)
            if function == "Condition":
                return conditions[argument] if argument in conditions else truth(declared[argument])
        raise LocalStackError(f"unsupported condition expression {expression!r}")

    for name, expression in declared.items():
        conditions[name] = truth(expression)
    return conditions


class _NoValue:
    """`Ref: AWS::NoValue`: the property or list item it stands for is left out."""


NO_VALUE: Final = _NoValue()


def resolve(value: Any, context: StackContext, conditions: Mapping[str, bool]) -> Any:
    """Evaluate Ref, Fn::Sub, Fn::GetAtt, Fn::If, Fn::Join and Fn::Base64 inside `value`; a
    property or list item that resolves to `AWS::NoValue` is left out, as CloudFormation
    does."""
    if isinstance(value, list):
        items = [resolve(item, context, conditions) for item in value]
        return [item for item in items if item is not NO_VALUE]
    if not isinstance(value, Mapping):
        return value
    if len(value) == 1:
        ((key, argument),) = value.items()
        if key == "Ref" and argument == "AWS::NoValue":
            return NO_VALUE
        if key == "Ref":
            return context.ref(argument)
        if key == "Fn::GetAtt":
            resource, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
            return context.get_att(resource, attribute)
        if key == "Fn::Sub":
            return _substitute(argument, context, conditions)
        if key == "Fn::If":
            condition, when_true, when_false = argument
            chosen = when_true if conditions[condition] else when_false
            return resolve(chosen, context, conditions)
        if key == "Fn::Join":
            separator, parts = argument
            return separator.join(str(resolve(part, context, conditions)) for part in parts)
        if key == "Fn::Base64":
            text = str(resolve(argument, context, conditions))
            return base64.b64encode(text.encode()).decode()
    resolved = {key: resolve(item, context, conditions) for key, item in value.items()}
    return {key: item for key, item in resolved.items() if item is not NO_VALUE}


def _substitute(argument: Any, context: StackContext, conditions: Mapping[str, bool]) -> str:
    if isinstance(argument, list):
        text, variables = argument
        local_values = {
            name: resolve(item, context, conditions) for name, item in variables.items()
        }
    else:
        text, local_values = argument, {}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in local_values:
            return str(local_values[name])
        if "." in name:
            resource, attribute = name.split(".", 1)
            return context.get_att(resource, attribute)
        return context.ref(name)

    # `${!name}` is Fn::Sub's escape for a literal `${name}` (Athena's projection template).
    return _SUB_VARIABLE.sub(replace, str(text)).replace("${!", "${")


def resources_of_type(template: Mapping[str, Any], resource_type: str) -> dict[str, Any]:
    """Logical id -> Properties of every resource of one type."""
    return {
        logical_id: resource.get("Properties", {})
        for logical_id, resource in template.get("Resources", {}).items()
        if resource.get("Type") == resource_type
    }
