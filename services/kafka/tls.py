"""A throw-away CA, broker and client certificates and the SASL password of the secured listeners.

Certificates are made with ``openssl`` at every broker start (nothing outlives the state dir): the
broker serves SASL_SSL and SSL (mTLS) with a certificate for 127.0.0.1 and localhost, signed
by a CA that only the tests trust.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from services.process import FailedError

#: The SASL user the local broker knows (SCRAM-SHA-256/512 and PLAIN).
SASL_USER = "detector"
_DAYS = "30"


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """Where the generated material lives."""

    home: Path

    @property
    def ca(self) -> Path:
        """The CA certificate clients trust."""
        return self.home / "ca.pem"

    @property
    def broker_keystore(self) -> Path:
        """The broker's key and certificate chain, one PEM file (Kafka's PEM keystore)."""
        return self.home / "broker-keystore.pem"

    @property
    def client_cert(self) -> Path:
        """The client certificate for the mTLS listener."""
        return self.home / "client.pem"

    @property
    def client_key(self) -> Path:
        """The client certificate's key (PKCS#8, not encrypted)."""
        return self.home / "client.key"

    @property
    def password_file(self) -> Path:
        """The SASL password of :data:`SASL_USER`."""
        return self.home / "sasl-password"

    def password(self) -> str:
        """The SASL password of :data:`SASL_USER`."""
        return self.password_file.read_text().strip()


def _openssl(*args: str, cwd: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise FailedError(
            "kafka: openssl not found: it makes the TLS certificates of the secured listeners "
            "(apt-get install openssl)"
        )
    out = subprocess.run([openssl, *args], cwd=cwd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise FailedError(f"kafka: openssl {args[0]} failed:\n{out.stderr}")


def _key(name: str, home: Path) -> None:
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-out", f"{name}.key", cwd=home)  # fmt: skip


def _signed(name: str, subject: str, extensions: str, home: Path) -> None:
    _key(name, home)
    _openssl("req", "-new", "-key", f"{name}.key", "-subj", subject, "-out", f"{name}.csr",
             cwd=home)  # fmt: skip
    (home / f"{name}.ext").write_text(extensions)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", _DAYS, "-sha256", "-extfile", f"{name}.ext",
             "-out", f"{name}.pem", cwd=home)  # fmt: skip


def generate(home: Path) -> TlsFiles:
    """Make a fresh CA, broker and client certificate under ``home``; keep the SASL password
    (the broker's metadata holds its SCRAM credentials) or make one the first time."""
    files = TlsFiles(home)
    password = files.password() if files.password_file.is_file() else secrets.token_urlsafe(18)
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    _key("ca", home)
    _openssl("req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=detector local test CA",
             "-days", _DAYS, "-sha256", "-out", "ca.pem", cwd=home)  # fmt: skip
    _signed(
        "broker",
        "/CN=localhost",
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n",
        home,
    )
    _signed("client", "/CN=detector-client", "extendedKeyUsage=clientAuth\n", home)
    files.broker_keystore.write_text(
        (home / "broker.key").read_text() + (home / "broker.pem").read_text() + files.ca.read_text()
    )
    files.password_file.write_text(password + "\n")
    for path in home.iterdir():
        path.chmod(0o600)
    return files
