"""The one MITRE ATT&CK table of the project: tactics and the techniques the pack uses.

Read by the Kibana converter (``threat`` entries), ``detector rules coverage`` (table and
Navigator layer) and the rule-pack hygiene test (which tags a rule may carry). Sigma tags
name a tactic by its ATT&CK short name (``attack.credential-access``) and a technique by
its id (``attack.t1078.004``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

#: The ATT&CK release the table follows (v19 split Defense Evasion into Stealth, which
#: keeps TA0005, and Defense Impairment).
ATTACK_VERSION = "19"


@dataclass(frozen=True, slots=True)
class Tactic:
    """One ATT&CK enterprise tactic: its id (``TA0005``) and display name."""

    id: str
    name: str

    @property
    def url(self) -> str:
        """The tactic's page on the ATT&CK site."""
        return f"https://attack.mitre.org/tactics/{self.id}/"


#: Enterprise tactics by short name (the Sigma tag after ``attack.``), in matrix order.
TACTICS: dict[str, Tactic] = {
    "reconnaissance": Tactic("TA0043", "Reconnaissance"),
    "resource-development": Tactic("TA0042", "Resource Development"),
    "initial-access": Tactic("TA0001", "Initial Access"),
    "execution": Tactic("TA0002", "Execution"),
    "persistence": Tactic("TA0003", "Persistence"),
    "privilege-escalation": Tactic("TA0004", "Privilege Escalation"),
    "stealth": Tactic("TA0005", "Stealth"),
    "defense-impairment": Tactic("TA0112", "Defense Impairment"),
    "credential-access": Tactic("TA0006", "Credential Access"),
    "discovery": Tactic("TA0007", "Discovery"),
    "lateral-movement": Tactic("TA0008", "Lateral Movement"),
    "collection": Tactic("TA0009", "Collection"),
    "command-and-control": Tactic("TA0011", "Command and Control"),
    "exfiltration": Tactic("TA0010", "Exfiltration"),
    "impact": Tactic("TA0040", "Impact"),
}

#: Short names of earlier releases that rules written before v19 (SigmaHQ's) still use.
RENAMED_TACTICS = {"defense-evasion": "stealth"}

#: The techniques the rule pack may use (id -> name); add here when a rule needs a new one.
TECHNIQUES: dict[str, str] = {
    "T1021.007": "Remote Services: Cloud Services",
    "T1037": "Boot or Logon Initialization Scripts",
    "T1059.009": "Command and Scripting Interpreter: Cloud API",
    "T1078": "Valid Accounts",
    "T1078.004": "Valid Accounts: Cloud Accounts",
    "T1098": "Account Manipulation",
    "T1098.001": "Account Manipulation: Additional Cloud Credentials",
    "T1098.003": "Account Manipulation: Additional Cloud Roles",
    "T1098.004": "Account Manipulation: SSH Authorized Keys",
    "T1136.003": "Create Account: Cloud Account",
    "T1190": "Exploit Public-Facing Application",
    "T1195.002": "Supply Chain Compromise: Compromise Software Supply Chain",
    "T1199": "Trusted Relationship",
    "T1204.003": "User Execution: Malicious Image",
    "T1213.003": "Data from Information Repositories: Code Repositories",
    "T1485": "Data Destruction",
    "T1496.001": "Resource Hijacking: Compute Hijacking",
    "T1496.004": "Resource Hijacking: Cloud Service Hijacking",
    "T1525": "Implant Internal Image",
    "T1528": "Steal Application Access Token",
    "T1530": "Data from Cloud Storage",
    "T1537": "Transfer Data to Cloud Account",
    "T1550.001": "Use Alternate Authentication Material: Application Access Token",
    "T1552": "Unsecured Credentials",
    "T1552.001": "Unsecured Credentials: Credentials In Files",
    "T1555.006": "Credentials from Password Stores: Cloud Secrets Management Stores",
    "T1556": "Modify Authentication Process",
    "T1565": "Data Manipulation",
    "T1567": "Exfiltration Over Web Service",
    "T1580": "Cloud Infrastructure Discovery",
    "T1619": "Cloud Storage Object Discovery",
    "T1648": "Serverless Execution",
    "T1651": "Cloud Administration Command",
    "T1685": "Disable or Modify Tools",
    "T1685.002": "Disable or Modify Tools: Disable or Modify Cloud Log",
}

_TECHNIQUE = re.compile(r"^t\d{4}(\.\d{3})?$")


def tactic_name(tag: str) -> str | None:
    """The current short name of the tactic an ``attack.*`` tag name denotes, else None.

    ``tag`` is the part after ``attack.`` in any case, with ``_`` or ``-``; renamed
    tactics resolve to their current name (``defense-evasion`` -> ``stealth``).
    """
    name = tag.lower().replace("_", "-")
    name = RENAMED_TACTICS.get(name, name)
    return name if name in TACTICS else None


def technique_id(tag: str) -> str | None:
    """``T1078.004`` for the tag name ``t1078.004``; None when the tag is no technique."""
    name = tag.lower()
    return name.upper() if _TECHNIQUE.match(name) else None


@dataclass(frozen=True, slots=True)
class AttackTags:
    """The tactics (current short names) and technique ids of one rule's tags, in order."""

    tactics: tuple[str, ...]
    techniques: tuple[str, ...]


def attack_tags(tags: Iterable[tuple[str, str]]) -> AttackTags:
    """Tactics and techniques of ``(namespace, name)`` tag pairs; other namespaces ignored."""
    tactics: list[str] = []
    techniques: list[str] = []
    for namespace, name in tags:
        if namespace != "attack":
            continue
        tactic, technique = tactic_name(name), technique_id(name)
        if tactic is not None and tactic not in tactics:
            tactics.append(tactic)
        elif technique is not None and technique not in techniques:
            techniques.append(technique)
    return AttackTags(tuple(tactics), tuple(techniques))


def technique_url(technique: str) -> str:
    """The technique's page on the ATT&CK site (sub-techniques nest: ``T1078/004``)."""
    return f"https://attack.mitre.org/techniques/{technique.replace('.', '/')}/"


def technique_names(stix_file: Path) -> dict[str, str]:
    """Technique id -> name from a MITRE ATT&CK STIX bundle (``enterprise-attack.json``)."""
    data = json.loads(stix_file.read_text(encoding="utf-8"))
    names: dict[str, str] = {}
    for obj in data.get("objects", []):
        if obj.get("type") != "attack-pattern":
            continue
        for ref in obj.get("external_references", []):
            if ref.get("source_name") == "mitre-attack" and ref.get("external_id"):
                names[str(ref["external_id"])] = str(obj.get("name", ref["external_id"]))
    return names
