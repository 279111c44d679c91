#!/usr/bin/env python3
"""Generate the attack scenario in examples/scenario/: benign CI/CD and registry traffic with
attack stories woven in, in the native formats of the four source families.

Two days of event time: Monday is a plain working day (it is also the learning period of the
first-seen rule), Tuesday repeats the same routine and carries the attack stories. Output:

- ``logs/cloudtrail.jsonl``, ``logs/registry.jsonl``, ``logs/ci.jsonl``, ``logs/vault.jsonl``:
  one native record per line (CloudTrail records, Docker Distribution notification events and
  Harbor audit-log entries, GitHub and GitLab audit events, Vault audit entries, each Vault call
  as its request and response entries), in event-time order; replay them with
  ``detector replay examples/scenario/logs``;
- ``ground_truth.json``: for each story, what happened, the ids of its events (as the
  normalizers name them: ``event.id``) and the rules expected to fire.

Run ``python examples/generate_scenario.py`` (seeded: the output is identical on every run).
Only the standard library and orjson are used. Addresses come from the documentation ranges
(192.0.2.0/24 CI egress, 198.51.100.0/24 office, 203.0.113.0/24 attackers) and private ranges.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import random
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

SEED = 20261124
DAY1 = datetime(2026, 11, 23, tzinfo=UTC)  # Monday, baseline
DAY2 = DAY1 + timedelta(days=1)  # Tuesday, attacks

ACCOUNT = "111122223333"
STAGING_ACCOUNT = "444455556666"
EXTERNAL_ACCOUNT = "999988887777"
REGION = "eu-west-1"
ECR_HOST = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
DIST_HOST = "registry.acme.internal"
GH_ORG = "acme"
GH_PROVIDER = f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com"
EKS_PROVIDER = f"arn:aws:iam::{ACCOUNT}:oidc-provider/oidc.eks.{REGION}.amazonaws.com/id/5C2A9E"
SSO_DEV_ROLE = "AWSReservedSSO_Developer_5f1c2e9a8b7d6c4e"
SSO_ADMIN_ROLE = "AWSReservedSSO_PlatformAdmin_0b9d8e7f6a5c4b3a"

SERVICES = ["payments-api", "web-frontend", "orders", "auth-service", "notifier", "search"]
BASE_OF = {
    "payments-api": ("docker-hub/library/python", "3.12-slim"),
    "web-frontend": ("docker-hub/library/node", "22-alpine"),
    "orders": ("base/golang", "1.23"),
    "auth-service": ("base/golang", "1.23"),
    "notifier": ("base/python", "3.12"),
    "search": ("docker-hub/library/eclipse-temurin", "21-jre"),
}
GH_REPOS = [*SERVICES, "billing", "infra-tools"]
TOOLS = ["tools/terraform", "tools/helm", "tools/kubectl", "tools/trivy"]
DEVELOPERS = [
    "alice",
    "bruno",
    "chen",
    "dana",
    "emil",
    "farah",
    "gus",
    "hana",
    "ivan",
    "jonas",
    "kira",
    "leo",
    "maya",
    "nils",
    "olga",
    "pavel",
    "quinn",
    "rosa",
    "sami",
    "tara",
    "uma",
    "viktor",
    "wen",
    "xavier",
    "yara",
    "zoe",
    "aron",
    "bea",
    "carl",
    "dilan",
    "elif",
    "finn",
    "greta",
    "hugo",
    "ines",
    "jan",
    "karl",
    "lina",
    "moritz",
    "nora",
]
GITLAB_USERS = ["olga", "pavel", "quinn", "rosa", "sami", "tara"]
GITLAB_PROJECTS = ["acme-infra/terraform-modules", "acme-infra/cluster-config", "acme-infra/dns"]
NODES = [f"i-0{n:x}4d2c1b0a9f8e7{n:x}" for n in range(8)]
STAGING_NODES = [f"i-0{n:x}9e8d7c6b5a4f3{n:x}" for n in range(3)]

UA_CLI = "aws-cli/2.22.4 md/awscrt#0.23.4 ua/2.0 os/linux#6.8.0 md/arch#x86_64 lang/python#3.12.6"
UA_GHA = "aws-sdk-nodejs/3.637.0 linux/v20.18.0 configure-aws-credentials-for-github-actions"
UA_DOCKER = "docker/27.3.1 go/go1.22.7 git-commit/41ca978 kernel/6.8.0 os/linux arch/amd64"
UA_CONTAINERD = "containerd/1.7.22"
UA_KUBELET = "aws-sdk-go/1.55.5 (go1.22.8; linux; amd64) amazon-ecr-credential-helper"
UA_CONSOLE = "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0"
UA_GIT = "git/2.47.0"


# ----------------------------------------------------------------------------------------
# Small helpers
# ----------------------------------------------------------------------------------------


def iso(t: datetime, digits: int = 0) -> str:
    """UTC ISO 8601 with a Z suffix and ``digits`` fractional digits (0, 3 or 6)."""
    if digits == 0:
        return t.strftime("%Y-%m-%dT%H:%M:%SZ")
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f")[: 20 + digits] + "Z"


def epoch_ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


@dataclass(frozen=True)
class Story:
    """An attack story: its name, what happens, and the rules expected to fire on it."""

    name: str
    summary: str
    rules: tuple[str, ...]


@dataclass
class Item:
    """One generated native record with its family, time and (for attacks) story."""

    family: str
    time: datetime
    record: dict[str, Any]
    story: str | None = None


@dataclass
class Scenario:
    """Everything generated: records, stories, and windows where named principals stay quiet."""

    rng: random.Random
    items: list[Item] = field(default_factory=list)
    stories: dict[str, Story] = field(default_factory=dict)
    quiet: list[tuple[frozenset[str], datetime, datetime]] = field(default_factory=list)
    story: str | None = None  # story of the records being added

    # -- ids ---------------------------------------------------------------------------

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def hexid(self, n: int) -> str:
        return f"{self.rng.getrandbits(n * 4):0{n}x}"

    def digest(self) -> str:
        return "sha256:" + self.hexid(64)

    def doc_id(self) -> str:
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        return "".join(self.rng.choice(alphabet) for _ in range(22))

    def add(self, family: str, t: datetime, record: dict[str, Any]) -> dict[str, Any]:
        self.items.append(Item(family, t, record, self.story))
        return record

    def begin(self, story: Story, quiet: Iterable[str], start: datetime, end: datetime) -> None:
        """Start adding records of ``story``; benign records of ``quiet`` principals
        between ``start`` and ``end`` are dropped so correlation windows hold only the story."""
        self.stories[story.name] = story
        self.story = story.name
        self.quiet.append((frozenset(quiet), start, end))

    def end(self) -> None:
        self.story = None


# ----------------------------------------------------------------------------------------
# Native record builders
# ----------------------------------------------------------------------------------------


class Aws:
    """CloudTrail records (https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-event-reference-record-contents.html)."""

    def __init__(self, sc: Scenario) -> None:
        self.sc = sc
        self.keys: dict[str, str] = {}

    def key(self, who: str, prefix: str = "ASIA") -> str:
        if who not in self.keys:
            self.keys[who] = prefix + self.sc.hexid(16).upper()
        return self.keys[who]

    def role(
        self, role: str, session: str, account: str = ACCOUNT, mfa: bool = False, path: str = ""
    ) -> dict[str, Any]:
        rid = "AROA" + hashlib.sha1(role.encode()).hexdigest()[:17].upper()
        return {
            "type": "AssumedRole",
            "principalId": f"{rid}:{session}",
            "arn": f"arn:aws:sts::{account}:assumed-role/{role}/{session}",
            "accountId": account,
            "accessKeyId": self.key(f"{account}/{role}/{session}"),
            "sessionContext": {
                "sessionIssuer": {
                    "type": "Role",
                    "principalId": rid,
                    "arn": f"arn:aws:iam::{account}:role/{path}{role}",
                    "accountId": account,
                    "userName": role,
                },
                "attributes": {"creationDate": iso(DAY1), "mfaAuthenticated": str(mfa).lower()},
            },
        }

    def sso(self, email: str, admin: bool = False) -> dict[str, Any]:
        role = SSO_ADMIN_ROLE if admin else SSO_DEV_ROLE
        return self.role(role, email, path=f"aws-reserved/sso.amazonaws.com/{REGION}/")

    def user(self, name: str, account: str = ACCOUNT) -> dict[str, Any]:
        uid = "AIDA" + hashlib.sha1(name.encode()).hexdigest()[:17].upper()
        return {
            "type": "IAMUser",
            "principalId": uid,
            "arn": f"arn:aws:iam::{account}:user/{name}",
            "accountId": account,
            "accessKeyId": self.key(f"{account}/{name}", "AKIA"),
            "userName": name,
        }

    @staticmethod
    def root(account: str = ACCOUNT) -> dict[str, Any]:
        return {
            "type": "Root",
            "principalId": account,
            "arn": f"arn:aws:iam::{account}:root",
            "accountId": account,
            "accessKeyId": "",
        }

    @staticmethod
    def web_identity(sub: str, provider: str = GH_PROVIDER) -> dict[str, Any]:
        return {
            "type": "WebIdentityUser",
            "principalId": f"{provider}:sts.amazonaws.com:{sub}",
            "userName": sub,
            "identityProvider": provider,
        }

    def event(
        self,
        t: datetime,
        source: str,
        name: str,
        ident: dict[str, Any],
        ip: str,
        agent: str,
        req: dict[str, Any] | None = None,
        resp: Any = None,
        error: tuple[str, str] | None = None,
        read_only: bool = False,
        extra: dict[str, Any] | None = None,
        resources: list[dict[str, Any]] | None = None,
        event_type: str = "AwsApiCall",
    ) -> dict[str, Any]:
        rec: dict[str, Any] = {
            "eventVersion": "1.11",
            "userIdentity": ident,
            "eventTime": iso(t),
            "eventSource": source,
            "eventName": name,
            "awsRegion": REGION,
            "sourceIPAddress": ip,
            "userAgent": agent,
        }
        if error:
            rec["errorCode"], rec["errorMessage"] = error
        rec["requestParameters"] = req
        rec["responseElements"] = resp
        if extra:
            rec["additionalEventData"] = extra
        rec["requestID"] = self.sc.uuid()
        rec["eventID"] = self.sc.uuid()
        rec["readOnly"] = read_only
        if resources:
            rec["resources"] = resources
        rec["eventType"] = event_type
        rec["managementEvent"] = True
        rec["recipientAccountId"] = ACCOUNT
        if ip.startswith("10."):
            rec["vpcEndpointId"] = "vpce-0c4e9a7b2d1f36a58"
            rec["vpcEndpointAccountId"] = ACCOUNT
        rec["eventCategory"] = "Management"
        return self.sc.add("cloudtrail", t, rec)

    @staticmethod
    def repo_arn(repo: str) -> list[dict[str, Any]]:
        return [{"accountId": ACCOUNT, "ARN": f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{repo}"}]

    def ecr(
        self,
        t: datetime,
        name: str,
        ident: dict[str, Any],
        ip: str,
        agent: str,
        req: dict[str, Any] | None = None,
        resp: Any = None,
        read_only: bool = False,
        repo: str | None = None,
        error: tuple[str, str] | None = None,
    ) -> dict[str, Any]:
        return self.event(
            t,
            "ecr.amazonaws.com",
            name,
            ident,
            ip,
            agent,
            req,
            resp,
            error,
            read_only,
            resources=self.repo_arn(repo) if repo else None,
        )

    def auth_token(self, t: datetime, ident: dict[str, Any], ip: str, agent: str) -> None:
        self.ecr(t, "GetAuthorizationToken", ident, ip, agent, {}, None, read_only=True)

    def pull(
        self,
        t: datetime,
        ident: dict[str, Any],
        ip: str,
        agent: str,
        repo: str,
        tag: str,
        layers: int = 3,
        registry: str = ACCOUNT,
    ) -> datetime:
        """BatchGetImage for the manifest then GetDownloadUrlForLayer per layer."""
        req = {
            "imageIds": [{"imageTag": tag}],
            "acceptedMediaTypes": [
                "application/vnd.docker.distribution.manifest.v2+json",
                "application/vnd.oci.image.index.v1+json",
                "application/vnd.oci.image.manifest.v1+json",
            ],
            "repositoryName": repo,
            "registryId": registry,
        }
        self.ecr(t, "BatchGetImage", ident, ip, agent, req, None, True, repo)
        for _ in range(layers):
            t += timedelta(milliseconds=self.sc.rng.randint(150, 900))
            layer = {
                "repositoryName": repo,
                "registryId": registry,
                "layerDigest": self.sc.digest(),
            }
            self.ecr(t, "GetDownloadUrlForLayer", ident, ip, agent, layer, None, True, repo)
        return t

    def push(
        self,
        t: datetime,
        ident: dict[str, Any],
        ip: str,
        agent: str,
        repo: str,
        tag: str,
        layers: int = 2,
    ) -> datetime:
        for _ in range(layers):
            t += timedelta(seconds=self.sc.rng.randint(1, 6))
            req = {
                "registryId": ACCOUNT,
                "repositoryName": repo,
                "uploadId": self.sc.uuid(),
                "layerDigests": [self.sc.digest()],
            }
            self.ecr(t, "CompleteLayerUpload", ident, ip, agent, req, None, False, repo)
        t += timedelta(seconds=2)
        digest = self.sc.digest()
        req = {
            "repositoryName": repo,
            "imageTag": tag,
            "registryId": ACCOUNT,
            "imageManifestMediaType": "application/vnd.oci.image.manifest.v1+json",
        }
        resp = {
            "image": {
                "registryId": ACCOUNT,
                "repositoryName": repo,
                "imageId": {"imageDigest": digest, "imageTag": tag},
                "imageManifestMediaType": "application/vnd.oci.image.manifest.v1+json",
            }
        }
        self.ecr(t, "PutImage", ident, ip, agent, req, resp, False, repo)
        return t


class Registry:
    """Docker Distribution notification events and Harbor audit-log entries."""

    def __init__(self, sc: Scenario) -> None:
        self.sc = sc
        self.harbor_id = 880_000
        self.instance = sc.uuid()

    def dist(
        self,
        t: datetime,
        action: str,
        actor: str | None,
        ip: str,
        repo: str,
        tag: str | None = None,
        agent: str = UA_CONTAINERD,
        blob: bool = False,
        from_repo: str | None = None,
    ) -> dict[str, Any]:
        digest = self.sc.digest()
        kind = "blobs" if blob or from_repo else "manifests"
        media = (
            "application/vnd.oci.image.layer.v1.tar+gzip"
            if kind == "blobs"
            else "application/vnd.oci.image.manifest.v1+json"
        )
        size = self.sc.rng.randint(700, 40_000_000 if kind == "blobs" else 4000)
        target: dict[str, Any] = {
            "mediaType": media,
            "digest": digest,
            "size": size,
            "length": size,
            "repository": repo,
            "url": f"https://{DIST_HOST}/v2/{repo}/{kind}/{digest}",
        }
        if tag and kind == "manifests":
            target["tag"] = tag
        if from_repo:
            target["fromRepository"] = from_repo
        method = {"pull": "GET", "push": "PUT", "delete": "DELETE", "mount": "POST"}[action]
        rec = {
            "id": self.sc.uuid(),
            "timestamp": iso(t, 6),
            "action": action,
            "target": target,
            "request": {
                "id": self.sc.uuid(),
                "addr": f"{ip}:{self.sc.rng.randint(32768, 60999)}",
                "host": DIST_HOST,
                "method": method,
                "useragent": agent,
            },
            "actor": {"name": actor} if actor else {},
            "source": {
                "addr": "registry-0.registry.svc.cluster.local:5000",
                "instanceID": self.instance,
            },
        }
        return self.sc.add("registry", t, rec)

    def dist_pull(
        self,
        t: datetime,
        actor: str | None,
        ip: str,
        repo: str,
        tag: str,
        layers: int = 2,
        agent: str = UA_CONTAINERD,
    ) -> datetime:
        self.dist(t, "pull", actor, ip, repo, tag, agent)
        for _ in range(layers):
            t += timedelta(milliseconds=self.sc.rng.randint(100, 700))
            self.dist(t, "pull", actor, ip, repo, agent=agent, blob=True)
        return t

    def harbor(
        self, t: datetime, user: str, operation: str, resource: str, resource_type: str = "artifact"
    ) -> dict[str, Any]:
        self.harbor_id += self.sc.rng.randint(1, 3)
        rec = {
            "id": self.harbor_id,
            "username": user,
            "resource": resource,
            "resource_type": resource_type,
            "operation": operation,
            "op_time": iso(t),
        }
        return self.sc.add("registry", t, rec)


class Ci:
    """GitHub audit log events and GitLab audit events."""

    def __init__(self, sc: Scenario) -> None:
        self.sc = sc
        self.gitlab_id = 310_000
        self.tokens: dict[str, str] = {}

    def hashed_token(self, who: str) -> str:
        if who not in self.tokens:
            raw = hashlib.sha256(f"{who}/{self.sc.rng.random()}".encode()).digest()
            self.tokens[who] = base64.b64encode(raw).decode()
        return self.tokens[who]

    def github(
        self, t: datetime, action: str, actor: str, ip: str | None, pat: bool = False, **fields: Any
    ) -> dict[str, Any]:
        rec: dict[str, Any] = {
            "@timestamp": epoch_ms(t),
            "_document_id": self.sc.doc_id(),
            "action": action,
            "actor": actor,
            "actor_id": int(hashlib.sha1(actor.encode()).hexdigest()[:7], 16),
            "business": "acme",
            "created_at": epoch_ms(t),
            "operation_type": fields.pop("operation_type", "access"),
            "org": GH_ORG,
            "org_id": 48213077,
        }
        if ip:
            rec["actor_ip"] = ip
            rec["actor_location"] = {"country_code": "DE" if not ip.startswith("203.") else "NL"}
        if pat:
            rec["programmatic_access_type"] = "Personal access token (classic)"
            rec["hashed_token"] = self.hashed_token(actor)
            rec["token_id"] = int(hashlib.sha1(actor.encode()).hexdigest()[:6], 16)
            rec["token_scopes"] = "repo,workflow,read:org"
        rec.update(fields)
        return self.sc.add("ci", t, rec)

    def gitlab(
        self,
        t: datetime,
        event_type: str,
        author: str,
        ip: str,
        project: str,
        target_type: str,
        target: str,
        message: str,
        **details: Any,
    ) -> dict[str, Any]:
        self.gitlab_id += self.sc.rng.randint(1, 4)
        author_id = int(hashlib.sha1(author.encode()).hexdigest()[:4], 16)
        target_id = int(hashlib.sha1(target.encode()).hexdigest()[:5], 16)
        entity_id = int(hashlib.sha1(project.encode()).hexdigest()[:3], 16)
        rec = {
            "id": self.gitlab_id,
            "author_id": author_id,
            "entity_id": entity_id,
            "entity_type": "Project",
            "details": {
                "author_name": author,
                "author_class": "User",
                "target_id": target_id,
                "target_type": target_type,
                "target_details": target,
                "custom_message": message,
                "ip_address": ip,
                "entity_path": project,
                **details,
            },
            "ip_address": ip,
            "author_name": author,
            "entity_path": project,
            "target_details": target,
            "created_at": iso(t, 3),
            "target_type": target_type,
            "target_id": target_id,
            "event_type": event_type,
        }
        return self.sc.add("ci", t, rec)


@dataclass
class VaultToken:
    """A Vault token as the audit log shows it (HMAC'd values)."""

    token: str
    accessor: str
    display_name: str
    policies: list[str]
    metadata: dict[str, str]
    entity_id: str


class Vault:
    """Vault audit-device entries, a request and a response entry per call."""

    def __init__(self, sc: Scenario) -> None:
        self.sc = sc

    def hmac(self) -> str:
        return "hmac-sha256:" + self.sc.hexid(64)

    def token(self, display_name: str, policies: list[str], metadata: dict[str, str]) -> VaultToken:
        return VaultToken(
            self.hmac(), self.hmac(), display_name, ["default", *policies], metadata, self.sc.uuid()
        )

    def call(
        self,
        t: datetime,
        tok: VaultToken | None,
        operation: str,
        path: str,
        ip: str,
        denied: bool = False,
        data: dict[str, Any] | None = None,
        client_token: str | None = None,
    ) -> datetime:
        mount = path.split("/", 1)[0] + "/"
        mount_type = {"secret/": "kv", "auth/": "token", "sys/": "system"}.get(mount, "kv")
        auth: dict[str, Any] = {}
        if tok is not None:
            auth = {
                "client_token": tok.token,
                "accessor": tok.accessor,
                "display_name": tok.display_name,
                "policies": tok.policies,
                "token_policies": tok.policies,
                "metadata": tok.metadata,
                "entity_id": tok.entity_id,
                "token_type": "service",
                "token_ttl": 3600,
                "token_issue_time": iso(t - timedelta(minutes=5)),
            }
        request: dict[str, Any] = {
            "id": self.sc.uuid(),
            "operation": operation,
            "mount_point": mount,
            "mount_type": mount_type,
            "mount_running_version": "v0.20.0+builtin"
            if mount_type == "kv"
            else "v1.18.1+builtin.vault",
            "mount_class": "secret" if mount_type == "kv" else "auth",
            "namespace": {"id": "root"},
            "path": path,
            "remote_address": ip,
            "remote_port": self.sc.rng.randint(32768, 60999),
        }
        token_hmac = client_token or (tok.token if tok else None)
        if token_hmac:
            request["client_token"] = token_hmac
            if tok:
                request["client_token_accessor"] = tok.accessor
        if data:
            request["data"] = data
        error = "1 error occurred:\n\t* permission denied\n\n" if denied else None
        req_entry: dict[str, Any] = {
            "time": iso(t, 6),
            "type": "request",
            "auth": auth,
            "request": request,
        }
        if error:
            req_entry["error"] = error
        self.sc.add("vault", t, req_entry)
        t2 = t + timedelta(milliseconds=self.sc.rng.randint(2, 40))
        resp_entry: dict[str, Any] = {
            "time": iso(t2, 6),
            "type": "response",
            "auth": auth,
            "request": request,
        }
        if error:
            resp_entry["error"] = error
        elif mount_type == "kv" and operation == "read":
            resp_entry["response"] = {
                "mount_point": mount,
                "mount_type": "kv",
                "mount_running_plugin_version": "v0.20.0+builtin",
                "data": {"data": self.hmac(), "metadata": {"version": self.sc.rng.randint(1, 9)}},
            }
        else:
            resp_entry["response"] = {"mount_point": mount, "mount_type": mount_type}
        self.sc.add("vault", t2, resp_entry)
        return t2


# ----------------------------------------------------------------------------------------
# Benign background
# ----------------------------------------------------------------------------------------


class Background:
    """The ordinary day of the company, generated the same way on both days."""

    def __init__(self, sc: Scenario) -> None:
        self.sc = sc
        self.rng = sc.rng
        self.aws = Aws(sc)
        self.reg = Registry(sc)
        self.ci = Ci(sc)
        self.vault = Vault(sc)
        self.dev_ip = {d: f"198.51.100.{20 + i}" for i, d in enumerate(DEVELOPERS)}
        self.node_ip = {n: f"10.30.{1 + i % 2}.{40 + i}" for i, n in enumerate(NODES)}
        self.staging_ip = {n: f"10.31.1.{30 + i}" for i, n in enumerate(STAGING_NODES)}
        self.job = 0

    def at(self, day: datetime, hour: float) -> datetime:
        return day + timedelta(seconds=int(hour * 3600))

    def jitter(self, t: datetime, seconds: int) -> datetime:
        return t + timedelta(seconds=self.rng.randint(0, seconds))

    def runner_ip(self, repo: str) -> str:
        # each repository's jobs run in one of the two runner subnets
        return f"10.20.{4 + GH_REPOS.index(repo) % 2}.{self.rng.randint(10, 250)}"

    # -- CI jobs -------------------------------------------------------------------------

    def ci_job(self, t: datetime, repo: str, deploy: bool, push: bool = True) -> None:
        rng = self.rng
        ip = self.runner_ip(repo)
        nat = f"192.0.2.{rng.randint(10, 13)}"
        dev = rng.choice(DEVELOPERS)
        self.ci.github(
            t,
            "git.clone",
            "github-actions[bot]",
            nat,
            repo=f"{GH_ORG}/{repo}",
            repository=f"{GH_ORG}/{repo}",
            transport_protocol_name="http",
            user_agent=UA_GIT,
            repository_public=False,
        )
        if repo not in SERVICES:
            t = self.jitter(t, 400)
            self.reg.harbor(t, "robot$ci", "create", f"apps/{repo}:{self.sc.hexid(7)}")
            self.ci.github(
                t + timedelta(seconds=5),
                "workflows.completed_workflow_run",
                dev,
                None,
                repo=f"{GH_ORG}/{repo}",
                conclusion="success",
                workflow_run_id=rng.randint(10**9, 10**10),
            )
            return
        sub = f"repo:{GH_ORG}/{repo}:ref:refs/heads/main"
        session = f"gha-{repo}"
        t += timedelta(seconds=rng.randint(20, 60))
        self.aws.event(
            t,
            "sts.amazonaws.com",
            "AssumeRoleWithWebIdentity",
            self.aws.web_identity(sub),
            ip,
            UA_GHA,
            {
                "roleArn": f"arn:aws:iam::{ACCOUNT}:role/gha-ecr-push",
                "roleSessionName": session,
                "durationSeconds": 3600,
            },
            {
                "credentials": {
                    "accessKeyId": self.aws.key(f"{ACCOUNT}/gha-ecr-push/{session}"),
                    "sessionToken": "IQoJb3JpZ2luX2VjE" + self.sc.hexid(24),
                    "expiration": iso(t + timedelta(hours=1)),
                },
                "subjectFromWebIdentityToken": sub,
                "assumedRoleUser": {
                    "assumedRoleId": f"AROAGHAECRPUSH:{session}",
                    "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/gha-ecr-push/{session}",
                },
                "provider": GH_PROVIDER,
                "audience": "sts.amazonaws.com",
            },
            read_only=True,
            extra={"identityProviderConnectionVerificationMethod": "IAMTrustStore"},
        )
        ident = self.aws.role("gha-ecr-push", session)
        t += timedelta(seconds=2)
        self.aws.auth_token(t, ident, ip, UA_DOCKER)
        base, tag = BASE_OF[repo]
        t = self.aws.pull(t + timedelta(seconds=3), ident, ip, UA_DOCKER, base, tag, layers=4)
        # vault: CI secrets for the deploy
        tok = self.vault.token(f"jwt-{GH_ORG}/{repo}", [f"ci-{repo}"], {"role": f"ci-{repo}"})
        t = self.vault.call(t + timedelta(seconds=30), None, "update", "auth/jwt/login", ip)
        t = self.vault.call(t, tok, "read", f"secret/data/ci/{repo}/deploy", ip)
        t = self.vault.call(t, tok, "read", "secret/data/ci/shared/sonar", ip)
        sha = self.sc.hexid(7)
        if not push:
            self.ci.github(
                t + timedelta(seconds=60),
                "workflows.completed_workflow_run",
                dev,
                None,
                repo=f"{GH_ORG}/{repo}",
                conclusion="success",
                workflow_run_id=rng.randint(10**9, 10**10),
            )
            return
        t = self.aws.push(
            t + timedelta(seconds=rng.randint(120, 400)), ident, ip, UA_DOCKER, f"prod/{repo}", sha
        )
        self.ci.github(
            t + timedelta(seconds=20),
            "workflows.completed_workflow_run",
            dev,
            None,
            repo=f"{GH_ORG}/{repo}",
            conclusion="success",
            workflow_run_id=rng.randint(10**9, 10**10),
        )
        if deploy:
            # deploy job: tools from the internal registry, then nodes pull the new image
            t2 = t + timedelta(seconds=rng.randint(30, 90))
            for tool in ("tools/helm", "tools/kubectl"):
                t2 = self.reg.dist_pull(
                    t2, "ci-puller", ip, tool, "3.16.2" if "helm" in tool else "1.31.2"
                )
            for node in rng.sample(NODES, 3):
                tn = self.jitter(t2 + timedelta(seconds=30), 90)
                self.aws.pull(
                    tn,
                    self.aws.role("eks-node-prod", node),
                    self.node_ip[node],
                    UA_KUBELET,
                    f"prod/{repo}",
                    sha,
                    layers=2,
                )
                self.pod_start(tn + timedelta(seconds=20), repo, node)

    def pod_start(self, t: datetime, svc: str, node: str) -> None:
        """A production pod logs in to Vault and reads its secrets, and Secrets Manager."""
        rng = self.rng
        pod_ip = f"10.30.{100 + NODES.index(node)}.{rng.randint(2, 250)}"
        meta = {
            "role": svc,
            "service_account_name": svc,
            "service_account_namespace": "prod",
            "service_account_uid": self.sc.uuid(),
        }
        tok = self.vault.token(f"kubernetes-prod-{svc}", [f"prod-{svc}"], meta)
        t = self.vault.call(t, None, "update", "auth/kubernetes/login", pod_ip)
        for name in ("db", "api-keys", "tls")[: rng.randint(2, 3)]:
            t = self.vault.call(
                t + timedelta(milliseconds=200),
                tok,
                "read",
                f"secret/data/prod/{svc}/{name}",
                pod_ip,
            )
        if svc == "notifier":
            # a long-standing misconfiguration: the notifier is not allowed the shared SMTP secret
            self.vault.call(t, tok, "read", "secret/data/prod/shared/smtp", pod_ip, denied=True)
        ident = self.aws.role(f"svc-{svc}-prod", f"botocore-session-{rng.randint(10**9, 10**10)}")
        self.aws.event(
            t + timedelta(seconds=1),
            "secretsmanager.amazonaws.com",
            "GetSecretValue",
            ident,
            pod_ip,
            "Boto3/1.35.54 md/Botocore#1.35.54 ua/2.0 os/linux",
            {"secretId": f"prod/{svc}/third-party"},
            None,
            read_only=True,
        )

    # -- people ----------------------------------------------------------------------------

    def developer_day(self, day: datetime, dev: str) -> None:
        rng = self.rng
        ip = self.dev_ip[dev]
        email = f"{dev}@acme.example"
        login = f"{dev}-acme"
        start = self.at(day, 8 + rng.random() * 1.5)
        self.ci.github(
            start,
            "git.fetch",
            login,
            ip,
            pat=True,
            repo=f"{GH_ORG}/{rng.choice(GH_REPOS)}",
            transport_protocol_name="http",
            user_agent=UA_GIT,
        )
        ident = self.aws.sso(email)
        t = self.jitter(start, 1800)
        self.aws.auth_token(t, ident, ip, UA_CLI)
        svc = rng.choice(SERVICES)
        self.aws.pull(
            t + timedelta(seconds=4),
            ident,
            ip,
            UA_DOCKER,
            f"prod/{svc}",
            self.sc.hexid(7),
            layers=3,
        )
        self.reg.dist_pull(
            self.jitter(start, 3600), dev, ip, rng.choice(TOOLS), "latest", agent=UA_DOCKER
        )
        self.reg.harbor(
            self.jitter(start, 3600),
            dev,
            "pull",
            f"dockerhub-cache/library/{rng.choice(['postgres:16', 'redis:7.4', 'nginx:1.27'])}",
        )
        self.reg.harbor(
            self.jitter(start, 7200), dev, "pull", f"apps/{svc}:1.{rng.randint(30, 60)}.0"
        )
        # vault from the office: dev secrets
        tok = self.vault.token(
            f"oidc-{email}", ["developer"], {"role": "developer", "username": email}
        )
        tv = self.jitter(start, 3600)
        tv = self.vault.call(tv, None, "update", "auth/oidc/oidc/callback", ip)
        self.vault.call(tv + timedelta(seconds=3), tok, "read", f"secret/data/dev/{svc}/config", ip)
        for _ in range(rng.randint(8, 20)):
            t = self.at(day, 9 + rng.random() * 8.5)
            repo = rng.choice(GH_REPOS)
            action = rng.choice(
                [
                    "git.push",
                    "git.clone",
                    "git.fetch",
                    "pull_request.merge",
                    "pull_request.create",
                    "pull_request_review.submit",
                ]
            )
            pat = action.startswith("git.")
            self.ci.github(
                t,
                action,
                login,
                ip,
                pat=pat,
                repo=f"{GH_ORG}/{repo}",
                user_agent=UA_GIT if pat else UA_CONSOLE,
            )
            if (
                action in ("git.push", "pull_request.merge")
                and repo in SERVICES
                and rng.random() < 0.4
            ):
                self.ci_job(
                    t + timedelta(seconds=rng.randint(5, 40)),
                    repo,
                    deploy=action == "pull_request.merge",
                )
            elif action == "git.push" and repo not in SERVICES:
                self.ci_job(t + timedelta(seconds=10), repo, deploy=False)
        if dev in GITLAB_USERS:
            for _ in range(rng.randint(2, 4)):
                t = self.at(day, 9 + rng.random() * 8)
                project = rng.choice(GITLAB_PROJECTS)
                self.ci.gitlab(
                    t,
                    "repository_git_operation",
                    dev,
                    ip,
                    project,
                    "Project",
                    project,
                    "Repository Git operation",
                    verb=rng.choice(["push", "clone"]),
                )
            if rng.random() < 0.5:
                project = rng.choice(GITLAB_PROJECTS)
                self.ci.gitlab(
                    self.at(day, 11 + rng.random() * 5),
                    "merge_request_merged",
                    dev,
                    ip,
                    project,
                    "MergeRequest",
                    f"!{rng.randint(100, 900)}",
                    "Merged merge request",
                )

    def platform(self, day: datetime) -> None:
        """Automation: nightly builds, terraform, secret sync, GC, staging cluster, bots."""
        rng = self.rng
        for repo in GH_REPOS:  # nightly builds, no deploy
            self.ci_job(self.at(day, 1 + rng.random() * 3), repo, deploy=False)
        for hour in (6.0, 14.0):  # terraform plan/apply through CI egress
            t = self.at(day, hour + rng.random() * 0.3)
            ident = self.aws.role("terraform-apply", "terraform")
            for repo in SERVICES:
                t += timedelta(seconds=rng.randint(1, 4))
                self.aws.ecr(
                    t,
                    "DescribeRepositories",
                    ident,
                    "192.0.2.15",
                    UA_CLI,
                    {"repositoryNames": [f"prod/{repo}"]},
                    None,
                    True,
                    f"prod/{repo}",
                )
                self.aws.ecr(
                    t,
                    "PutImageScanningConfiguration",
                    ident,
                    "192.0.2.15",
                    UA_CLI,
                    {
                        "repositoryName": f"prod/{repo}",
                        "registryId": ACCOUNT,
                        "imageScanningConfiguration": {"scanOnPush": True},
                    },
                    {
                        "registryId": ACCOUNT,
                        "repositoryName": f"prod/{repo}",
                        "imageScanningConfiguration": {"scanOnPush": True},
                    },
                    False,
                    f"prod/{repo}",
                )
            tf = self.vault.token("approle", ["terraform"], {"role_name": "terraform"})
            tv = self.vault.call(t, None, "update", "auth/approle/login", "192.0.2.15")
            for svc in SERVICES[:3]:
                tv = self.vault.call(
                    tv + timedelta(seconds=1),
                    tf,
                    "update",
                    f"sys/policies/acl/prod-{svc}",
                    "192.0.2.15",
                )
            self.ci.gitlab(
                t,
                "ci_variable_updated",
                "terraform-bot",
                "192.0.2.15",
                GITLAB_PROJECTS[1],
                "Ci::Variable",
                "KUBE_CONTEXT",
                "Changed variable KUBE_CONTEXT",
            )
        # secret sync app rotates one repo secret per repo each morning
        for repo in SERVICES:
            self.ci.github(
                self.at(day, 5 + rng.random()),
                "repo.update_actions_secret",
                "acme-secrets-sync[bot]",
                "192.0.2.20",
                repo=f"{GH_ORG}/{repo}",
                secret_name="REGISTRY_TOKEN",
                operation_type="modify",
            )
        # CI release bot: promotes tools to the internal registry and reads release secrets
        rel = self.vault.token("userpass-svc-release", ["release"], {"username": "svc-release"})
        for hour in (7.5, 12.5, 19.5):
            t = self.at(day, hour + rng.random() * 0.2)
            ip = f"10.20.4.{rng.randint(10, 250)}"
            for tool in TOOLS:
                t = self.reg.dist_pull(t + timedelta(seconds=2), "svc-release", ip, tool, "latest")
            t = self.vault.call(
                t + timedelta(seconds=5), rel, "read", "secret/data/prod/release/signing-key", ip
            )
        # legacy CI user with a long-lived key, from the CI NAT
        ci_user = self.aws.user("ci-release")
        for hour in (3.0, 11.0, 16.0):
            t = self.at(day, hour + rng.random() * 0.5)
            self.aws.auth_token(t, ci_user, "192.0.2.11", UA_CLI)
            self.aws.pull(
                t + timedelta(seconds=2),
                ci_user,
                "192.0.2.11",
                UA_DOCKER,
                "base/python",
                "3.12",
                layers=2,
            )
        # registry garbage collection and Harbor retention
        for n in range(3):
            t = self.at(day, 2 + n * 0.3)
            self.reg.dist(t, "delete", "registry-gc", "10.30.1.5", "tools/trivy")
            self.reg.harbor(t, "admin", "delete", f"apps/search:1.{n + 10}.0")
        # staging cluster pulls prod images through the organization's cross-account access
        for node in STAGING_NODES:
            for hour in (9.5, 15.5):
                t = self.at(day, hour + rng.random() * 0.5)
                svc = rng.choice(SERVICES)
                self.aws.pull(
                    t,
                    self.aws.role("eks-node-staging", node, STAGING_ACCOUNT),
                    self.staging_ip[node],
                    UA_KUBELET,
                    f"prod/{svc}",
                    self.sc.hexid(7),
                    layers=2,
                )
                meta = {
                    "role": svc,
                    "service_account_name": svc,
                    "service_account_namespace": "staging",
                    "service_account_uid": self.sc.uuid(),
                }
                pod_ip = f"10.31.{20 + STAGING_NODES.index(node)}.{rng.randint(2, 250)}"
                tok = self.vault.token(f"kubernetes-staging-{svc}", [f"staging-{svc}"], meta)
                tv = self.vault.call(
                    t + timedelta(seconds=30), None, "update", "auth/kubernetes/login", pod_ip
                )
                self.vault.call(tv, tok, "read", f"secret/data/staging/{svc}/db", pod_ip)
        # runners of the fleet bot re-register ephemeral GitLab runners; admins sign in with MFA
        for hour in (8.0, 13.0):
            t = self.at(day, hour)
            self.ci.gitlab(
                t,
                "ci_runner_registered",
                "runner-fleet-bot",
                "10.20.6.4",
                GITLAB_PROJECTS[0],
                "Ci::Runner",
                f"runner-{rng.randint(1000, 9999)}",
                "Registered project CI runner",
                runner_type="project_type",
            )
        for admin in ("dana", "leo"):
            t = self.at(day, 9 + rng.random())
            self.aws.event(
                t,
                "signin.amazonaws.com",
                "ConsoleLogin",
                self.aws.user(f"{admin}.admin"),
                self.dev_ip[admin],
                UA_CONSOLE,
                None,
                {"ConsoleLogin": "Success"},
                extra={
                    "LoginTo": "https://console.aws.amazon.com/console/home",
                    "MobileVersion": "No",
                    "MFAUsed": "Yes",
                    "MFAIdentifier": f"arn:aws:iam::{ACCOUNT}:mfa/{admin}",
                },
                event_type="AwsConsoleSignIn",
            )
        self.ci.github(
            self.at(day, 10.2),
            "team.add_member",
            "dana-acme",
            self.dev_ip["dana"],
            team=f"{GH_ORG}/platform",
            user=rng.choice(DEVELOPERS) + "-acme",
        )
        self.ci.github(
            self.at(day, 15.7),
            "protected_branch.update",
            "leo-acme",
            self.dev_ip["leo"],
            repo=f"{GH_ORG}/{rng.choice(GH_REPOS)}",
            branch="main",
            name="main",
        )
        # an anonymous pull of the public base images namespace is fine
        for _ in range(6):
            self.reg.dist_pull(
                self.at(day, rng.random() * 24),
                None,
                "198.51.100.200",
                "public/base-debian",
                "bookworm",
                agent=UA_DOCKER,
            )

    def warm_up(self, day: datetime) -> None:
        """Start of day: every node refreshes its cached images, the CI robot pulls its tools."""
        for i, node in enumerate(NODES):
            t = self.at(day, 0.1 + i * 0.01)
            self.aws.pull(
                t,
                self.aws.role("eks-node-prod", node),
                self.node_ip[node],
                UA_KUBELET,
                f"prod/{SERVICES[i % len(SERVICES)]}",
                self.sc.hexid(7),
                layers=2,
            )
        for subnet in (4, 5):
            t = self.at(day, 0.5 + subnet * 0.01)
            self.reg.dist_pull(t, "ci-puller", f"10.20.{subnet}.9", "tools/helm", "3.16.2")

    def day(self, day: datetime) -> None:
        self.warm_up(day)
        self.platform(day)
        for dev in DEVELOPERS:
            self.developer_day(day, dev)
        for hour in range(24):  # hourly scheduled integration tests of every service
            for repo in SERVICES:
                self.ci_job(
                    self.at(day, hour + self.rng.random() * 0.5), repo, deploy=False, push=False
                )
            for node in NODES:  # node agents refresh their sidecars from the internal registry
                for image, tag in (("infra/fluent-bit", "3.1.9"), ("infra/node-exporter", "1.8.2")):
                    t = self.at(day, hour + self.rng.random() * 0.9)
                    self.reg.dist_pull(
                        t, "k8s-node-puller", self.node_ip[node], image, tag, layers=1
                    )


# ----------------------------------------------------------------------------------------
# Attack stories (all on Tuesday)
# ----------------------------------------------------------------------------------------

ATTACKER = "203.0.113."


def t2(hhmm: str) -> datetime:
    h, m = hhmm.split(":")
    return DAY2 + timedelta(hours=int(h), minutes=int(m))


def attacks(sc: Scenario, bg: Background) -> None:
    aws, reg, ci, vault, rng = bg.aws, bg.reg, bg.ci, bg.vault, sc.rng
    sec = timedelta(seconds=1)

    # 1. Stolen CI robot credential sweeps the internal registry from rotating VPS addresses.
    start = t2("10:12")
    sc.begin(
        Story(
            "stolen_registry_robot",
            "The ci-puller robot password leaked in a build log; "
            "an outsider pulls 14 private repositories from three VPS addresses in minutes.",
            (
                "Burst Of Pulls Across Many Repositories By One Principal",
                "Image Pull From A Network Never Seen For This Principal",
                "Registry Credential Used From Several External Addresses",
            ),
        ),
        ["ci-puller"],
        start - timedelta(minutes=15),
        start + timedelta(minutes=20),
    )
    t = start
    repos = (
        [f"prod/{s}" for s in SERVICES]
        + TOOLS
        + ["apps/billing", "apps/ledger", "apps/kyc", "infra/vpn-gateway"]
    )
    for i, repo in enumerate(repos):
        t = reg.dist_pull(
            t + timedelta(seconds=rng.randint(4, 12)),
            "ci-puller",
            f"{ATTACKER}{45 + i % 3}",
            repo,
            "latest",
            layers=1,
            agent="Go-http-client/1.1",
        )
    sc.end()

    # 2. A CI access key is created, then used from outside CI.
    created = t2("09:05")
    sc.begin(
        Story(
            "leaked_ci_access_key",
            "An administrator creates a new access key for the "
            "ci-release user; four hours later the key is used from a VPS.",
            (
                "CI Access Key Used Outside CI Networks",
                "CI Access Key Created Then Used Outside CI",
                "Image Pull From A Network Never Seen For This Principal",
                "IAM Access Key Created For Another User",
            ),
        ),
        ["ci-release"],
        t2("13:00"),
        t2("14:30"),
    )
    aws.event(
        created,
        "iam.amazonaws.com",
        "CreateAccessKey",
        aws.user("ops-admin"),
        "198.51.100.31",
        UA_CONSOLE,
        {"userName": "ci-release"},
        {
            "accessKey": {
                "userName": "ci-release",
                "accessKeyId": "AKIA" + sc.hexid(16).upper(),
                "status": "Active",
                "createDate": iso(created),
            }
        },
    )
    t = t2("13:31")
    ident = aws.user("ci-release")
    ip = f"{ATTACKER}80"
    aws.event(
        t, "sts.amazonaws.com", "GetCallerIdentity", ident, ip, UA_CLI, None, None, read_only=True
    )
    aws.auth_token(t + 3 * sec, ident, ip, UA_CLI)
    aws.ecr(t + 5 * sec, "DescribeRepositories", ident, ip, UA_CLI, {}, None, True)
    aws.pull(t + 9 * sec, ident, ip, UA_DOCKER, "prod/payments-api", "latest", layers=4)
    sc.end()

    # 3. A staging workload's Vault token sweeps production secrets from three pods.
    start = t2("14:10")
    meta = {
        "role": "orders",
        "service_account_name": "orders",
        "service_account_namespace": "staging",
        "service_account_uid": sc.uuid(),
    }
    tok = vault.token("kubernetes-staging-orders", ["staging-orders", "legacy-shared"], meta)
    sc.begin(
        Story(
            "vault_prod_sweep",
            "A staging pod is compromised; its token (which an old "
            "shared policy lets read production paths) walks secret/data/prod/ from three "
            "pods and probes paths it cannot read.",
            (
                "Vault Production Secret Read By A Non-Production Identity",
                "Vault Token Read Many Distinct Secrets Quickly",
                "Vault Burst Of Permission Denied Responses",
                "Vault Token Used From Several Addresses",
            ),
        ),
        ["kubernetes-staging-orders"],
        start - timedelta(minutes=20),
        start + timedelta(minutes=20),
    )
    pods = ["10.31.7.23", "10.31.7.24", "10.31.8.5"]
    t = start
    paths = [
        f"secret/data/prod/{svc}/{name}"
        for svc in SERVICES
        for name in ("db", "api-keys", "tls", "oauth")
    ][:22]
    for i, path in enumerate(paths):
        t = vault.call(t + timedelta(seconds=rng.randint(2, 5)), tok, "read", path, pods[i % 3])
    for i in range(12):
        t = vault.call(
            t + timedelta(seconds=rng.randint(1, 3)),
            tok,
            "read",
            f"secret/data/prod/payments/{['stripe', 'adyen', 'hsm', 'pci'][i % 4]}-{i}",
            pods[0],
            denied=True,
        )
    sc.end()

    # 4. An ECR repository is opened to everyone and pulled by a foreign account.
    start = t2("11:00")
    sc.begin(
        Story(
            "ecr_repo_made_public",
            "A phished platform engineer's SSO session sets a "
            "wildcard repository policy on prod/orders; 40 minutes later an unknown AWS "
            "account pulls the image.",
            (
                "ECR Repository Policy Opened To Everyone",
                "ECR Image Pulled By An Account Outside The Organization",
                "ECR Repository Made Public Then Pulled From Outside",
            ),
        ),
        [],
        start,
        start,
    )
    policy = (
        '{"Version":"2012-10-17","Statement":[{"Sid":"AllowPull","Effect":"Allow",'
        '"Principal":"*","Action":["ecr:BatchGetImage","ecr:GetDownloadUrlForLayer"]}]}'
    )
    aws.ecr(
        start,
        "SetRepositoryPolicy",
        aws.sso("maya@acme.example", admin=True),
        f"{ATTACKER}21",
        UA_CONSOLE,
        {
            "repositoryName": "prod/orders",
            "registryId": ACCOUNT,
            "policyText": policy,
            "force": False,
        },
        {"registryId": ACCOUNT, "repositoryName": "prod/orders", "policyText": policy},
        False,
        "prod/orders",
    )
    outsider = aws.user("deploy", EXTERNAL_ACCOUNT)
    aws.pull(t2("11:40"), outsider, f"{ATTACKER}120", UA_DOCKER, "prod/orders", "latest", layers=3)
    sc.end()

    # 5. Audit logging switched off everywhere, then a production secret is replaced.
    start = t2("16:20")
    sc.begin(
        Story(
            "audit_logging_disabled",
            "An attacker with the GitHub, GitLab, Vault and AWS "
            "access of an administrator removes audit streaming and audit devices, narrows "
            "the CloudTrail selectors and replaces a production secret.",
            (
                "GitHub Audit Log Streaming Removed",
                "Vault Audit Device Disabled",
                "GitLab Audit Event Streaming Destination Deleted",
                "CloudTrail Event Selectors Or Event Data Store Ingestion Changed",
                "Vault Production Secret Written By A Person",
            ),
        ),
        [],
        start,
        start,
    )
    ip = f"{ATTACKER}17"
    ci.github(
        start,
        "audit_log_streaming.destroy",
        "jdoe-acme",
        ip,
        operation_type="remove",
        stream_type="Splunk",
    )
    admin = vault.token(
        "oidc-jdoe@acme.example",
        ["vault-admin"],
        {"role": "admin", "username": "jdoe@acme.example"},
    )
    vault.call(start + 2 * timedelta(minutes=1), admin, "delete", "sys/audit/file", ip)
    ci.gitlab(
        start + timedelta(minutes=5),
        "destroy_event_streaming_destination",
        "jdoe",
        ip,
        "acme-infra",
        "AuditEvents::ExternalAuditEventDestination",
        "https://siem.acme.example",
        "Destroy event streaming destination https://siem.acme.example",
    )
    aws.event(
        start + timedelta(minutes=7),
        "cloudtrail.amazonaws.com",
        "PutEventSelectors",
        aws.sso("jdoe@acme.example", admin=True),
        ip,
        UA_CLI,
        {
            "trailName": "org-trail",
            "eventSelectors": [
                {
                    "readWriteType": "ReadOnly",
                    "includeManagementEvents": True,
                    "dataResources": [],
                    "excludeManagementEventSources": [],
                }
            ],
        },
        {"trailARN": f"arn:aws:cloudtrail:{REGION}:{ACCOUNT}:trail/org-trail"},
    )
    vault.call(
        start + timedelta(minutes=9),
        admin,
        "update",
        "secret/data/prod/payments-api/api-keys",
        ip,
        data={"data": vault.hmac()},
    )
    sc.end()

    # 6. The cross-source chain: token created, pulls from a new network, production secret read.
    start = t2("15:00")
    sc.begin(
        Story(
            "ci_credential_chain",
            "Someone with the svc-release password creates a GitLab "
            "personal access token, pulls release images from a VPS and reads the "
            "production signing key from Vault within the hour.",
            (
                "CI Credential Created, Then Pulls From A New Network, "
                "Then Production Secret Reads",
                "Image Pull From A Network Never Seen For This Principal",
            ),
        ),
        ["svc-release", "userpass-svc-release"],
        t2("14:00"),
        t2("17:00"),
    )
    ip = f"{ATTACKER}99"
    ci.gitlab(
        start,
        "personal_access_token_created",
        "svc-release",
        ip,
        "svc-release",
        "PersonalAccessToken",
        "release-automation",
        "Created personal access token with scopes: [read_registry, api]",
    )
    t = start + timedelta(minutes=12)
    for tool in ("tools/terraform", "tools/helm", "tools/kubectl"):
        t = reg.dist_pull(
            t + timedelta(seconds=20), "svc-release", ip, tool, "latest", agent=UA_DOCKER
        )
    rel = vault.token("userpass-svc-release", ["release"], {"username": "svc-release"})
    t = vault.call(
        start + timedelta(minutes=30), None, "update", "auth/userpass/login/svc-release", ip
    )
    vault.call(t + 4 * sec, rel, "read", "secret/data/prod/release/signing-key", ip)
    sc.end()

    # 7. A pull-request workflow assumes the deployment role and backdoors production.
    start = t2("12:05")
    sc.begin(
        Story(
            "oidc_pull_request_abuse",
            "A pull request from a fork changes the workflow; "
            "the loose trust policy lets it assume the ECR role, push prod/payments-api:latest "
            "and attach AdministratorAccess to the deploy role.",
            (
                "CI OIDC Role Assumed From An Untrusted Repository Or Branch",
                "Image Tagged latest Pushed To A Production Repository",
                "Administrator Policy Attached To A CI Role",
            ),
        ),
        ["GitHubActions"],
        start,
        start + timedelta(minutes=30),
    )
    sub = f"repo:{GH_ORG}/payments-api:pull_request"
    ip = f"{ATTACKER}150"
    aws.event(
        start,
        "sts.amazonaws.com",
        "AssumeRoleWithWebIdentity",
        aws.web_identity(sub),
        ip,
        UA_GHA,
        {
            "roleArn": f"arn:aws:iam::{ACCOUNT}:role/gha-ecr-push",
            "roleSessionName": "GitHubActions",
            "durationSeconds": 3600,
        },
        {
            "subjectFromWebIdentityToken": sub,
            "provider": GH_PROVIDER,
            "audience": "sts.amazonaws.com",
            "assumedRoleUser": {
                "assumedRoleId": "AROAGHAECRPUSH:GitHubActions",
                "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/gha-ecr-push/GitHubActions",
            },
        },
        read_only=True,
        extra={"identityProviderConnectionVerificationMethod": "IAMTrustStore"},
    )
    ident = aws.role("gha-ecr-push", "GitHubActions")
    aws.auth_token(start + 20 * sec, ident, ip, UA_DOCKER)
    aws.push(start + timedelta(minutes=3), ident, ip, UA_DOCKER, "prod/payments-api", "latest")
    aws.event(
        start + timedelta(minutes=6),
        "iam.amazonaws.com",
        "AttachRolePolicy",
        ident,
        ip,
        UA_CLI,
        {"roleName": "gha-deploy", "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"},
    )
    sc.end()

    # 8. Registry tampering and destruction with a stolen platform-admin session.
    start = t2("17:00")
    sc.begin(
        Story(
            "registry_tampering",
            "With a stolen platform-admin session the attacker makes "
            "tags mutable, disables scanning, replicates images to a foreign account, adds "
            "an unvetted pull-through upstream, deletes images in bulk, and in Harbor creates "
            "a robot account, changes the configuration and deletes a project.",
            (
                "ECR Repository Switched To Mutable Tags",
                "ECR Image Scanning Disabled",
                "ECR Replication To A Registry Outside The Organization",
                "ECR Pull Through Cache Rule For An Unapproved Upstream Registry",
                "Bulk Deletion Of Images Or Repositories",
                "Harbor Robot Account Created",
                "Harbor System Configuration Changed",
                "Harbor Project Or Repository Deleted",
            ),
        ),
        ["mallory", "admin"],
        start - timedelta(minutes=15),
        start + timedelta(minutes=30),
    )
    ident = aws.role("platform-admin", "mallory")
    ip = f"{ATTACKER}200"
    aws.ecr(
        start,
        "PutImageTagMutability",
        ident,
        ip,
        UA_CLI,
        {
            "repositoryName": "prod/web-frontend",
            "registryId": ACCOUNT,
            "imageTagMutability": "MUTABLE",
        },
        {
            "registryId": ACCOUNT,
            "repositoryName": "prod/web-frontend",
            "imageTagMutability": "MUTABLE",
        },
        False,
        "prod/web-frontend",
    )
    aws.ecr(
        start + 40 * sec,
        "PutImageScanningConfiguration",
        ident,
        ip,
        UA_CLI,
        {
            "repositoryName": "prod/web-frontend",
            "registryId": ACCOUNT,
            "imageScanningConfiguration": {"scanOnPush": False},
        },
        {
            "registryId": ACCOUNT,
            "repositoryName": "prod/web-frontend",
            "imageScanningConfiguration": {"scanOnPush": False},
        },
        False,
        "prod/web-frontend",
    )
    replication = {
        "rules": [{"destinations": [{"region": "us-east-1", "registryId": EXTERNAL_ACCOUNT}]}]
    }
    aws.ecr(
        start + 80 * sec,
        "PutReplicationConfiguration",
        ident,
        ip,
        UA_CLI,
        {"replicationConfiguration": replication},
        {"replicationConfiguration": replication},
    )
    aws.ecr(
        start + 120 * sec,
        "CreatePullThroughCacheRule",
        ident,
        ip,
        UA_CLI,
        {
            "ecrRepositoryPrefix": "ghcr",
            "upstreamRegistryUrl": "ghcr.io",
            "credentialArn": (
                f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:ecr-pullthroughcache/ghcr"
            ),
        },
        {"ecrRepositoryPrefix": "ghcr", "upstreamRegistryUrl": "ghcr.io", "registryId": ACCOUNT},
    )
    t = start + timedelta(minutes=4)
    for i in range(12):
        repo = f"prod/{SERVICES[i % len(SERVICES)]}"
        t += timedelta(seconds=rng.randint(10, 25))
        ids = [{"imageTag": f"1.{40 - n}.0"} for n in range(5)]
        aws.ecr(
            t,
            "BatchDeleteImage",
            ident,
            ip,
            UA_CLI,
            {"repositoryName": repo, "registryId": ACCOUNT, "imageIds": ids},
            {"imageIds": [{"imageDigest": sc.digest(), **x} for x in ids], "failures": []},
            False,
            repo,
        )
    t = start + timedelta(minutes=10)
    reg.harbor(t, "admin", "create", "robot$apps+backup", "robot")
    reg.harbor(t + timedelta(minutes=1), "admin", "update", "configuration", "configuration")
    reg.harbor(t + timedelta(minutes=3), "admin", "delete", "apps", "project")
    sc.end()

    # 9. GitHub hardening drift by a compromised contractor account, then a clone sweep.
    start = t2("10:30")
    sc.begin(
        Story(
            "github_contractor_takeover",
            "A contractor's fresh personal access token is "
            "phished; the attacker removes branch protection, registers an organization "
            "runner, overwrites a deployment secret, makes a repository public and clones "
            "sixteen repositories from three addresses.",
            (
                "GitHub Branch Protection Or Ruleset Removed",
                "GitHub Self-Hosted Runner Registered At Organization Or Enterprise Level",
                "GitHub Actions Secret Updated Or Removed By A Person",
                "GitHub Repository Visibility Changed To Public",
                "GitHub Account Cloned Many Repositories Quickly",
                "GitHub Personal Access Token Used From Several Addresses",
                "GitHub Personal Access Token Created Then Used From A New Network",
            ),
        ),
        ["kim-contractor"],
        start,
        start + timedelta(minutes=60),
    )
    actor = "kim-contractor"
    ci.github(
        start,
        "personal_access_token.access_granted",
        actor,
        "198.51.100.77",
        operation_type="create",
        user=actor,
    )
    ip = f"{ATTACKER}61"
    t = start + timedelta(minutes=10)
    ci.github(
        t,
        "protected_branch.destroy",
        actor,
        ip,
        pat=True,
        repo=f"{GH_ORG}/payments-api",
        branch="main",
        name="main",
        operation_type="remove",
    )
    ci.github(
        t + 30 * sec,
        "org.register_self_hosted_runner",
        actor,
        ip,
        pat=True,
        runner_name="build-xl-07",
        runner_group_name="Default",
        operation_type="create",
    )
    ci.github(
        t + 60 * sec,
        "repo.update_actions_secret",
        actor,
        ip,
        pat=True,
        repo=f"{GH_ORG}/payments-api",
        secret_name="AWS_ROLE_ARN",
        operation_type="modify",
    )
    ci.github(
        t + 90 * sec,
        "repo.access",
        actor,
        ip,
        pat=True,
        repo=f"{GH_ORG}/infra-tools",
        visibility="public",
        previous_visibility="private",
        operation_type="modify",
    )
    t += timedelta(minutes=5)
    clone_repos = [
        *GH_REPOS,
        "ledger",
        "kyc",
        "vpn-config",
        "helm-charts",
        "docs",
        "sre-runbooks",
        "data-pipeline",
        "ml-models",
    ]
    for i, repo in enumerate(clone_repos):
        t += timedelta(seconds=rng.randint(8, 20))
        ci.github(
            t,
            "git.clone",
            actor,
            f"{ATTACKER}{61 + i % 3}",
            pat=True,
            repo=f"{GH_ORG}/{repo}",
            repository=f"{GH_ORG}/{repo}",
            transport_protocol_name="http",
            user_agent=UA_GIT,
        )
    sc.end()

    # 10. Vault root token in use, a backdoor policy, and a revoked token replayed.
    start = t2("19:10")
    sc.begin(
        Story(
            "vault_root_and_revoked_token",
            "A leftover root token is used from a jump "
            "host to write a backdoor policy; responders revoke a stolen AppRole token, "
            "which the attacker tries again from outside.",
            (
                "Vault Root Token Used",
                "Vault Policy Or Auth Method Changed Outside Infrastructure As Code",
                "Vault Token Used After It Was Revoked",
            ),
        ),
        [],
        start,
        start,
    )
    root = VaultToken(vault.hmac(), vault.hmac(), "root", ["root"], {}, "")
    ip = "10.40.9.14"
    t = vault.call(start, root, "read", "sys/mounts", ip)
    vault.call(
        t + 20 * sec,
        root,
        "update",
        "sys/policies/acl/ops-debug",
        ip,
        data={"policy": vault.hmac()},
    )
    stolen = vault.token("approle", ["payments-batch"], {"role_name": "payments-batch"})
    secops = vault.token(
        "oidc-secops@acme.example",
        ["secops"],
        {"role": "secops", "username": "secops@acme.example"},
    )
    vault.call(
        t2("20:00"),
        secops,
        "update",
        "auth/token/revoke",
        "198.51.100.40",
        data={"token": stolen.token},
    )
    for k in range(3):
        vault.call(
            t2("20:30") + k * 40 * sec,
            None,
            "read",
            "secret/data/prod/payments-api/db",
            f"{ATTACKER}33",
            denied=True,
            client_token=stolen.token,
        )
    sc.end()

    # 11. Console without MFA, a Secrets Manager sweep, and the root user.
    start = t2("21:00")
    sc.begin(
        Story(
            "console_and_secrets_sweep",
            "A forgotten IAM user's password is sprayed: "
            "console sign-in without MFA, then 14 Secrets Manager secrets read in three "
            "minutes; later the root user signs in and creates an IAM user.",
            (
                "Console Login Without MFA From Outside The Office Network",
                "Secrets Manager Burst Of Distinct Secret Reads",
                "Root User Acting On Registry, Identity Or Logging Services",
            ),
        ),
        [],
        start,
        start,
    )
    ip = f"{ATTACKER}70"
    temp = aws.user("dev-temp")
    aws.event(
        start,
        "signin.amazonaws.com",
        "ConsoleLogin",
        temp,
        ip,
        UA_CONSOLE,
        None,
        {"ConsoleLogin": "Success"},
        extra={
            "LoginTo": "https://console.aws.amazon.com/console/home",
            "MobileVersion": "No",
            "MFAUsed": "No",
        },
        event_type="AwsConsoleSignIn",
    )
    t = start + timedelta(minutes=2)
    for i in range(14):
        t += timedelta(seconds=rng.randint(5, 12))
        svc = SERVICES[i % len(SERVICES)]
        kind = ("third-party", "db-master", "webhook")[i // len(SERVICES)]
        aws.event(
            t,
            "secretsmanager.amazonaws.com",
            "GetSecretValue",
            temp,
            ip,
            UA_CONSOLE,
            {"secretId": f"prod/{svc}/{kind}"},
            None,
            read_only=True,
        )
    t = t2("21:40")
    aws.event(
        t,
        "signin.amazonaws.com",
        "ConsoleLogin",
        aws.root(),
        f"{ATTACKER}71",
        UA_CONSOLE,
        None,
        {"ConsoleLogin": "Success"},
        extra={
            "LoginTo": "https://console.aws.amazon.com/console/home",
            "MobileVersion": "No",
            "MFAUsed": "No",
        },
        event_type="AwsConsoleSignIn",
    )
    aws.event(
        t + timedelta(minutes=2),
        "iam.amazonaws.com",
        "CreateUser",
        aws.root(),
        f"{ATTACKER}71",
        UA_CONSOLE,
        {"userName": "backup-admin"},
        {
            "user": {
                "userName": "backup-admin",
                "path": "/",
                "arn": f"arn:aws:iam::{ACCOUNT}:user/backup-admin",
            }
        },
    )
    sc.end()

    # 12. Registry abuse: anonymous pull, blob mount, tag enumeration, unvetted image.
    start = t2("08:30")
    sc.begin(
        Story(
            "registry_abuse",
            "A proxy misconfiguration lets anonymous pulls through; a "
            "compromised developer account mounts production layers into a scratch "
            "repository, enumerates release tags in Harbor and pulls a community image "
            "through the Docker Hub proxy cache.",
            (
                "Anonymous Pull From A Private Registry Repository",
                "Registry Blob Mounted From A Production Repository Into Another Repository",
                "Burst Of Tag Pulls In One Repository By One Principal",
                "Image Pulled Through A Proxy Cache From An Unapproved Upstream Namespace",
            ),
        ),
        ["eve"],
        start - timedelta(minutes=10),
        start + timedelta(minutes=60),
    )
    reg.dist_pull(
        start,
        None,
        f"{ATTACKER}90",
        "prod/auth-service",
        "2.3.1",
        layers=2,
        agent="Go-http-client/1.1",
    )
    t = start + timedelta(minutes=15)
    for _ in range(3):
        t += timedelta(seconds=2)
        reg.dist(
            t,
            "mount",
            "eve",
            "198.51.100.66",
            "eve/scratch",
            from_repo="prod/payments-api",
            agent=UA_DOCKER,
        )
    t = start + timedelta(minutes=25)
    for n in range(24):
        t += timedelta(seconds=rng.randint(3, 8))
        reg.harbor(t, "eve", "pull", f"apps/payments-api:1.{n + 20}.0")
    reg.harbor(start + timedelta(minutes=45), "eve", "pull", "dockerhub-cache/xmrig/xmrig:latest")
    sc.end()

    # 13. GitLab project takeover by the same compromised developer.
    start = t2("09:30")
    sc.begin(
        Story(
            "gitlab_project_takeover",
            "The compromised developer unprotects the main "
            "branch of the cluster configuration, changes a CI variable, registers a runner "
            "and makes the project public.",
            (
                "GitLab Protected Branch Removed",
                "GitLab CI/CD Variable Changed By A Person",
                "GitLab Runner Registered Or Created",
                "GitLab Project Visibility Changed To Public",
            ),
        ),
        [],
        start,
        start,
    )
    ip = f"{ATTACKER}66"
    project = GITLAB_PROJECTS[1]
    ci.gitlab(
        start,
        "protected_branch_removed",
        "eve",
        ip,
        project,
        "ProtectedBranch",
        "main",
        "Unprotected branch main",
    )
    ci.gitlab(
        start + timedelta(minutes=2),
        "ci_variable_updated",
        "eve",
        ip,
        project,
        "Ci::Variable",
        "KUBE_TOKEN",
        "Changed variable KUBE_TOKEN",
    )
    ci.gitlab(
        start + timedelta(minutes=4),
        "ci_runner_registered",
        "eve",
        ip,
        project,
        "Ci::Runner",
        "runner-6613",
        "Registered project CI runner",
        runner_type="project_type",
    )
    ci.gitlab(
        start + timedelta(minutes=6),
        "project_visibility_level_updated",
        "eve",
        ip,
        project,
        "Project",
        project,
        "Changed visibility_level from Private to Public",
        change="visibility_level",
        **{"from": "Private", "to": "Public"},
    )
    sc.end()


# ----------------------------------------------------------------------------------------
# Wider AWS coverage: background and stories added after the others, so the records above
# stay byte-identical (they draw from the random generator first).
# ----------------------------------------------------------------------------------------

ASSISTANT_ROLE = "support-assistant-task"
MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"


def cloud_background(sc: Scenario, aws: Aws) -> None:
    """A support assistant calling Bedrock through the day and platform admins opening Session
    Manager shells, on both days (the first day is what the first-seen rules learn)."""
    assistant = aws.role(ASSISTANT_ROLE, "support-assistant")
    admins = [aws.sso(email, admin=True) for email in ("alice@acme.example", "ben@acme.example")]
    for day in (DAY1, DAY2):
        for hour in range(6, 22):
            t = day + timedelta(hours=hour, minutes=sc.rng.randint(0, 59))
            name = sc.rng.choice(("InvokeModel", "Converse"))
            aws.event(
                t,
                "bedrock.amazonaws.com",
                name,
                assistant,
                "10.40.3.17",
                UA_KUBELET,
                {"modelId": MODEL},
                None,
                read_only=True,
            )
        for admin in admins:
            t = day + timedelta(hours=sc.rng.randint(9, 16), minutes=sc.rng.randint(0, 59))
            target = sc.rng.choice(NODES)
            session = f"{admin['principalId'].partition(':')[2]}-{sc.hexid(17)}"
            aws.event(
                t,
                "ssm.amazonaws.com",
                "StartSession",
                admin,
                "198.51.100.23",
                UA_CONSOLE,
                {"target": target},
                {
                    "sessionId": session,
                    "tokenValue": "Value hidden due to security reasons.",
                    "streamUrl": f"wss://ssmmessages.{REGION}.amazonaws.com/v1/data-channel/{session}",
                },
            )


def cloud_attacks(sc: Scenario, aws: Aws) -> None:
    """Three stories over the AWS control plane: IAM and Lambda backdoors, instance access and
    credential harvesting, exfiltration and defense impairment."""
    sec = timedelta(seconds=1)
    vps = f"{ATTACKER}130"
    admin = aws.sso("nina@acme.example", admin=True)

    # 14. IAM and Lambda backdoors from a phished platform administrator's session.
    start = t2("15:05")
    sc.begin(
        Story(
            "aws_iam_backdoors",
            "A phished platform administrator's SSO session plants backdoors: a console "
            "password and an access key for the backup-sync user, role trust policies open to "
            "every account and to the attacker's account, a Roles Anywhere trust anchor for the "
            "attacker's CA, Lambda invoke permissions for everyone and for the attacker's "
            "account, new function code and a layer; the new key then asks for a federation "
            "token.",
            (
                "IAM Console Password Set For Another User",
                "IAM Access Key Created For Another User",
                "IAM Role Trust Policy Opened To Every AWS Account",
                "IAM Role Trust Policy Grants An Account Outside The Organization",
                "IAM Roles Anywhere Trust Anchor Created Or Changed",
                "Lambda Function Or Layer Policy Opened To Everyone",
                "Lambda Function Or Layer Policy Grants An Account Outside The Organization",
                "Lambda Function Code Or Layers Changed By A Person",
                "STS Federation Token Requested By An IAM User",
            ),
        ),
        [],
        start,
        start,
    )
    iam = "iam.amazonaws.com"
    t = start
    aws.event(
        t,
        iam,
        "CreateLoginProfile",
        admin,
        vps,
        UA_CONSOLE,
        {"userName": "backup-sync", "passwordResetRequired": False},
        {
            "loginProfile": {
                "userName": "backup-sync",
                "createDate": "Nov 24, 2026 3:05:00 PM",
                "passwordResetRequired": False,
            }
        },
    )
    t += 40 * sec
    key_id = "AKIA" + sc.hexid(16).upper()
    aws.event(
        t,
        iam,
        "CreateAccessKey",
        admin,
        vps,
        UA_CLI,
        {"userName": "backup-sync"},
        {
            "accessKey": {
                "accessKeyId": key_id,
                "status": "Active",
                "userName": "backup-sync",
                "createDate": "Nov 24, 2026 3:05:40 PM",
            }
        },
    )
    t += 2 * timedelta(minutes=1)
    # Trust policies opened to every account, then to the attacker's own account.
    for role, principal in (
        ("ops-readonly", "*"),
        ("billing-readonly", f"arn:aws:iam::{EXTERNAL_ACCOUNT}:root"),
    ):
        statement = {"Effect": "Allow", "Principal": {"AWS": principal}, "Action": "sts:AssumeRole"}
        trust = orjson.dumps({"Version": "2012-10-17", "Statement": [statement]}).decode()
        req = {"roleName": role, "policyDocument": trust}
        aws.event(t, iam, "UpdateAssumeRolePolicy", admin, vps, UA_CLI, req, None)
        t += 50 * sec
    t += 3 * timedelta(minutes=1)
    aws.event(
        t,
        "rolesanywhere.amazonaws.com",
        "CreateTrustAnchor",
        admin,
        vps,
        UA_CLI,
        {
            "name": "ops-laptops",
            "enabled": True,
            "source": {
                "sourceType": "CERTIFICATE_BUNDLE",
                "sourceData": {"x509CertificateData": "-----BEGIN CERTIFICATE-----\nMIIB..."},
            },
        },
        {"trustAnchor": {"trustAnchorId": sc.uuid(), "name": "ops-laptops", "enabled": True}},
    )
    t += 4 * timedelta(minutes=1)
    lam = "lambda.amazonaws.com"
    # Invoke permissions for everyone, then for the attacker's own account.
    for function, principal in (("orders-export", "*"), ("payments-webhook", EXTERNAL_ACCOUNT)):
        req = {
            "functionName": function,
            "statementId": "support",
            "action": "lambda:InvokeFunction",
            "principal": principal,
        }
        aws.event(t, lam, "AddPermission20150331v2", admin, vps, UA_CLI, req, None)
        t += 20 * sec
    t += 50 * sec
    aws.event(
        t,
        lam,
        "UpdateFunctionCode20150331v2",
        admin,
        vps,
        UA_CLI,
        {"functionName": "orders-export", "publish": True},
        {"functionName": "orders-export", "runtime": "python3.12", "codeSha256": sc.hexid(44)},
    )
    t += 30 * sec
    aws.event(
        t,
        lam,
        "UpdateFunctionConfiguration20150331v2",
        admin,
        vps,
        UA_CLI,
        {
            "functionName": "payments-webhook",
            "layers": [f"arn:aws:lambda:{REGION}:{EXTERNAL_ACCOUNT}:layer:otel-wrapper:3"],
        },
        None,
    )
    t += 6 * timedelta(minutes=1)
    backup = aws.user("backup-sync")
    backup["accessKeyId"] = key_id
    aws.event(
        t,
        "sts.amazonaws.com",
        "GetFederationToken",
        backup,
        f"{ATTACKER}131",
        UA_CLI,
        {
            "name": "backup",
            "durationSeconds": 129600,
            "policyArns": [{"arn": "arn:aws:iam::aws:policy/AdministratorAccess"}],
        },
        {
            "federatedUser": {
                "federatedUserId": f"{ACCOUNT}:backup",
                "arn": f"arn:aws:sts::{ACCOUNT}:federated-user/backup",
            }
        },
        read_only=True,
    )
    sc.end()

    # 15. A leaked long-term key of a legacy deployment user walks the EC2 fleet.
    start = t2("16:20")
    sc.begin(
        Story(
            "aws_instance_access",
            "The access key of the legacy-deployer user leaks; from a VPS it reads the user data "
            "of six nodes, rewrites one node's user data, pushes SSH keys with Instance Connect "
            "(SSH and serial console), opens a Session Manager shell, decrypts twelve "
            "SecureString parameters, reads the production secrets in one batch and fetches a "
            "Windows administrator password.",
            (
                "EC2 User Data Read For Many Instances",
                "EC2 Instance User Data Modified",
                "SSH Key Pushed With EC2 Instance Connect",
                "SSM Session Started By A Principal Never Seen Starting Sessions",
                "SSM SecureString Parameters Swept With Decryption",
                "Secrets Manager Secrets Retrieved In A Batch",
                "EC2 Windows Administrator Password Retrieved",
            ),
        ),
        [],
        start,
        start,
    )
    ip = f"{ATTACKER}140"
    who = aws.user("legacy-deployer")
    ec2 = "ec2.amazonaws.com"
    t = start
    for node in NODES[:6]:
        t += timedelta(seconds=sc.rng.randint(8, 20))
        aws.event(
            t,
            ec2,
            "DescribeInstanceAttribute",
            who,
            ip,
            UA_CLI,
            {"instanceId": node, "attribute": "userData"},
            None,
            read_only=True,
        )
    t += 3 * timedelta(minutes=1)
    aws.event(
        t,
        ec2,
        "ModifyInstanceAttribute",
        who,
        ip,
        UA_CLI,
        {"instanceId": NODES[2], "userData": "<sensitiveDataRemoved>"},
        {"_return": True},
    )
    t += 2 * timedelta(minutes=1)
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI" + sc.hexid(40)
    aws.event(
        t,
        "ec2-instance-connect.amazonaws.com",
        "SendSSHPublicKey",
        who,
        ip,
        UA_CLI,
        {"instanceId": NODES[3], "osUser": "ec2-user", "sSHKey": {"publicKey": key}},
        {"requestId": sc.uuid(), "success": True},
    )
    t += 40 * sec
    aws.event(
        t,
        "ec2-instance-connect.amazonaws.com",
        "SendSerialConsoleSSHPublicKey",
        who,
        ip,
        UA_CLI,
        {"instanceId": NODES[3], "serialPort": 0, "sSHPublicKey": key},
        {"requestId": sc.uuid(), "success": True},
    )
    t += 2 * timedelta(minutes=1)
    session = f"legacy-deployer-{sc.hexid(17)}"
    aws.event(
        t,
        "ssm.amazonaws.com",
        "StartSession",
        who,
        ip,
        UA_CLI,
        {"target": NODES[4]},
        {
            "sessionId": session,
            "tokenValue": "Value hidden due to security reasons.",
            "streamUrl": f"wss://ssmmessages.{REGION}.amazonaws.com/v1/data-channel/{session}",
        },
    )
    t += 3 * timedelta(minutes=1)
    for i in range(12):
        t += timedelta(seconds=sc.rng.randint(4, 12))
        svc = SERVICES[i % len(SERVICES)]
        kind = ("db-password", "api-token")[i // len(SERVICES)]
        aws.event(
            t,
            "ssm.amazonaws.com",
            "GetParameter",
            who,
            ip,
            UA_CLI,
            {"name": f"/prod/{svc}/{kind}", "withDecryption": True},
            None,
            read_only=True,
        )
    t += 2 * timedelta(minutes=1)
    aws.event(
        t,
        "secretsmanager.amazonaws.com",
        "BatchGetSecretValue",
        who,
        ip,
        UA_CLI,
        {"filters": [{"key": "name", "values": ["prod"]}], "maxResults": 20},
        None,
        read_only=True,
    )
    t += 90 * sec
    aws.event(
        t,
        ec2,
        "GetPasswordData",
        who,
        ip,
        UA_CLI,
        {"instanceId": "i-0c7d1e2f3a4b5c6d7"},
        None,
        read_only=True,
    )
    sc.end()

    # 16. Exfiltration and defense impairment with the same phished administrator session.
    start = t2("17:30")
    sc.begin(
        Story(
            "aws_exfiltration_and_evasion",
            "The phished administrator session stops the CloudTrail trail, deletes VPC flow logs "
            "and DNS query logging, opens SSH to the internet, makes an EBS and an RDS snapshot "
            "public, shares an AMI with the attacker's account, launches GPU instances, tries a "
            "Bedrock model and finally takes the account out of the organization.",
            (
                "CloudTrail Trail Stopped, Deleted Or Weakened",
                "VPC Flow Logs Deleted",
                "Route 53 DNS Query Logging Deleted Or Disassociated",
                "Security Group Opened To The Internet",
                "Snapshot Or Machine Image Shared Publicly",
                "Snapshot Or Machine Image Shared With An Account Outside The Organization",
                "GPU Or Very Large EC2 Instances Launched",
                "Bedrock Model Invoked By A Principal Never Seen Invoking Models",
                "Account Left The AWS Organization",
            ),
        ),
        [],
        start,
        start,
    )
    ip = f"{ATTACKER}150"
    t = start
    aws.event(
        t,
        "cloudtrail.amazonaws.com",
        "StopLogging",
        admin,
        ip,
        UA_CLI,
        {"name": f"arn:aws:cloudtrail:{REGION}:{ACCOUNT}:trail/org-audit"},
        None,
    )
    t += 70 * sec
    aws.event(
        t,
        ec2,
        "DeleteFlowLogs",
        admin,
        ip,
        UA_CLI,
        {"DeleteFlowLogsRequest": {"FlowLogId": {"tag": 1, "content": "fl-0b7e2c4d6f8a1b3c5"}}},
        {
            "DeleteFlowLogsResponse": {
                "xmlns": "http://ec2.amazonaws.com/doc/2016-11-15/",
                "requestId": sc.uuid(),
                "unsuccessful": "",
            }
        },
    )
    t += 45 * sec
    aws.event(
        t,
        "route53resolver.amazonaws.com",
        "DisassociateResolverQueryLogConfig",
        admin,
        ip,
        UA_CLI,
        {"resolverQueryLogConfigId": "rqlc-8ca61fe7c1e5b3a2", "resourceId": "vpc-0e4d2c1b"},
        None,
    )
    t += 3 * timedelta(minutes=1)
    perm = {
        "ipProtocol": "tcp",
        "fromPort": 22,
        "toPort": 22,
        "groups": {},
        "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}]},
        "ipv6Ranges": {},
        "prefixListIds": {},
    }
    aws.event(
        t,
        ec2,
        "AuthorizeSecurityGroupIngress",
        admin,
        ip,
        UA_CLI,
        {"groupId": "sg-0f3e2d1c0b9a8f7e6", "ipPermissions": {"items": [perm]}},
        {"_return": True},
    )
    t += 5 * timedelta(minutes=1)
    aws.event(
        t,
        ec2,
        "ModifySnapshotAttribute",
        admin,
        ip,
        UA_CLI,
        {
            "snapshotId": "snap-0c1d2e3f4a5b6c7d8",
            "createVolumePermission": {"add": {"items": [{"group": "all"}]}},
            "attributeType": "CREATE_VOLUME_PERMISSION",
        },
        {"_return": True},
    )
    t += 2 * timedelta(minutes=1)
    aws.event(
        t,
        "rds.amazonaws.com",
        "ModifyDBSnapshotAttribute",
        admin,
        ip,
        UA_CLI,
        {
            "dBSnapshotIdentifier": "orders-nightly-2026-11-23",
            "attributeName": "restore",
            "valuesToAdd": ["all"],
        },
        None,
    )
    t += 90 * sec
    aws.event(
        t,
        ec2,
        "ModifyImageAttribute",
        admin,
        ip,
        UA_CLI,
        {
            "imageId": "ami-0e1f2a3b4c5d6e7f8",
            "launchPermission": {"add": {"items": [{"userId": EXTERNAL_ACCOUNT}]}},
            "attributeType": "launchPermission",
        },
        {"_return": True},
    )
    t += 6 * timedelta(minutes=1)
    aws.event(
        t,
        ec2,
        "RunInstances",
        admin,
        ip,
        UA_CLI,
        {
            "instancesSet": {
                "items": [{"imageId": "ami-0a1b2c3d4e5f6a7b8", "minCount": 4, "maxCount": 4}]
            },
            "instanceType": "p4d.24xlarge",
            "blockDeviceMapping": {},
            "monitoring": {"enabled": False},
            "disableApiTermination": False,
            "clientToken": sc.uuid(),
        },
        None,
    )
    t += 4 * timedelta(minutes=1)
    aws.event(
        t,
        "bedrock.amazonaws.com",
        "InvokeModel",
        admin,
        ip,
        UA_CLI,
        {"modelId": MODEL},
        None,
        read_only=True,
    )
    t += 10 * timedelta(minutes=1)
    aws.event(t, "organizations.amazonaws.com", "LeaveOrganization", admin, ip, UA_CLI, None, None)
    sc.end()


# ----------------------------------------------------------------------------------------
# Output
# ----------------------------------------------------------------------------------------


def principal(family: str, rec: dict[str, Any]) -> set[str]:
    """The names a record's actor goes by (as the normalizers put them in user.name)."""
    if family == "cloudtrail":
        ui = rec.get("userIdentity") or {}
        names = {ui.get("userName"), (ui.get("arn") or "").rpartition("/")[2]}
    elif family == "ci":
        names = {rec.get("actor"), rec.get("author_name")}
    elif family == "vault":
        auth = rec.get("auth") or {}
        names = {auth.get("display_name"), (auth.get("metadata") or {}).get("username")}
    else:
        names = {(rec.get("actor") or {}).get("name"), rec.get("username")}
    return {n for n in names if n}


def event_id(family: str, rec: dict[str, Any]) -> str:
    """The ``event.id`` the normalizers give a record."""
    if family == "cloudtrail":
        return str(rec["eventID"])
    if family == "vault":
        return f"{rec['request']['id']}:{rec['type']}"
    if family == "ci":
        return str(rec["_document_id"]) if "_document_id" in rec else f"gitlab:{rec['id']}"
    return f"harbor:{rec['id']}" if "op_time" in rec else str(rec["id"])


def generate(seed: int = SEED) -> Scenario:
    """Build the whole scenario in memory (deterministic for a given seed)."""
    sc = Scenario(random.Random(seed))
    bg = Background(sc)
    bg.day(DAY1)
    bg.day(DAY2)
    benign_count = len(sc.items)
    attacks(sc, bg)
    cloud_background(sc, bg.aws)
    cloud_attacks(sc, bg.aws)

    def quiet(item: Item) -> bool:
        names = principal(item.family, item.record)
        return any(names & who and start <= item.time <= end for who, start, end in sc.quiet)

    sc.items = [it for i, it in enumerate(sc.items) if i >= benign_count or not quiet(it)]
    sc.items.sort(key=lambda it: it.time)
    return sc


def write(sc: Scenario, out: Path, seed: int = SEED) -> dict[str, int]:
    """Write ``logs/<family>.jsonl`` and ``ground_truth.json`` under ``out``."""
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    for family in ("cloudtrail", "registry", "ci", "vault"):
        items = [it for it in sc.items if it.family == family]
        counts[family] = len(items)
        with (logs / f"{family}.jsonl").open("wb") as fh:
            for it in items:
                fh.write(orjson.dumps(it.record) + b"\n")
    truth: dict[str, Any] = {
        "description": "Attack stories of examples/scenario; event ids are event.id of the "
        "normalized events. Every listed rule must raise at least one alert whose events "
        "belong to the story, and no alert may contain an event outside the stories.",
        "seed": seed,
        "days": [DAY1.date().isoformat(), DAY2.date().isoformat()],
        "stories": {},
    }
    for story in sc.stories.values():
        ids = [event_id(it.family, it.record) for it in sc.items if it.story == story.name]
        truth["stories"][story.name] = {
            "summary": story.summary,
            "expected_rules": list(story.rules),
            "event_ids": ids,
        }
    (out / "ground_truth.json").write_bytes(orjson.dumps(truth, option=orjson.OPT_INDENT_2) + b"\n")
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "scenario")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    sc = generate(args.seed)
    counts = write(sc, args.out, args.seed)
    attack = sum(1 for it in sc.items if it.story)
    print(
        f"wrote {sum(counts.values())} records {counts} ({attack} attack records, "
        f"{len(sc.stories)} stories) to {args.out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["event_id", "generate", "main", "principal", "write"]
