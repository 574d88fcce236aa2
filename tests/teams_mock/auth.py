"""Keys, tokens and certificates for a local Bot Framework: what Microsoft signs with, made here.

``TokenIssuer`` holds an RSA key, publishes it as a JWKS (the connector mock serves it where the
SDK's validator looks) and signs Bot Framework tokens with it; ``self_signed_cert`` makes the TLS
certificate for the local file host, since the SDK downloads uploaded files over https only.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

BOT_FRAMEWORK_ISSUER = "https://api.botframework.com"


class TokenIssuer:
    """An RSA key with a key id: ``jwks()`` publishes it, ``token()`` signs with it."""

    def __init__(self, kid: str | None = None) -> None:
        self.kid = kid or uuid.uuid4().hex
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwks(self) -> dict[str, Any]:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return {
            "keys": [
                public
                | {"kid": self.kid, "use": "sig", "alg": "RS256", "endorsements": ["msteams"]}
            ]
        }

    def token(
        self,
        audience: str,
        service_url: str | None = None,
        *,
        issuer: str = BOT_FRAMEWORK_ISSUER,
        lifetime_s: int = 3600,
        **claims: Any,
    ) -> str:
        """A Bot Framework connector token, as Teams sends to the bot's endpoint."""
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": issuer,
            "aud": audience,
            "iat": now,
            "nbf": now - 5,
            "exp": now + lifetime_s,
            "appid": "connector",
            **claims,
        }
        if service_url is not None:
            payload["serviceurl"] = service_url
        return jwt.encode(payload, self.key, algorithm="RS256", headers={"kid": self.kid})


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files in ``directory``."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path
