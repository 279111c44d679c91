"""Kafka security settings and the client-argument builder, without a broker."""

from __future__ import annotations

import base64
import json
import ssl
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from pydantic import ValidationError

from detector.errors import ConfigError
from detector.sources.kafkasecurity import KafkaSecurityConfig, kafka_security
from detector.sources.kafkatokens import FileTokenProvider, MskIamTokenProvider


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"security_protocol": "SASL_SSL"}, "needs sasl.mechanism"),
        ({"sasl": {"mechanism": "PLAIN", "username": "u", "password": "p"}}, "use SASL_SSL"),
        ({"tls": {"ca_file": "ca.pem"}}, "use SSL or SASL_SSL"),
        (
            {"security_protocol": "SASL_SSL", "sasl": {"mechanism": "SCRAM-SHA-512"}},
            "needs username",
        ),
        (
            {
                "security_protocol": "SASL_SSL",
                "sasl": {"mechanism": "PLAIN", "username": "u", "password": "p"},
                "tls": {"cert_file": "client.pem"},
            },
            "cert_file and key_file go together",
        ),
        (
            {
                "security_protocol": "SASL_SSL",
                "sasl": {
                    "mechanism": "PLAIN",
                    "username": "u",
                    "password": "p",
                    "password_file": "p.txt",
                },
            },
            "not both",
        ),
        (
            {"security_protocol": "SASL_SSL", "sasl": {"mechanism": "OAUTHBEARER"}},
            "needs oauth.token_source",
        ),
        (
            {
                "security_protocol": "SASL_SSL",
                "sasl": {"mechanism": "OAUTHBEARER", "oauth": {"token_source": "aws_msk_iam"}},
            },
            "needs aws_region",
        ),
    ],
)
def test_inconsistent_security_settings_are_rejected_with_the_fix(
    settings: dict[str, object], message: str
) -> None:
    """Each contradictory or incomplete combination fails validation and says what to set."""
    with pytest.raises(ValidationError, match=message):
        KafkaSecurityConfig.model_validate(settings)


def test_plaintext_builds_only_the_protocol() -> None:
    """The default stays a plaintext client with no TLS or SASL arguments."""
    assert kafka_security(KafkaSecurityConfig()) == {"security_protocol": "PLAINTEXT"}


def test_secrets_are_read_from_files_and_stripped(tmp_path: Path) -> None:
    """``*_file`` settings are read at build time, the trailing newline of a mounted
    Kubernetes secret removed."""
    (tmp_path / "user").write_text("svc-detector\n")
    (tmp_path / "password").write_text("s3cret-from-file\n")
    config = KafkaSecurityConfig.model_validate(
        {
            "security_protocol": "SASL_SSL",
            "sasl": {
                "mechanism": "SCRAM-SHA-256",
                "username_file": str(tmp_path / "user"),
                "password_file": str(tmp_path / "password"),
            },
        }
    )
    options = kafka_security(config)
    assert options["sasl_plain_username"] == "svc-detector"
    assert options["sasl_plain_password"] == "s3cret-from-file"
    assert options["sasl_mechanism"] == "SCRAM-SHA-256"
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.check_hostname is True
    assert context.verify_mode == ssl.CERT_REQUIRED


def test_missing_secret_file_names_the_setting(tmp_path: Path) -> None:
    """An unreadable password file is a ConfigError naming ``kafka.sasl.password_file``."""
    config = KafkaSecurityConfig.model_validate(
        {
            "security_protocol": "SASL_PLAINTEXT",
            "sasl": {
                "mechanism": "PLAIN",
                "username": "u",
                "password_file": str(tmp_path / "absent"),
            },
        }
    )
    with pytest.raises(ConfigError, match=r"kafka\.sasl\.password_file: cannot read"):
        kafka_security(config)


def test_bad_ca_and_client_certificate_files_are_config_errors(tmp_path: Path) -> None:
    """A CA file that is not PEM, or a client certificate that cannot be loaded, stops
    start-up naming the setting."""
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match=r"kafka\.tls\.ca_file"):
        kafka_security(
            KafkaSecurityConfig.model_validate(
                {"security_protocol": "SSL", "tls": {"ca_file": str(junk)}}
            )
        )
    with pytest.raises(ConfigError, match=r"kafka\.tls\.cert_file/key_file"):
        kafka_security(
            KafkaSecurityConfig.model_validate(
                {
                    "security_protocol": "SSL",
                    "tls": {"cert_file": str(junk), "key_file": str(junk)},
                }
            )
        )


def test_config_show_redacts_kafka_secrets(tmp_path: Path) -> None:
    """``detector config show`` prints neither the SASL password, the key password nor the
    schema registry's password, and marks each as set."""
    config = tmp_path / "detector.yaml"
    config.write_text(
        "kafka:\n"
        "  security_protocol: SASL_SSL\n"
        "  tls: {key_password: key-pass-123}\n"
        "  sasl: {mechanism: PLAIN, username: api-key, password: api-secret-456}\n"
        "decode:\n"
        "  schema_registry: {url: 'https://sr.example', username: k, password: sr-pw-789}\n"
    )
    shown = subprocess.run(
        [str(Path(sys.executable).with_name("detector")), "config", "show", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    settings = json.loads(shown)
    for secret_value in ("api-secret-456", "key-pass-123", "sr-pw-789"):
        assert secret_value not in shown
    assert settings["kafka"]["sasl"]["password"] == "**********"
    assert settings["kafka"]["tls"]["key_password"] == "**********"
    assert settings["decode"]["schema_registry"]["password"] == "**********"
    assert settings["kafka"]["sasl"]["username"] == "api-key"


async def test_file_token_provider_rereads_the_rotated_token(tmp_path: Path) -> None:
    """The OAUTHBEARER token file is read at each call, so a rotated token is used at once;
    an empty file is a configuration error."""
    token_file = tmp_path / "token"
    token_file.write_text("first\n")
    provider = FileTokenProvider(token_file)
    assert await provider.token() == "first"
    token_file.write_text("second")
    assert await provider.token() == "second"
    token_file.write_text("")
    with pytest.raises(ConfigError, match="is empty"):
        await provider.token()


async def test_msk_iam_provider_signs_a_connect_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """The MSK IAM provider returns the signer's token (a base64url SigV4-presigned
    ``kafka-cluster:Connect`` URL for the region) and reuses it until it nears expiry."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    provider = MskIamTokenProvider("eu-west-1")
    token = await provider.token()
    url = urlparse(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode())
    query = parse_qs(url.query)
    assert url.hostname == "kafka.eu-west-1.amazonaws.com"
    assert query["Action"] == ["kafka-cluster:Connect"]
    assert query["X-Amz-Credential"][0].startswith("AKIDEXAMPLE/")
    assert await provider.token() == token


async def test_msk_iam_without_credentials_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without any AWS credentials the provider raises a ConfigError that says what the
    process needs, which the start-up check reports with exit 2."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    monkeypatch.delenv("AWS_WEB_IDENTITY_TOKEN_FILE", raising=False)
    with pytest.raises(ConfigError, match="cannot sign an MSK IAM token"):
        await MskIamTokenProvider("eu-west-1").token()
