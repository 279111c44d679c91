"""Escaping, defanging and secret redaction of untrusted text (detector.sinks.notify.text)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.sinks.notify.text import (
    REDACTED,
    ZWSP,
    code,
    escape_mrkdwn,
    is_secret_key,
    plain,
    redact,
    redact_value,
)

# Hostile fragments mixed into generated text, so that Hypothesis explores around them.
_HOSTILE = st.sampled_from(
    [
        "<!channel>", "<!here>", "<!everyone>", "<@U123ABC>", "<#C0123|general>",
        "<http://evil.example|click here>", "<https://evil.example>", "<mailto:a@b.c|x>",
        "@channel", "@here", "@everyone", "`", "```", "*", "_", "~", ">", "<", "&", "&lt;",
        "&amp;", "http://", "https://evil.example/login", "www.evil.example", "\n", "\r\n",
        "\u202e", "\u2066", "|", "!", "\uff1a", "\uff20", "\uff0e", "\u3002", "\u200b",
    ]
)  # fmt: skip
HOSTILE_TEXT = st.lists(st.one_of(_HOSTILE, st.text(max_size=12)), max_size=25).map("".join)

# A Slack control sequence: <!...>, <@...>, <#...>, <scheme:...> or <anything|label>.
_CONTROL = re.compile(r"<[!@#]|<[a-z][a-z0-9+.-]*:|<[^>]*\|", re.IGNORECASE)
_BROADCAST = re.compile(r"[@\uff20](?:channel|here|everyone)", re.IGNORECASE)


@settings(max_examples=400)
@given(HOSTILE_TEXT)
def test_code_span_cannot_carry_a_mention_link_or_markup(text: str) -> None:
    """Whatever the input, ``code()`` is exactly one inline code span with nothing Slack parses.

    No ``<`` or ``>`` survives (so no ``<!here>``, ``<@U1>``, ``<#C1>`` or link can form),
    every ``&`` starts one of Slack's three entities, no backtick or line break can end
    the span early, and no ``@channel``/``@here``/``@everyone`` is left intact.
    """
    out = code(text)
    assert out.startswith("`") and out.endswith("`") and out.count("`") == 2
    inner = out[1:-1]
    assert "<" not in inner and ">" not in inner
    assert not _CONTROL.search(out)
    assert re.fullmatch(r"(?:[^&]|&amp;|&lt;|&gt;)*", inner)
    assert "\n" not in inner and "\r" not in inner
    assert not _BROADCAST.search(inner)
    assert "\u202e" not in inner


@settings(max_examples=400)
@given(HOSTILE_TEXT)
def test_plain_text_cannot_form_a_mention_or_a_link(text: str) -> None:
    """``plain()`` leaves no angle brackets, no intact scheme, domain or broadcast mention.

    Every ``@`` is followed by a zero-width space (or ends the text / precedes a space),
    no ``scheme://`` nor ``letter.letter`` pair is adjacent, so a client linkifier has
    nothing to turn into a link.
    """
    out = plain(text, 500)
    assert "<" not in out and ">" not in out
    assert not _BROADCAST.search(out)
    assert not re.search(r"[a-z0-9][:\uff1a]//", out, re.IGNORECASE)
    assert not re.search(r"[.\u3002\uff0e\uff61][^\W\d_]", out)
    assert not re.search(r"[@\uff20][^\s\u200b…]", out)
    assert len(out) <= 500


@given(HOSTILE_TEXT)
def test_mrkdwn_escaping_leaves_only_entities(text: str) -> None:
    """``escape_mrkdwn`` output has no raw angle brackets and every ``&`` is an entity."""
    out = escape_mrkdwn(text)
    assert "<" not in out and ">" not in out
    assert re.fullmatch(r"(?:[^&]|&amp;|&lt;|&gt;)*", out, re.DOTALL)
    assert not _BROADCAST.search(out)


def test_code_span_examples() -> None:
    """Known attacks render as inert literal text inside one code span."""
    assert code("<!channel> hi") == "`&lt;!channel&gt; hi`"
    assert code("<http://evil|click>") == "`&lt;http://evil|click&gt;`"
    assert code("a`b\nc") == "`a'b c`"
    assert code("@here") == f"`@{ZWSP}here`"
    assert code("") == "`-`"


def test_long_values_are_cut_with_an_ellipsis() -> None:
    """A value longer than the limit is cut to the limit, ending in an ellipsis."""
    out = code("x" * 1000, limit=50)
    assert len(out) == 52 and out.endswith("…`")
    assert len(plain("y" * 5000, 300)) == 300


# -- redaction ----------------------------------------------------------------------------

SECRETS = [
    pytest.param("AKIAIOSFODNN7EXAMPLE", id="aws-access-key-id"),
    pytest.param("ASIAY34FZKBOKMUTVV7A", id="aws-temporary-key-id"),
    pytest.param("ghp_" + "a1B2c3D4e5" * 3 + "zzzzzz", id="github-classic"),
    pytest.param("gho_" + "Z9" * 18, id="github-oauth"),
    pytest.param("ghs_" + "k" * 36, id="github-app"),
    pytest.param("github_pat_11ABCDEFG0" + "x" * 59, id="github-fine-grained"),
    pytest.param("glpat-" + "AbCdEfGhIjKlMnOpQrSt", id="gitlab"),
    pytest.param("xoxb-123456789012-abcdefABCDEF", id="slack-bot"),
    pytest.param("xoxp-1-2-3-abcdef0123", id="slack-user"),
    pytest.param("hvs.CAESIJ" + "q" * 80, id="vault"),
    pytest.param("s.Qf1s5zigZ4yX6akYjByoGdNP", id="vault-legacy"),
    pytest.param(
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
        "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
        id="jwt",
    ),
    pytest.param("-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKC\nAQEA\n", id="private-key-cut"),
]


@pytest.mark.parametrize("secret", SECRETS)
def test_credentials_are_redacted_by_shape(secret: str) -> None:
    """Each credential kind is replaced by [REDACTED]; the text around it is kept."""
    out = redact(f"login by bob with {secret} from 198.51.100.2")
    assert secret.strip() not in out
    assert REDACTED in out
    assert out.startswith("login by bob with ")


@pytest.mark.parametrize(
    ("text", "gone", "kept"),
    [
        ("Authorization: Bearer abc.DEF-123_xyz", "abc.DEF-123_xyz", "Authorization"),
        ("header Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA==", "Basic"),
        ("password=hunter2&next=1", "hunter2", "next=1"),
        ('{"client_secret": "s3cr3t value", "user": "bob"}', "s3cr3t value", '"user": "bob"'),
        ("db_password: 'pa ss'", "pa ss", "db_password"),
        ("git clone https://bob:tok3n@git.example/x", "tok3n", "bob:"),
        (
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE\n"
            "-----END OPENSSH PRIVATE KEY----- done",
            "b3BlbnNzaC1rZXktdjE",
            "done",
        ),
    ],
)
def test_credentials_are_redacted_by_context(text: str, gone: str, kept: str) -> None:
    """Bearer/Basic credentials, secret-named keys, URL passwords, PEM blocks lose their value."""
    out = redact(text)
    assert gone not in out
    assert kept in out


def test_ordinary_text_is_left_alone() -> None:
    """Prose, addresses, ids and metadata keys about secrets are not redacted."""
    text = (
        "basic authentication failed for alice from 203.0.113.7; secretId=prod/db "
        "token_type=bearer user-agent aws-cli/2.15 at 03:04:05"
    )
    assert redact(text) == text


# Token generators for the property test: each yields a value that must never survive.
_TOKENS = st.one_of(
    st.from_regex(r"\A(AKIA|ASIA)[A-Z0-9]{16}\Z"),
    st.from_regex(r"\Agh[pousr]_[A-Za-z0-9]{36}\Z"),
    st.from_regex(r"\Agithub_pat_[A-Za-z0-9_]{40,82}\Z"),
    st.from_regex(r"\Aglpat-[A-Za-z0-9_-]{20}\Z"),
    st.from_regex(r"\Axox[abpors]-[A-Za-z0-9-]{10,40}\Z"),
    st.from_regex(r"\Ahvs\.[A-Za-z0-9_-]{24,90}\Z"),
    st.from_regex(r"\AeyJ[A-Za-z0-9_-]{10,30}\.eyJ[A-Za-z0-9_-]{10,40}\.[A-Za-z0-9_-]{0,43}\Z"),
)
_FILLER = st.text(st.characters(exclude_categories=["Cs"]), max_size=30)


@settings(max_examples=300)
@given(_FILLER, _TOKENS, _FILLER)
def test_generated_tokens_never_survive_redaction(before: str, token: str, after: str) -> None:
    """A token of any supported kind, between arbitrary text (space-separated), is removed."""
    out = redact(f"{before} {token} {after}")
    assert token not in out
    # Also once rendered: the displayed value never shows it either.
    assert token not in code(f"{before} {token} {after}", 10_000)
    assert token not in plain(f"{before} {token} {after}", 10_000)


def test_token_straddling_the_display_limit_is_still_redacted() -> None:
    """A secret that starts before the cut is recognised whole first, so no prefix leaks."""
    secret = "ghp_" + "Q" * 36
    out = code("x" * 190 + " " + secret, limit=200)
    assert "ghp_QQ" not in out


def test_mappings_are_redacted_by_key_name_and_by_shape() -> None:
    """Secret-named keys lose their values at any depth; other values are scanned for tokens."""
    doc = {
        "user": {"name": "bob", "password": "hunter2"},
        "requestParameters": {"AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI", "secretId": "prod/db"},
        "headers": [{"X-Api-Key": "k-123"}, "Bearer abcdefgh12345"],
        "note": "key AKIAIOSFODNN7EXAMPLE",
    }
    out = redact_value(doc)
    assert out["user"] == {"name": "bob", "password": REDACTED}
    assert out["requestParameters"] == {"AWS_SECRET_ACCESS_KEY": REDACTED, "secretId": "prod/db"}
    assert out["headers"] == [{"X-Api-Key": REDACTED}, f"Bearer {REDACTED}"]
    assert out["note"] == f"key {REDACTED}"


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("password", True),
        ("aws_secret_access_key", True),
        ("clientSecret", True),
        ("X-Api-Key", True),
        ("session_id", True),
        ("secretId", False),
        ("token_type", False),
        ("user.name", False),
    ],
)
def test_secret_key_names(name: str, secret: bool) -> None:
    """Key names are judged case- and separator-insensitively; metadata suffixes are not secrets."""
    assert is_secret_key(name) is secret


def test_controls_and_bidi_overrides_are_removed() -> None:
    """Right-to-left overrides and control characters cannot disguise displayed text."""
    assert code("evil\u202etxt.exe\x00") == "`eviltxt.exe`"
    assert "\u2066" not in plain("a\u2066b")
