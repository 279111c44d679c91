"""AWS CloudTrail records to ECS (mapping table: docs/mappings/cloudtrail.md)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from detector.errors import NormalizeError
from detector.models import Event, LogSource, Origin
from detector.normalize.fields import (
    NO_ORIGIN,
    array,
    compact,
    content_id,
    flag,
    is_ip,
    new_event,
    obj,
    required_text,
    text,
    timestamp,
    verb_type,
)

LOGSOURCE = LogSource("aws", "cloudtrail")

#: ECR API calls that move or remove images (contract: registry.operation).
ECR_OPERATIONS = {
    "BatchGetImage": "pull",
    "GetDownloadUrlForLayer": "pull",
    "PutImage": "push",
    "CompleteLayerUpload": "push",
    "BatchDeleteImage": "delete",
    "DeleteRepository": "delete",
}
_ECR_SOURCES = ("ecr.amazonaws.com", "ecr-public.amazonaws.com")
_AUTH_EVENTS = {
    "ConsoleLogin",
    "AssumeRole",
    "AssumeRoleWithWebIdentity",
    "AssumeRoleWithSAML",
    "GetSessionToken",
    "GetFederationToken",
    "AssumeRoot",
}
#: Request parameters that name the resource an API call acts on, per service; looked up
#: per eventSource so the many calls of other services cost nothing here.
_TARGET_KEYS: dict[str, tuple[str, ...]] = {
    "sts.amazonaws.com": ("roleArn",),
    "secretsmanager.amazonaws.com": ("secretId", "name"),
    "iam.amazonaws.com": (
        "userName",
        "roleName",
        "policyArn",
        "groupName",
        "instanceProfileName",
    ),
    "s3.amazonaws.com": ("bucketName",),
    "lambda.amazonaws.com": ("functionName",),
    "kms.amazonaws.com": ("keyId",),
    "cloudtrail.amazonaws.com": ("name", "trailName"),
    "ssm.amazonaws.com": ("name",),
    "ecr.amazonaws.com": ("repositoryName",),
}
_STR_OR_NONE = frozenset({str, type(None)})
_MFA = {"true": True, "false": False}
_CLASSES: dict[tuple[str, str], tuple[list[str], list[str]]] = {}


def _classify(source: str, name: str) -> tuple[list[str], list[str]]:
    """ECS category and type of an API call, cached per (eventSource, eventName)."""
    key = (source, name)
    hit = _CLASSES.get(key)
    if hit is not None:
        return hit
    op = ECR_OPERATIONS.get(name) if source in _ECR_SOURCES else None
    result: tuple[list[str], list[str]]
    if name in _AUTH_EVENTS:
        result = (["authentication"], ["start"])
    elif source == "iam.amazonaws.com":
        kind = verb_type(name)
        if "User" in name:
            kind = [*kind, "user"]
        elif "Group" in name:
            kind = [*kind, "group"]
        result = (["iam"], kind)
    elif op == "pull":
        result = (["web"], ["access"])
    elif op is not None:
        result = (["configuration"], ["creation" if op == "push" else "deletion"])
    elif name.startswith(("Stop", "Disable", "Update")):
        result = (["configuration"], ["change"])
    else:
        result = (["configuration"], verb_type(name))
    if len(_CLASSES) < 4096:
        _CLASSES[key] = result
    return result


def _user_name(ui: dict[str, Any], ui_type: str | None, arn: str | None) -> str | None:
    """The principal name: userName, the role session name, or the calling service."""
    if ui_type in ("AssumedRole", "FederatedUser"):
        if arn:
            return arn.rpartition("/")[2]
        principal = text(ui, "principalId")
        return principal.rpartition(":")[2] if principal else None
    name = text(ui, "userName")
    if name:
        return name
    if ui_type == "Root":
        return "root"
    if ui_type == "AWSService":
        return text(ui, "invokedBy")
    if arn:
        return arn.rpartition("/")[2] or None
    return text(ui, "principalId")


def _ecr_image(params: dict[str, Any], response: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Tags and digests named by an ECR request/response."""
    tags: list[str] = []
    digests: list[str] = []

    def add(image_id: Any) -> None:
        if type(image_id) is dict:
            tag = image_id.get("imageTag")
            digest = image_id.get("imageDigest")
            if type(tag) is str and tag not in tags:
                tags.append(tag)
            if type(digest) is str and digest not in digests:
                digests.append(digest)

    add(params)
    for image_id in array(params, "imageIds"):
        add(image_id)
    layer = params.get("layerDigest")
    if type(layer) is str:
        digests.append(layer)
    for layer in array(params, "layerDigests"):
        if type(layer) is str and layer not in digests:
            digests.append(layer)
    image = response.get("image")
    if type(image) is dict:
        add(image.get("imageId"))
    for key in ("images", "imageIds"):
        items = response.get(key)
        if type(items) is list:
            for item in items:
                add(item.get("imageId", item) if type(item) is dict else None)
    return tags, digests


def normalize_cloudtrail(record: Mapping[str, Any], origin: Origin = NO_ORIGIN) -> Event:
    """One CloudTrail record (already unwrapped from its envelope) to an :class:`Event`."""
    get = record.get
    name = get("eventName")
    source = get("eventSource")
    address = get("sourceIPAddress")
    agent = get("userAgent")
    region = get("awsRegion")
    event_id = get("eventID")
    error_code = get("errorCode")
    error_message = get("errorMessage")
    account = get("recipientAccountId")
    event_type = get("eventType")
    if (
        not name
        or not source
        or not {
            type(name),
            type(source),
            type(address),
            type(agent),
            type(region),
            type(event_id),
            type(error_code),
            type(error_message),
            type(account),
            type(event_type),
        }
        <= _STR_OR_NONE
    ):
        # Slow path: precise errors for missing/mistyped fields, numbers rendered as text.
        name = required_text(record, "eventName")
        source = required_text(record, "eventSource")
        address = text(record, "sourceIPAddress")
        agent = text(record, "userAgent")
        region = text(record, "awsRegion")
        event_id = text(record, "eventID")
        error_code = text(record, "errorCode")
        error_message = text(record, "errorMessage")
        account = text(record, "recipientAccountId")
        event_type = text(record, "eventType")
    when = get("eventTime")
    epoch, iso = timestamp(when if when is not None else get("@timestamp"), "eventTime")
    ui = get("userIdentity")
    if type(ui) is not dict:
        ui = obj(record, "userIdentity")
    ui_get = ui.get
    ui_type = ui_get("type")
    arn = ui_get("arn")
    principal = ui_get("principalId")
    key_id = ui_get("accessKeyId")
    ui_account = ui_get("accountId")
    if not {type(ui_type), type(arn), type(principal), type(key_id), type(ui_account)} <= (
        _STR_OR_NONE
    ):
        ui_type = text(ui, "type")
        arn = text(ui, "arn")
        principal = text(ui, "principalId")
        key_id = text(ui, "accessKeyId")
        ui_account = text(ui, "accountId")
    if ui_type == "AssumedRole" and arn:
        user_name: str | None = arn.rpartition("/")[2]
    elif ui_type == "IAMUser" and type(name_ := ui_get("userName")) is str and name_:
        user_name = name_
    else:
        user_name = _user_name(ui, ui_type, arn)
    account = account or ui_account
    if not event_id:
        event_id = content_id(record)
    category, kind = _classify(source, name)

    outcome = "success"
    if error_code:
        outcome = "failure"
    elif name == "ConsoleLogin":
        response = obj(record, "responseElements")
        if response.get("ConsoleLogin") == "Failure":
            outcome = "failure"

    if account and region:
        cloud: dict[str, Any] = {"provider": "aws", "account": {"id": account}, "region": region}
    else:
        cloud = {"provider": "aws"}
        if account:
            cloud["account"] = {"id": account}
        if region:
            cloud["region"] = region
    ecs: dict[str, Any] = {
        "@timestamp": iso,
        "event": {
            "kind": "event",
            "category": [*category],  # a copy: the class tables are shared
            "type": [*kind],
            "action": name,
            "outcome": outcome,
            "provider": source,
            "dataset": "aws.cloudtrail",
            "id": event_id,
        },
        "cloud": cloud,
    }
    user: dict[str, Any] = {}
    if user_name:
        user["name"] = user_name
    if principal:
        user["id"] = principal
    related: dict[str, Any] = {}
    if address:
        if is_ip(address):
            ecs["source"] = {"address": address, "ip": address}
            related["ip"] = [address]
        else:
            ecs["source"] = {"address": address}
            related["hosts"] = [address]
    if agent:
        ecs["user_agent"] = {"original": agent}
    if error_code or error_message:
        ecs["error"] = compact({"code": error_code, "message": error_message})

    if ui_type and arn and key_id:
        identity: dict[str, Any] = {"type": ui_type, "arn": arn, "access_key_id": key_id}
    else:
        identity = compact({"type": ui_type, "arn": arn, "access_key_id": key_id or None})
    if "invokedBy" in ui:
        identity["invoked_by"] = text(ui, "invokedBy")
    if "identityProvider" in ui:
        identity["identity_provider"] = text(ui, "identityProvider")
    ctx = ui_get("sessionContext")
    if ctx:
        # Session context: MFA and the role a session was issued from.
        if type(ctx) is not dict:
            ctx = obj(ui, "sessionContext")
        issuer = ctx.get("sessionIssuer")
        attrs = ctx.get("attributes")
        session: dict[str, Any] = {}
        if attrs:
            if type(attrs) is not dict:
                attrs = obj(ctx, "attributes")
            mfa = attrs.get("mfaAuthenticated")
            if mfa is not None:
                mfa = _MFA.get(mfa) if type(mfa) is str else flag(mfa)
                if mfa is not None:
                    session["mfa_authenticated"] = mfa
        if issuer:
            if type(issuer) is not dict:
                issuer = obj(ctx, "sessionIssuer")
            i_type = issuer.get("type")
            i_arn = issuer.get("arn")
            i_name = issuer.get("userName")
            if type(i_type) is str and type(i_arn) is str and type(i_name) is str:
                session["session_issuer"] = {"type": i_type, "arn": i_arn, "user_name": i_name}
            else:
                session["session_issuer"] = compact(
                    {
                        "type": text(issuer, "type"),
                        "arn": text(issuer, "arn"),
                        "user_name": text(issuer, "userName"),
                    }
                )
        if session:
            identity["session_context"] = session
    trail: dict[str, Any] = {}
    if event_type:
        trail["event_type"] = event_type
    read_only = get("readOnly")
    if read_only is not None:
        trail["read_only"] = read_only if type(read_only) is bool else flag(read_only)
    if "eventCategory" in record:
        trail["event_category"] = text(record, "eventCategory")
    if identity:
        trail["user_identity"] = identity
    if name == "ConsoleLogin":
        extra = obj(record, "additionalEventData")
        trail["console_login"] = compact({"mfa_used": flag(extra.get("MFAUsed"))})
    params = get("requestParameters")
    if params:
        params = obj(record, "requestParameters")
        keys = _TARGET_KEYS.get(source)
        if keys:
            targets = [v for k in keys if type(v := params.get(k)) is str]
            if targets:
                trail["target"] = targets
    else:
        params = {}
    if name == "AssumeRoleWithWebIdentity":
        response = obj(record, "responseElements")
        trail["web_identity"] = compact(
            {
                "subject": text(response, "subjectFromWebIdentityToken") or text(ui, "userName"),
                "provider": text(response, "provider") or text(ui, "identityProvider"),
                "audience": text(response, "audience"),
            }
        )
    if "resources" in record:
        resources = array(record, "resources")
        arns = [r["ARN"] for r in resources if type(r) is dict and type(r.get("ARN")) is str]
        if arns:
            trail["resources"] = {"arn": arns}
    ecs["aws"] = {"cloudtrail": trail}

    if user_name:
        related["user"] = [user_name]
    if source == "iam.amazonaws.com":
        target_user = params.get("userName")
        if type(target_user) is str:
            user["target"] = {"name": target_user}
            related.setdefault("user", [])
            if target_user not in related["user"]:
                related["user"].append(target_user)
    if user:
        ecs["user"] = user

    if source in _ECR_SOURCES:
        repo = text(params, "repositoryName")
        if repo:
            tags, digests = _ecr_image(params, obj(record, "responseElements"))
            image: dict[str, Any] = {"name": repo}
            if tags:
                image["tag"] = tags
            if digests:
                image["hash"] = {"all": digests}
            ecs["container"] = {"image": image}
            ecs["registry"] = compact(
                {
                    "operation": ECR_OPERATIONS.get(name),
                    "name": text(params, "registryId") or account,
                }
            )
    if related:
        ecs["related"] = related
    return new_event(event_id, epoch, "cloudtrail", LOGSOURCE, ecs, record, origin)


def unwrap_cloudtrail(doc: Mapping[str, Any]) -> list[tuple[str, Any]] | None:
    """The records of a CloudTrail envelope with their locations, or ``None`` if not one.

    S3 delivery files hold ``{"Records": [...]}``; EventBridge wraps one record in
    ``detail`` with a ``detail-type`` ending in ``via CloudTrail``.
    """
    records = doc.get("Records")
    if records is not None:
        if type(records) is not list:
            raise NormalizeError("wrong_type", "Records: expected an array")
        return [(f"Records[{i}]", r) for i, r in enumerate(records)]
    kind = doc.get("detail-type")
    if type(kind) is str and kind.endswith("via CloudTrail") and "detail" in doc:
        return [("detail", doc["detail"])]
    return None
