"""Untrusted text made safe for humans: secret redaction, Slack escaping, defanging.

Everything an alert carries beyond the rule itself (user names, repository names, user
agents, reasons built from event fields) is chosen by whoever produced the event, so
an attacker. Before any of it leaves the process:

1. :func:`redact` replaces credentials with ``[REDACTED]`` (tokens by shape, values by
   the name of their key), on the whole text, before anything is cut;
2. :func:`clean` drops control and bidirectional-override characters;
3. the value is cut to a length limit (:func:`truncate`);
4. it is rendered for its destination:

   * :func:`code` - an inline code span for Slack ``mrkdwn``: backticks and line breaks
     removed so the value cannot leave the span, ``&``, ``<``, ``>`` escaped as Slack
     requires (so no ``<!channel>``, ``<@U123>``, ``<#C1>`` or ``<http://x|label>``
     control sequence can form), and a zero-width space after every ``@``;
   * :func:`plain` - for Slack ``plain_text`` objects and PagerDuty fields, which have no
     code spans: ``<``/``>`` become look-alike angle quotes, ``@``, ``.`` and ``:`` are
     followed by a zero-width space where they would form a mention, a domain name or a
     URL scheme, so clients cannot auto-link the value.

The full, unmodified evidence stays in the alert index; notifications are pointers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

#: What a redacted value is replaced with.
REDACTED = "[REDACTED]"
#: Zero-width space: invisible, but breaks mention, link and domain recognition.
ZWSP = "\u200b"
#: Redaction reads at most this many characters; the rest is dropped before display.
MAX_SCAN = 64 * 1024
#: Characters read beyond a display limit, so a token straddling the limit is still whole.
_MARGIN = 4096

# Words that make a key name a secret's name once case and separators are dropped
# (``aws_secret_access_key``, ``X-Api-Key``, ``clientSecret``), unless the name ends in a
# word saying it is metadata about the secret (``secretId``, ``tokenType``).
_SECRET_WORDS = (
    "password", "passwd", "passphrase", "pwd", "secret", "token", "apikey", "accesskey",
    "privatekey", "credential", "authorization", "cookie", "sessionid", "signature",
)  # fmt: skip
_METADATA_SUFFIXES = (
    "id", "ids", "arn", "name", "type", "count", "length", "expiry", "expiration",
    "expires", "expiresat", "ttl", "version", "policy", "enabled", "required",
)  # fmt: skip
_NON_ALNUM = re.compile(r"[^a-z0-9]+")

# Credentials recognisable by their shape. Every pattern runs in linear time on hostile
# input: starts are pinned by look-behinds and runs are matched possessively (``*+``).
_TOKEN_PATTERNS: tuple[re.Pattern[str], ...] = tuple(
    re.compile(p)
    for p in (
        # PEM private keys, with or without their END line (a cut key still leaks).
        r"(?s)-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY-----"
        r"(?:.*?-----END [A-Z0-9 ]{0,40}PRIVATE KEY-----|.*)",
        # AWS access key ids (long-term AKIA, temporary ASIA, and the rarer ABIA/ACCA).
        r"(?<![A-Z0-9])(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Z0-9])",
        # GitHub classic/OAuth/user-to-server/server-to-server/refresh tokens, fine-grained PATs.
        r"(?<![A-Za-z0-9_])gh[pousr]_[A-Za-z0-9]{20,}+",
        r"(?<![A-Za-z0-9_])github_pat_[A-Za-z0-9_]{20,}+",
        # GitLab personal, deploy, trigger, runner, feed, CI job, SCIM and OAuth tokens.
        r"(?<![A-Za-z0-9_-])gl(?:pat|dt|ptt|rt|ft|cbt|soat|oas)-[A-Za-z0-9_-]{20,}+",
        # Slack bot/user/app/refresh tokens and incoming-webhook URLs.
        r"(?<![A-Za-z0-9_-])xox[abposre]-[A-Za-z0-9-]{10,}+",
        r"(?<![A-Za-z0-9_-])xapp-[A-Za-z0-9-]{10,}+",
        r"hooks\.slack\.com/services/[A-Za-z0-9/_-]++",
        # Vault service/batch/recovery tokens, current and legacy (``s.`` + 24) formats.
        r"(?<![A-Za-z0-9_.-])hv[sbr]\.[A-Za-z0-9_-]{20,}+",
        r"(?<![A-Za-z0-9_.-])[sbr]\.[A-Za-z0-9]{24}(?![A-Za-z0-9])",
        # JSON Web Tokens: base64url '{"...' header and payload; the signature may be cut off.
        r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{8,}+\.[A-Za-z0-9_-]{8,}+\.[A-Za-z0-9_-]*+",
    )
)
# ``Bearer <token>`` / ``Basic <base64>`` keep the scheme word and lose the credential.
# A credential has a digit, capital or one of ``_~+/=``; lowercase words and hyphens
# after the scheme word are prose ("basic authentication", "bearer user-agent").
_AUTH_SCHEME = re.compile(
    r"(?<![A-Za-z0-9_])((?i:bearer|basic))([ \t]++)(?=[a-z.-]*+[A-Z0-9_~+/=])"
    r"[A-Za-z0-9._~+/=_-]{8,}+"
)
# ``scheme://user:password@host`` keeps the user and loses the password.
_URL_PASSWORD = re.compile(r"(?i)(?<![a-z0-9+.-])([a-z][a-z0-9+.-]*+://[^\s/:@]*+:)[^\s/@]++@")
# A ``key=``, ``key:``, ``"key": `` prefix; the key is judged by :func:`is_secret_key`.
_KEY_PREFIX = re.compile(r"""(?<![\w.-])(["']?)([\w.-]{1,128}+)\1[ \t]*+[:=][ \t]*+""")
# The value after a secret key: a quoted string (maybe cut) or a run up to a delimiter.
_VALUE = re.compile(r"""\[REDACTED\]|"[^"]*+"?|'[^']*+'?|[^\s,;&}\]]++""")

# C0/C1 controls except tab/newline, and the bidirectional overrides/isolates that can
# make displayed text read differently from what it is.
_INVISIBLE = re.compile(
    r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)
_NEWLINES = re.compile(r"[\r\n\t\u2028\u2029]+")


def redact(text: str, scan: int = MAX_SCAN) -> str:
    """``text`` with every credential replaced by ``[REDACTED]``.

    Recognises AWS access key ids, GitHub, GitLab, Slack and Vault tokens, JWTs,
    ``Bearer``/``Basic`` credentials, PEM private keys, passwords in URLs and the value of
    any ``key=value`` / ``"key": "value"`` pair whose key names a secret (password,
    secret, token, api_key, ...). Only the first ``scan`` characters are kept (at most
    :data:`MAX_SCAN`): callers that display ``n`` characters pass ``n`` plus a margin longer
    than any token, so that no secret is cut before it is recognised.
    """
    out = text[: min(scan, MAX_SCAN)]
    for pattern in _TOKEN_PATTERNS:
        out = pattern.sub(REDACTED, out)
    out = _AUTH_SCHEME.sub(rf"\1\2{REDACTED}", out)
    out = _URL_PASSWORD.sub(rf"\1{REDACTED}@", out)
    return _redact_pairs(out)


def _redact_pairs(text: str) -> str:
    """Replace the value after every ``key=`` / ``"key":`` whose key names a secret."""
    parts: list[str] = []
    pos = 0
    for prefix in _KEY_PREFIX.finditer(text):
        if prefix.start() < pos or not is_secret_key(prefix.group(2)):
            continue
        value = _VALUE.match(text, prefix.end())
        if value is None or value.group(0).lower() in ("bearer", "basic"):
            continue  # the credential after the scheme word is already redacted
        quote = value.group(0)[:1] if value.group(0)[:1] in ('"', "'") else ""
        parts += [text[pos : prefix.end()], quote, REDACTED, quote]
        pos = value.end()
    parts.append(text[pos:])
    return "".join(parts)


def is_secret_key(name: str) -> bool:
    """Whether a mapping key names a secret (``password``, ``aws_secret_access_key``, ...)."""
    key = _NON_ALNUM.sub("", name[:128].lower())
    if not any(word in key for word in _SECRET_WORDS):
        return False
    return key == "sessionid" or not key.endswith(_METADATA_SUFFIXES)


def redact_value(value: Any) -> Any:
    """A JSON-like value with secrets redacted: by key name in mappings, by shape in strings."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {
            str(k): REDACTED if is_secret_key(str(k)) and v not in (None, "") else redact_value(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact_value(v) for v in value]
    return value


def clean(text: str) -> str:
    """``text`` without control characters and bidirectional overrides."""
    return _INVISIBLE.sub("", text)


def truncate(text: str, limit: int) -> str:
    """At most ``limit`` characters; a cut value ends with an ellipsis."""
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)] + "…"


def escape_mrkdwn(text: str) -> str:
    """Slack's escaping of ``&``, ``<``, ``>``, plus a zero-width space after each ``@``.

    After this no ``<...>`` control sequence (mentions, channel links, ``<!here>``, links)
    can be formed, and ``@channel``/``@here`` no longer read as broadcasts.
    """
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("@", "@" + ZWSP)


def code(value: object, limit: int = 200) -> str:
    """An untrusted value as one Slack ``mrkdwn`` inline code span.

    Inside a code span Slack applies no formatting and creates no links; the value
    cannot close the span early because backticks and line breaks are replaced.
    """
    text = clean(redact(str(value), limit + _MARGIN))
    text = _NEWLINES.sub(" ", text).replace("`", "'").strip()
    text = truncate(text, limit) or "-"
    return f"`{escape_mrkdwn(text)}`"


# Where a linkifier could start a mention, a domain or a URL scheme: ``@`` before any
# character, a dot before a letter (TLDs and labels; IP addresses and version numbers
# stay intact), a colon before anything but a digit (times stay intact). Full-width and
# ideographic forms count too (IDNA maps them to the ASCII ones).
_DEFANG = re.compile(r"([@\uff20](?=\S)|[.\u3002\uff0e\uff61](?=[^\W\d_])|[:\uff1a](?=[^\s\d]))")


def plain(value: object, limit: int = 3000, *, single_line: bool = False) -> str:
    """An untrusted value for a Slack ``plain_text`` object or a PagerDuty field.

    ``plain_text`` parses no mentions or ``<...>`` links, but clients may still turn
    bare URLs, domain names and addresses into links; so a zero-width space follows
    every ``@``, every dot before a letter and every colon before a non-digit, and
    ``<``/``>`` become single angle quotation marks (U+2039, U+203A). The text reads
    the same to a human and links nowhere.
    """
    text = clean(redact(str(value), limit + _MARGIN))
    if single_line:
        text = _NEWLINES.sub(" ", text)
    text = text.replace("<", "\u2039").replace(">", "\u203a")
    text = _DEFANG.sub(lambda m: m.group(1) + ZWSP, text)
    return truncate(text.strip(), limit) or "-"


__all__ = [
    "MAX_SCAN",
    "REDACTED",
    "ZWSP",
    "clean",
    "code",
    "escape_mrkdwn",
    "is_secret_key",
    "plain",
    "redact",
    "redact_value",
    "truncate",
]
