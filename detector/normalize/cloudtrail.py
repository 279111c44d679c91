"""AWS CloudTrail records to ECS (mapping table: docs/mappings/cloudtrail.md)."""

from __future__ import annotations

from typing import Any

from detector.errors import NormalizeError
from detector.models import NO_ORIGIN, Event, LogSource, Origin
from detector.normalize.fields import (
    TIME_CACHE,
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
_ECR_SOURCES = frozenset({"ecr.amazonaws.com", "ecr-public.amazonaws.com"})
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
#: Marks a key that is absent (``None`` means present and null).
_ABSENT: Any = object()
_CLASSES: dict[tuple[str, str], tuple[list[str], list[str]]] = {}
#: Real (eventSource, eventName) pairs are short; longer ones are classified uncached so
#: the cache stays small in bytes, not only in entries.
_CLASS_KEY_CHARS = 256


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
    if len(_CLASSES) < 4096 and len(source) + len(name) <= _CLASS_KEY_CHARS:
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


def normalize_cloudtrail(record: dict[str, Any], origin: Origin = NO_ORIGIN) -> Event:
    """One CloudTrail record (already unwrapped from its envelope) to an :class:`Event`.

    This is the pipeline's hot path, written for CPython 3.11's cost model (measured with
    ``bench/bench_normalize.py``): each field is read once, with a subscript where
    CloudTrail always sends the key; types are checked with ``type(x) is str`` chains;
    cached look-ups (times, classes) are inlined. Anything unusual falls back to the
    checked helpers of :mod:`detector.normalize.fields`, which raise precise errors.
    """
    try:
        # Keys every CloudTrail record carries: a subscript costs less than get().
        name = record["eventName"]
        source = record["eventSource"]
        address = record["sourceIPAddress"]
        agent = record["userAgent"]
        region = record["awsRegion"]
        event_id = record["eventID"]
        account = record["recipientAccountId"]
        event_type = record["eventType"]
        when = record["eventTime"]
        ui = record["userIdentity"]
        params = record["requestParameters"]
    except KeyError:
        name = record.get("eventName")
        source = record.get("eventSource")
        address = record.get("sourceIPAddress")
        agent = record.get("userAgent")
        region = record.get("awsRegion")
        event_id = record.get("eventID")
        account = record.get("recipientAccountId")
        event_type = record.get("eventType")
        when = record.get("eventTime")
        ui = record.get("userIdentity")
        params = record.get("requestParameters")
    # Usually absent: a miss through ``in`` costs less than one through get().
    error_code = record["errorCode"] if "errorCode" in record else None  # noqa: SIM401
    error_message = record["errorMessage"] if "errorMessage" in record else None  # noqa: SIM401
    # The common record first (all text, no error), then the general rule (text or null).
    if not (
        type(name) is str
        and type(source) is str
        and name
        and source
        and type(address) is str
        and type(agent) is str
        and type(region) is str
        and type(event_id) is str
        and type(account) is str
        and type(event_type) is str
        and error_code is None
        and error_message is None
    ) and (
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
    if when is None:
        when = record.get("@timestamp")
    # Many events share a second: a cache hit skips the call into timestamp().
    epoch, iso = (type(when) is str and TIME_CACHE.get(when)) or timestamp(when, "eventTime")
    # Containers get declared types once checked: compiled, their reads are direct calls.
    ui_doc: dict[str, Any] = ui if type(ui) is dict else obj(record, "userIdentity")
    ui_type = ui_doc.get("type")
    arn = ui_doc.get("arn")
    principal = ui_doc.get("principalId")
    key_id = ui_doc.get("accessKeyId")
    ui_account = ui_doc.get("accountId")
    if not (
        type(ui_type) is str
        and type(arn) is str
        and type(principal) is str
        and type(key_id) is str
        and type(ui_account) is str
    ) and not {type(ui_type), type(arn), type(principal), type(key_id), type(ui_account)} <= (
        _STR_OR_NONE
    ):
        ui_type = text(ui_doc, "type")
        arn = text(ui_doc, "arn")
        principal = text(ui_doc, "principalId")
        key_id = text(ui_doc, "accessKeyId")
        ui_account = text(ui_doc, "accountId")
    if ui_type == "AssumedRole" and arn:
        user_name: str | None = arn.rpartition("/")[2]
    elif ui_type == "IAMUser" and type(name_ := ui_doc.get("userName")) is str and name_:
        user_name = name_
    else:
        user_name = _user_name(ui_doc, ui_type, arn)
    account = account or ui_account
    if not event_id:
        event_id = content_id(record)
    category, kind = _CLASSES.get((source, name)) or _classify(source, name)

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
    related: dict[str, Any]
    if not address:
        related = {}
    elif is_ip(address):
        ecs["source"] = {"address": address, "ip": address}
        related = {"ip": [address]}
    else:
        ecs["source"] = {"address": address}
        related = {"hosts": [address]}
    if agent:
        ecs["user_agent"] = {"original": agent}
    if error_code or error_message:
        ecs["error"] = compact({"code": error_code, "message": error_message})

    if ui_type and arn and key_id:
        identity: dict[str, Any] = {"type": ui_type, "arn": arn, "access_key_id": key_id}
    else:
        identity = compact({"type": ui_type, "arn": arn, "access_key_id": key_id or None})
    if "invokedBy" in ui_doc:
        identity["invoked_by"] = text(ui_doc, "invokedBy")
    if "identityProvider" in ui_doc:
        identity["identity_provider"] = text(ui_doc, "identityProvider")
    ctx_value = ui_doc.get("sessionContext")
    if ctx_value:
        # Session context: MFA and the role a session was issued from.
        ctx: dict[str, Any] = (
            ctx_value if type(ctx_value) is dict else obj(ui_doc, "sessionContext")
        )
        issuer_value = ctx.get("sessionIssuer")
        attrs_value = ctx.get("attributes")
        session: dict[str, Any] = {}
        if attrs_value:
            attrs: dict[str, Any] = (
                attrs_value if type(attrs_value) is dict else obj(ctx, "attributes")
            )
            # CloudTrail sends "true"/"false" (other text means nothing); compared rather
            # than looked up, as hashing the fresh string costs more.
            mfa = attrs.get("mfaAuthenticated")
            if mfa == "true":
                session["mfa_authenticated"] = True
            elif mfa == "false":
                session["mfa_authenticated"] = False
            elif mfa is not None and type(mfa) is not str and (mfa := flag(mfa)) is not None:
                session["mfa_authenticated"] = mfa
        if issuer_value:
            issuer: dict[str, Any] = (
                issuer_value if type(issuer_value) is dict else obj(ctx, "sessionIssuer")
            )
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
    trail: dict[str, Any] = {"event_type": event_type} if event_type else {}
    read_only = record.get("readOnly")
    if read_only is not None:
        trail["read_only"] = read_only if type(read_only) is bool else flag(read_only)
    event_category = record.get("eventCategory", _ABSENT)
    if event_category is not _ABSENT:
        trail["event_category"] = (
            event_category if type(event_category) is str else text(record, "eventCategory")
        )
    if identity:
        trail["user_identity"] = identity
    if name == "ConsoleLogin":
        extra = obj(record, "additionalEventData")
        trail["console_login"] = compact({"mfa_used": flag(extra.get("MFAUsed"))})
    request: dict[str, Any] = {}
    if params:
        request = params if type(params) is dict else obj(record, "requestParameters")
        keys = _TARGET_KEYS.get(source)
        if keys:
            # Loops rather than comprehensions: a comprehension is a function call in 3.11.
            targets = []
            for key in keys:
                if type(target := request.get(key)) is str:
                    targets.append(target)
            if targets:
                trail["target"] = targets
    if name == "AssumeRoleWithWebIdentity":
        response = obj(record, "responseElements")
        subject = text(response, "subjectFromWebIdentityToken") or text(ui_doc, "userName")
        trail["web_identity"] = compact(
            {
                "subject": subject,
                "provider": text(response, "provider") or text(ui_doc, "identityProvider"),
                "audience": text(response, "audience"),
            }
        )
    if "resources" in record:
        resources = record["resources"]
        if type(resources) is not list:
            resources = array(record, "resources")
        arns = []
        for resource in resources:
            if type(resource) is dict and type(resource_arn := resource.get("ARN")) is str:
                arns.append(resource_arn)
        if arns:
            trail["resources"] = {"arn": arns}
    ecs["aws"] = {"cloudtrail": trail}

    user: dict[str, Any]
    if user_name:
        related["user"] = [user_name]
        user = {"name": user_name, "id": principal} if principal else {"name": user_name}
    else:
        user = {"id": principal} if principal else {}
    if source == "iam.amazonaws.com":
        target_user = request.get("userName")
        if type(target_user) is str:
            user["target"] = {"name": target_user}
            related.setdefault("user", [])
            if target_user not in related["user"]:
                related["user"].append(target_user)
    if user:
        ecs["user"] = user

    if source in _ECR_SOURCES:
        repo = text(request, "repositoryName")
        if repo:
            tags, digests = _ecr_image(request, obj(record, "responseElements"))
            image: dict[str, Any] = {"name": repo}
            if tags:
                image["tag"] = tags
            if digests:
                image["hash"] = {"all": digests}
            ecs["container"] = {"image": image}
            ecs["registry"] = compact(
                {
                    "operation": ECR_OPERATIONS.get(name),
                    "name": text(request, "registryId") or account,
                }
            )
    if related:
        ecs["related"] = related
    return new_event(event_id, epoch, "cloudtrail", LOGSOURCE, ecs, record, origin)


def unwrap_cloudtrail(doc: dict[str, Any]) -> list[tuple[str, Any]] | None:
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


#: API calls whose ECS fields read more of the record (responses, extra data): always
#: normalized at once.
_EAGER_NAMES = frozenset({"ConsoleLogin", "AssumeRoleWithWebIdentity"})


def _text_or_none(doc: dict[str, Any], key: str) -> bool:
    """True if ``doc[key]`` is absent, null or a string (``text`` cannot raise for it)."""
    value = doc.get(key)
    return value is None or type(value) is str


def _plain(record: dict[str, Any]) -> bool:
    """True if :func:`normalize_cloudtrail` cannot raise for ``record``, judged from the
    types of every field it reads that could make it raise. Conservative: a record this
    does not clear is normalized at once, so it fails exactly as before."""
    name = record.get("eventName")
    source = record.get("eventSource")
    if not (
        type(name) is str
        and type(source) is str
        and name
        and source
        and name not in _EAGER_NAMES
        and type(record.get("sourceIPAddress")) is str
        and type(record.get("userAgent")) is str
        and type(record.get("awsRegion")) is str
        and type(record.get("eventID")) is str
        and type(record.get("recipientAccountId")) is str
        and type(record.get("eventType")) is str
        and record.get("errorCode") is None
        and record.get("errorMessage") is None
        and _text_or_none(record, "eventCategory")
    ):
        return False
    ui = record.get("userIdentity")
    if type(ui) is not dict:
        return False
    for key in ("type", "arn", "principalId", "accessKeyId", "accountId", "userName"):
        if not _text_or_none(ui, key):
            return False
    if not (_text_or_none(ui, "invokedBy") and _text_or_none(ui, "identityProvider")):
        return False
    ctx = ui.get("sessionContext")
    if ctx:
        if type(ctx) is not dict:
            return False
        attrs = ctx.get("attributes")
        if attrs and type(attrs) is not dict:
            return False
        issuer = ctx.get("sessionIssuer")
        if issuer:
            if type(issuer) is not dict:
                return False
            for key in ("type", "arn", "userName"):
                if not _text_or_none(issuer, key):
                    return False
    params = record.get("requestParameters")
    if params and type(params) is not dict:
        return False
    resources = record.get("resources")
    if resources is not None and type(resources) is not list:
        return False
    if source in _ECR_SOURCES:
        request: dict[str, Any] = params if params else {}
        if not (_text_or_none(request, "repositoryName") and _text_or_none(request, "registryId")):
            return False
        for key in ("imageIds", "layerDigests"):
            if request.get(key) is not None and type(request.get(key)) is not list:
                return False
        response = record.get("responseElements")
        if response is not None and type(response) is not dict:
            return False
    return True


def pending_cloudtrail(record: dict[str, Any], origin: Origin = NO_ORIGIN) -> Event:
    """Like :func:`normalize_cloudtrail`, with the ECS document left to build on demand
    (:func:`~detector.models.events.completed`) when the record is plainly well formed;
    other records are normalized at once, so every error is raised here, as before."""
    if not _plain(record):
        return normalize_cloudtrail(record, origin)
    when = record.get("eventTime")
    if when is None:
        when = record.get("@timestamp")
    epoch = ((type(when) is str and TIME_CACHE.get(when)) or timestamp(when, "eventTime"))[0]
    event_id: str = record["eventID"] or content_id(record)
    return Event(event_id, epoch, "cloudtrail", LOGSOURCE, {}, record, origin, normalize_cloudtrail)
