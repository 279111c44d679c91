"""Small rule/test trees for the ``detector rules`` CLI tests, written into tmp dirs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "detections" / "sigmahq"
RECORDS = ROOT / "tests" / "fixtures" / "records"

STOP_LOGGING_ID = "0f6b3f0e-8f45-4f49-9f0a-6a1d1c3e2b01"
STOP_LOGGING = f"""\
title: CloudTrail Logging Stopped
id: {STOP_LOGGING_ID}
status: test
description: A trail stopped logging.
references:
    - https://docs.aws.amazon.com/awscloudtrail/latest/APIReference/API_StopLogging.html
author: detector tests
date: 2024-05-14
tags:
    - attack.defense-evasion
    - attack.t1562.008
logsource:
    product: aws
    service: cloudtrail
detection:
    selection:
        eventSource: cloudtrail.amazonaws.com
        eventName:
            - StopLogging
            - DeleteTrail
    filter_automation:
        userIdentity.userName: terraform
    condition: selection and not filter_automation
falsepositives:
    - Trail maintenance
level: high
"""

BURST_ID = "5a3c1f2e-4b6d-4e8f-9a0b-1c2d3e4f5a6b"
BURST = f"""\
title: Secret Read
name: tests_secret_read
id: 7b1d2c3e-0000-4000-8000-00000000aa01
status: test
description: One GetSecretValue call.
author: detector tests
date: 2024-05-14
logsource:
    product: aws
    service: cloudtrail
detection:
    selection:
        eventSource: secretsmanager.amazonaws.com
        eventName: GetSecretValue
    condition: selection
level: informational
---
title: Secret Read Burst
id: {BURST_ID}
status: test
description: Many secret reads by one principal.
author: detector tests
date: 2024-05-14
tags:
    - attack.credential-access
    - attack.t1555.006
correlation:
    type: event_count
    rules:
        - tests_secret_read
    group-by:
        - userIdentity.arn
    timespan: 5m
    condition:
        gte: 3
    generate: false
falsepositives:
    - Deployments
level: medium
"""


def record(family: str, name: str) -> dict[str, Any]:
    """A native fixture record."""
    data: dict[str, Any] = json.loads((RECORDS / family / f"{name}.json").read_text())
    return data


def write(path: Path, text: str) -> Path:
    """Write ``text`` to ``path``, creating directories."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def stop_logging_tree(root: Path, *, expect_match: int = 1) -> tuple[Path, Path]:
    """``root/detections/{rules,tests}/aws/stop_logging.yml``: a rule and its test cases."""
    rules = root / "detections" / "rules"
    tests = root / "detections" / "tests"
    write(rules / "aws" / "stop_logging.yml", STOP_LOGGING)
    hit = record("cloudtrail", "cloudtrail_stoplogging")
    miss = dict(hit, eventName="StartLogging")
    cases = {
        "cases": [
            {
                "name": "trail stopped",
                "source": "cloudtrail",
                "events": [hit],
                "expect": expect_match,
            },
            {"name": "trail started", "source": "cloudtrail", "events": [miss], "expect": 0},
        ]
    }
    write(tests / "aws" / "stop_logging.yml", json.dumps(cases))
    return rules, tests


PIPELINE = """\
name: cloudtrail to ECS (test)
priority: 20
transformations:
    - id: cloudtrail_ecs_fields
      type: field_name_mapping
      mapping:
          eventName: event.action
          eventSource: event.provider
          userIdentity.userName: user.name
          userIdentity.arn: user.id
      rule_conditions:
          - type: logsource
            product: aws
            service: cloudtrail
"""
