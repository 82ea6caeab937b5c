"""The site's goals, kept in the archive bucket (`config/goals.json`: `{"goals": [text, …]}`),
where the CLI and the dashboard both find them. Every change is a conditional put on the
file as it was read: two operators adding goals at once both keep theirs."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, Final

from botocore.exceptions import ClientError

from clickstream.kernel.aws import object_or_none
from clickstream.stores.archive_layout import GOALS_KEY
from insights.goals import Goal, GoalError, parse_goal
from insights.lake_store import LOST_RACE_CODES

ATTEMPTS: Final = 5
"""Changes tried again when another change came between the read and the put."""


class GoalsFile:
    def __init__(self, s3: Any, bucket: str) -> None:
        self._s3 = s3
        self._bucket = bucket

    def goals(self) -> list[Goal]:
        return self._read()[0]

    def add(self, texts: Sequence[str]) -> list[Goal]:
        """The goals with these added (once each, in the order given; parsed first: a goal
        that does not parse changes nothing)."""
        added = list(dict.fromkeys(parse_goal(text) for text in texts))
        return self._change(lambda goals: goals + [g for g in added if g not in goals])

    def remove(self, texts: Sequence[str]) -> list[Goal]:
        """The goals without these (as written, spaces around aside); one not there is an
        error naming the goals there are."""
        wanted = [text.strip() for text in texts]

        def without(goals: list[Goal]) -> list[Goal]:
            known = {goal.text for goal in goals}
            missing = [text for text in wanted if text not in known]
            if missing:
                listed = ", ".join(sorted(known)) or "none"
                raise GoalError(f"no goal {missing[0]!r} (the goals: {listed})")
            return [goal for goal in goals if goal.text not in wanted]

        return self._change(without)

    def _read(self) -> tuple[list[Goal], str | None]:
        answer = object_or_none(self._s3, self._bucket, GOALS_KEY)
        if answer is None:
            return [], None
        try:
            texts = json.loads(answer["Body"].read())["goals"]
            if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
                raise ValueError("goals is not a list of texts")
        except (ValueError, KeyError, TypeError) as exc:
            raise GoalError(
                f"s3://{self._bucket}/{GOALS_KEY} does not parse ({exc}): expected "
                '{"goals": ["/signup", "event:Signed Up"]}'
            ) from None
        return [parse_goal(text) for text in texts], answer["ETag"]

    def _change(self, change: Callable[[list[Goal]], list[Goal]]) -> list[Goal]:
        for _ in range(ATTEMPTS):
            goals, etag = self._read()
            changed = change(goals)
            condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
            body = json.dumps({"goals": [goal.text for goal in changed]}, indent=1)
            try:
                self._s3.put_object(
                    Bucket=self._bucket,
                    Key=GOALS_KEY,
                    Body=body.encode(),
                    ContentType="application/json",
                    **condition,
                )
            except ClientError as exc:
                status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
                code = exc.response.get("Error", {}).get("Code")
                if code in LOST_RACE_CODES or status in {"409", "412"}:
                    continue  # another change came first: read it and apply ours to it
                raise
            return changed
        raise GoalError("the goals kept changing while this change was saved: try again")
