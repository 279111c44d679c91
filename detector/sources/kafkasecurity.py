"""Kafka security settings and the one builder every Kafka client takes them from.

The consumer, the producers and the admin client all receive the keyword arguments of
:func:`kafka_security`, so TLS, mTLS and SASL (PLAIN, SCRAM-SHA-256/512, OAUTHBEARER with
a token provider, AWS MSK IAM) are configured once, in the ``kafka`` section.
Secrets are :class:`~pydantic.SecretStr` (redacted by ``detector config show``) or read
from files (``*_file``), as Kubernetes mounts secrets.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any, Literal, Self

from aiokafka import errors as Errors  # noqa: N812 (aiokafka's own spelling)
from aiokafka.conn import create_conn
from pydantic import BaseModel, Field, SecretStr, model_validator

from detector.errors import ConfigError
from detector.sources.kafkatokens import FileTokenProvider, MskIamTokenProvider

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]
TokenSource = Literal["file", "aws_msk_iam"]

#: aiokafka client keyword arguments (security_protocol, ssl_context, sasl_*).
KafkaSecurity = dict[str, Any]


class TlsConfig(BaseModel):
    """``kafka.tls``: trust and (for mTLS) the client's own certificate.

    Without ``ca_file`` the system trust store is used (public CAs, as Amazon MSK and
    Confluent Cloud use). ``check_hostname`` stays on unless the broker certificates
    do not name the addresses clients use.
    """

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    key_password: SecretStr | None = None
    key_password_file: Path | None = None
    check_hostname: bool = True

    @model_validator(mode="after")
    def _pairs(self) -> Self:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (the client certificate for mTLS)")
        one_of(self.key_password, self.key_password_file, "key_password")
        return self


class OAuthConfig(BaseModel):
    """``kafka.sasl.oauth``: where OAUTHBEARER tokens come from.

    ``file`` reads the token from ``token_file`` at every (re)connection, so a sidecar or a
    Kubernetes projected token can rotate it. ``aws_msk_iam`` signs a token for Amazon MSK
    with the default AWS credentials chain (needs the ``msk`` extra).
    """

    token_source: TokenSource = "file"
    token_file: Path | None = None
    aws_region: str | None = None

    @model_validator(mode="after")
    def _source_settings(self) -> Self:
        if self.token_source == "file" and self.token_file is None:
            raise ValueError("token_source file needs token_file")
        if self.token_source == "aws_msk_iam" and not self.aws_region:
            raise ValueError("token_source aws_msk_iam needs aws_region (the cluster's region)")
        return self


class SaslConfig(BaseModel):
    """``kafka.sasl``: the SASL mechanism and its credentials."""

    mechanism: SaslMechanism | None = None
    username: str | None = None
    username_file: Path | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    oauth: OAuthConfig | None = None

    @model_validator(mode="after")
    def _credentials(self) -> Self:
        one_of(self.username, self.username_file, "username")
        one_of(self.password, self.password_file, "password")
        if self.mechanism == "OAUTHBEARER":
            if self.oauth is None:
                raise ValueError("mechanism OAUTHBEARER needs oauth.token_source")
        elif self.mechanism is not None:
            if self.username is None and self.username_file is None:
                raise ValueError(f"mechanism {self.mechanism} needs username (or username_file)")
            if self.password is None and self.password_file is None:
                raise ValueError(f"mechanism {self.mechanism} needs password (or password_file)")
        return self


class KafkaSecurityConfig(BaseModel):
    """Connection security of every Kafka client (part of the ``kafka`` section)."""

    security_protocol: SecurityProtocol = "PLAINTEXT"
    tls: TlsConfig = Field(default_factory=TlsConfig)
    sasl: SaslConfig = Field(default_factory=SaslConfig)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        uses_sasl = self.security_protocol.startswith("SASL_")
        uses_tls = self.security_protocol.endswith("SSL")
        if uses_sasl and self.sasl.mechanism is None:
            raise ValueError(f"security_protocol {self.security_protocol} needs sasl.mechanism")
        if not uses_sasl and self.sasl.mechanism is not None:
            raise ValueError(
                f"sasl.mechanism is set but security_protocol is {self.security_protocol}: "
                "use SASL_SSL (or SASL_PLAINTEXT)"
            )
        if not uses_tls and self.tls != TlsConfig():
            raise ValueError(
                f"tls settings are set but security_protocol is {self.security_protocol}: "
                "use SSL or SASL_SSL"
            )
        return self


def kafka_security(config: KafkaSecurityConfig) -> KafkaSecurity:
    """The aiokafka keyword arguments for ``config``; reads secret files and certificates.

    Raises :class:`ConfigError` naming the setting when a file cannot be read or a
    certificate or key cannot be loaded.
    """
    options: KafkaSecurity = {"security_protocol": config.security_protocol}
    if config.security_protocol.endswith("SSL"):
        options["ssl_context"] = _ssl_context(config.tls)
    sasl = config.sasl
    if sasl.mechanism is None:
        return options
    options["sasl_mechanism"] = sasl.mechanism
    if sasl.mechanism == "OAUTHBEARER":
        assert sasl.oauth is not None  # checked by SaslConfig
        options["sasl_oauth_token_provider"] = _token_provider(sasl.oauth)
    else:
        options["sasl_plain_username"] = secret(
            sasl.username, sasl.username_file, "kafka.sasl.username"
        )
        options["sasl_plain_password"] = secret(
            sasl.password, sasl.password_file, "kafka.sasl.password"
        )
    return options


def secret(value: SecretStr | str | None, file: Path | None, setting: str) -> str | None:
    """A secret given inline or in a file (surrounding whitespace and newline removed)."""
    if file is None:
        return value.get_secret_value() if isinstance(value, SecretStr) else value
    try:
        return file.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{setting}_file: cannot read {file}: {exc}") from exc


def one_of(value: object, file: Path | None, name: str) -> None:
    """In a validator: a secret is given inline or as ``*_file``, not both."""
    if value is not None and file is not None:
        raise ValueError(f"set {name} or {name}_file, not both")


def _ssl_context(tls: TlsConfig) -> ssl.SSLContext:
    password = secret(tls.key_password, tls.key_password_file, "kafka.tls.key_password")
    context = tls_context("kafka.tls", tls.ca_file, tls.cert_file, tls.key_file, password)
    context.check_hostname = tls.check_hostname
    return context


def tls_context(
    setting: str,
    ca_file: Path | None,
    cert_file: Path | None = None,
    key_file: Path | None = None,
    key_password: str | None = None,
) -> ssl.SSLContext:
    """A client TLS context: verify peers with ``ca_file`` (or the system store), present
    ``cert_file``/``key_file`` when given. Errors name the ``setting`` section to fix."""
    try:
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"{setting}.ca_file: cannot load CA certificates: {exc}") from exc
    if cert_file is not None and key_file is not None:
        try:
            context.load_cert_chain(str(cert_file), str(key_file), password=key_password)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"{setting}.cert_file/key_file: cannot load the client certificate "
                f"{cert_file} with key {key_file}: {exc}; check the files (PEM) and "
                f"{setting}.key_password"
            ) from exc
    return context


def _token_provider(oauth: OAuthConfig) -> FileTokenProvider | MskIamTokenProvider:
    if oauth.token_source == "aws_msk_iam":
        assert oauth.aws_region is not None  # checked by OAuthConfig
        return MskIamTokenProvider(oauth.aws_region)
    assert oauth.token_file is not None  # checked by OAuthConfig
    return FileTokenProvider(oauth.token_file)


async def check_connection(
    bootstrap_servers: str, security: KafkaSecurity, timeout_seconds: float = 15.0
) -> None:
    """Connect and authenticate to a bootstrap server; explain a security failure.

    The Kafka clients only report "unable to bootstrap" when TLS or SASL fails, so this
    runs first: a wrong password, an untrusted CA, a mechanism the broker does not enable
    or a protocol the listener does not speak raises :class:`ConfigError` naming the
    cause (never a secret). A server that cannot be reached at all is left to the
    clients, which report and retry it as usual.
    """
    problems: list[str] = []
    for address in (a.strip() for a in bootstrap_servers.split(",") if a.strip()):
        host, _, port = address.rpartition(":")
        try:
            conn = await asyncio.wait_for(
                create_conn(host or address, int(port or 9092), **security),
                timeout_seconds,
            )
        except Exception as exc:  # sorted below: security failure or unreachable server
            reason = _security_failure(exc, security)
            if reason:
                problems.append(f"{address}: {reason}")
            continue
        conn.close()
        return
    if problems:
        raise ConfigError(
            "cannot connect to Kafka with the configured security "
            f"(kafka.security_protocol {security['security_protocol']}):\n"
            + "\n".join(f"  - {p}" for p in problems)
        )


def _security_failure(exc: BaseException, security: KafkaSecurity) -> str:
    """Why ``exc`` is a TLS/SASL problem the user must fix, or "" for an unreachable server."""
    mechanism = security.get("sasl_mechanism")
    user = security.get("sasl_plain_username")
    if isinstance(exc, ssl.SSLCertVerificationError):
        if "mismatch" in (exc.verify_message or ""):
            return (
                f"TLS: the broker certificate does not name this host ({exc.verify_message}); "
                "connect by a name the certificate lists, or set kafka.tls.check_hostname false"
            )
        return (
            f"TLS: the broker certificate is not trusted ({exc.verify_message}); set "
            "kafka.tls.ca_file to the CA that signed it"
        )
    if isinstance(exc, ssl.SSLError):
        return (
            f"TLS handshake failed ({exc.reason or exc}); check that this is a TLS listener "
            "(kafka.security_protocol) and, for mTLS, kafka.tls.cert_file and key_file"
        )
    if isinstance(exc, Errors.UnsupportedSaslMechanismError):
        return (
            f"SASL: the broker does not enable mechanism {mechanism} ({exc}); "
            "set kafka.sasl.mechanism to one it enables"
        )
    if isinstance(exc, Errors.SaslAuthenticationFailed):
        who = f" for user {user!r}" if user else ""
        return (
            f"SASL {mechanism} authentication failed{who}: the broker refused the credentials; "
            "check kafka.sasl.username and kafka.sasl.password (or the token)"
        )
    if isinstance(exc, ConfigError):
        return str(exc)
    closed = isinstance(exc, ConnectionResetError | asyncio.IncompleteReadError) or (
        isinstance(exc, Errors.KafkaConnectionError) and "closed" in str(exc)
    )
    if closed:
        return (
            "the broker closed the connection during the handshake: kafka.security_protocol "
            f"{security['security_protocol']} may not be what this listener speaks, or the "
            "listener requires a client certificate (kafka.tls.cert_file and key_file)"
        )
    return ""
