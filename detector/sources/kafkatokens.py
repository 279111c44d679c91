"""OAUTHBEARER token providers for aiokafka: a token file, or AWS MSK IAM signing."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from aiokafka.abc import AbstractTokenProvider

from detector.errors import ConfigError

#: A signed MSK token is reused until this many seconds before it expires.
_REFRESH_MARGIN_SECONDS = 60.0


class FileTokenProvider(AbstractTokenProvider):  # type: ignore[misc]
    """Reads the bearer token from a file at every connection, so rotation needs no restart."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def token(self) -> str:
        """The current token; an unreadable or empty file is a configuration problem."""
        try:
            text = await asyncio.to_thread(self.path.read_text, encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"kafka.sasl.oauth.token_file: cannot read {self.path}: {exc}"
            ) from exc
        token = text.strip()
        if not token:
            raise ConfigError(f"kafka.sasl.oauth.token_file: {self.path} is empty")
        return token


class MskIamTokenProvider(AbstractTokenProvider):  # type: ignore[misc]
    """Signs Amazon MSK IAM tokens with the default AWS credentials chain.

    Uses the ``aws-msk-iam-sasl-signer-python`` package (``pip install 'detector[msk]'``).
    Credentials come from the environment, the shared files, web identity (EKS IRSA or
    Pod Identity) or the instance role, as the AWS SDKs resolve them. A token is reused
    until shortly before it expires.
    """

    def __init__(self, region: str) -> None:
        try:
            from aws_msk_iam_sasl_signer import MSKAuthTokenProvider  # noqa: PLC0415
        except ImportError as exc:
            raise ConfigError(
                "kafka.sasl.oauth.token_source aws_msk_iam needs the MSK IAM signer: "
                "pip install 'detector[msk]'"
            ) from exc
        self.region = region
        self._signer = MSKAuthTokenProvider
        self._token = ""
        self._expires_at = 0.0

    async def token(self) -> str:
        """A valid token, signed again when the cached one is about to expire."""
        if time.time() >= self._expires_at - _REFRESH_MARGIN_SECONDS:
            try:
                token, expiry_ms = await asyncio.to_thread(
                    self._signer.generate_auth_token, self.region
                )
            except Exception as exc:  # botocore's credential errors share no narrower base
                raise ConfigError(
                    f"kafka.sasl.oauth: cannot sign an MSK IAM token ({type(exc).__name__}: "
                    f"{exc}); give the process AWS credentials (IAM role, web identity or "
                    "environment) allowed to kafka-cluster:Connect"
                ) from exc
            self._token, self._expires_at = str(token), int(expiry_ms) / 1000.0
        return self._token
