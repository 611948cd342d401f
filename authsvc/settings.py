"""AuthSettings: every ``AUTHSVC_`` variable, validated once at start.

Nothing else in the package reads the environment. ``load_settings`` turns a
validation failure into a ``ConfigError`` whose text is the one line the
program prints, naming the variable.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from authsvc.errors import ConfigError

__all__ = ["DEFAULT_PORT", "AuthSettings", "get_settings", "load_settings"]

DEFAULT_PORT = 8000
MIN_PASSPHRASE_LENGTH = 16
_PREFIX = "AUTHSVC_"
_LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1", "[::1]"}
#: One issuer path segment: RFC 3986 pchar less percent-encoding, and not "." or "..".
_SEGMENT = re.compile(r"(?!\.{1,2}$)[A-Za-z0-9._~!$&'()*+,;=:@-]+")

SigningAlg = Literal["RS256", "EdDSA", "Ed25519", "ES256", "PS256"]


class AuthSettings(BaseSettings):
    """The service's configuration (CONTRACT.md, Configuration)."""

    model_config = SettingsConfigDict(
        env_prefix=_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        case_sensitive=False,
    )

    issuer: str | None = None
    database_url: str = "sqlite:///./authsvc.db"
    key_store: Literal["file", "database"] = "file"
    keys_dir: Path = Path("./keys")
    key_passphrase: SecretStr | None = None
    signing_alg: SigningAlg = "RS256"
    access_token_ttl: int = Field(900, ge=1)
    refresh_token_ttl: int = Field(1_209_600, ge=1)
    refresh_token_max_ttl: int = Field(7_776_000, ge=1)
    refresh_reuse_grace: int = Field(0, ge=0)
    key_rotation_period: int = Field(2_592_000, ge=1)
    key_prepublish: int = Field(86_400, ge=1)
    jwks_max_age: int = Field(300, ge=1)
    clock_skew: int = Field(60, ge=0)
    default_client_id: str = Field("cli", min_length=1, max_length=200)
    default_audience: str = Field("authsvc", min_length=1, max_length=200)
    argon2_memory_kib: int = Field(19_456, ge=8)
    argon2_time_cost: int = Field(2, ge=1)
    argon2_parallelism: int = Field(1, ge=1)
    login_max_per_user: int = Field(10, ge=1)
    login_max_per_address: int = Field(100, ge=1)
    login_window: int = Field(900, ge=1)
    trusted_proxies: str = ""
    redis_url: str | None = None
    password_min_length: int = Field(8, ge=1)
    key_standby: bool = True
    # Browser sign-in (CONTRACT.md): codes, the SSO session, replaceable page templates.
    auth_code_ttl: int = Field(60, ge=1)
    sso_session_ttl: int = Field(28_800, ge=1)
    templates_dir: Path | None = None
    # DPoP (RFC 9449): demand server nonces in proofs.
    dpop_nonce: bool = False
    # The operator's surface: the admin listener ("host:port"; unset: off).
    admin_bind: str | None = None
    # An http issuer off loopback (development networks; serve warns once); /docs.
    allow_http_issuer: bool = False
    docs: bool = False

    @field_validator("issuer")
    @classmethod
    def _check_issuer(cls, value: str | None) -> str | None:
        if value is None:
            return None
        check_issuer(value)
        return value

    @field_validator("templates_dir")
    @classmethod
    def _check_templates_dir(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise ValueError("not a directory")
        return value

    @field_validator("admin_bind")
    @classmethod
    def _check_admin_bind(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        host, sep, port = value.strip().rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError("must be host:port")
        return value.strip()

    @property
    def admin_address(self) -> tuple[str, int] | None:
        """(host, port) of the admin listener, or None when it is off."""
        if self.admin_bind is None:
            return None
        host, _, port = self.admin_bind.rpartition(":")
        return host.strip("[]"), int(port)

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: str) -> str:
        for item in _split(value):
            ipaddress.ip_network(item, strict=False)
        return value

    @field_validator("key_passphrase")
    @classmethod
    def _empty_passphrase_is_unset(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value():
            return None
        if value is not None and len(value.get_secret_value()) < MIN_PASSPHRASE_LENGTH:
            # The KDF slows each guess; only length makes the guesses many (issue #13, finding 7).
            raise ValueError(f"must be at least {MIN_PASSPHRASE_LENGTH} characters")
        return value

    @model_validator(mode="after")
    def _check_relations(self) -> AuthSettings:
        if self.key_prepublish < self.jwks_max_age:
            raise ValueError("key_prepublish: must be at least AUTHSVC_JWKS_MAX_AGE")
        if self.key_store == "database" and self.key_passphrase is None:
            raise ValueError("key_passphrase: required when AUTHSVC_KEY_STORE=database")
        if self.issuer is not None and self.http_issuer_off_loopback and not self.allow_http_issuer:
            raise ValueError(
                "issuer: must use https except on loopback (AUTHSVC_ALLOW_HTTP_ISSUER=true allows it)"
            )
        return self

    @property
    def trusted_proxy_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return tuple(ipaddress.ip_network(item, strict=False) for item in _split(self.trusted_proxies))

    @property
    def resolved_issuer(self) -> str:
        """The issuer, defaulting to the loopback address on the default port."""
        return self.issuer or f"http://127.0.0.1:{DEFAULT_PORT}"

    def for_port(self, port: int) -> AuthSettings:
        """A copy whose default issuer names the port ``serve`` listens on."""
        if self.issuer is not None:
            return self
        return self.model_copy(update={"issuer": f"http://127.0.0.1:{port}"})

    @property
    def issuer_path(self) -> str:
        """The issuer's path (``/auth``), under which every endpoint is served; ``""`` for none."""
        return urlsplit(self.resolved_issuer).path

    @property
    def http_issuer_off_loopback(self) -> bool:
        """An ``http`` issuer on a host other than loopback (AUTHSVC_ALLOW_HTTP_ISSUER)."""
        parts = urlsplit(self.resolved_issuer)
        return parts.scheme == "http" and parts.hostname not in _LOOPBACK_HOSTS

    @property
    def loopback_issuer(self) -> bool:
        """The issuer names a loopback host: only this machine can reach what tokens name."""
        return _loopback(urlsplit(self.resolved_issuer).hostname)

    @property
    def secure_cookies(self) -> bool:
        """Cookies are Secure and ``__Host-`` prefixed when the issuer is https."""
        return self.resolved_issuer.startswith("https://")

    @property
    def passphrase_bytes(self) -> bytes | None:
        return self.key_passphrase.get_secret_value().encode() if self.key_passphrase else None


def check_issuer(value: str) -> None:
    """Raise ValueError unless ``value`` is a valid issuer (CONTRACT.md).

    The issuer goes byte for byte into every token, so it must be exactly
    ``scheme://host[:port][/path]``: nothing urlsplit would quietly drop or
    normalise. A path is plain segments (RFC 3986 ``pchar`` without
    percent-encoding, no ``.`` or ``..``, no empty segment); every endpoint is
    served under it. Whether http is allowed off loopback is decided with
    ``AUTHSVC_ALLOW_HTTP_ISSUER`` (``AuthSettings``).
    """
    if not value.isascii() or any(c.isspace() or not c.isprintable() for c in value):
        raise ValueError("must be a plain URL without spaces or control characters")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL")
    if value != f"{parts.scheme}://{parts.netloc}{parts.path}" or value.endswith("/"):
        raise ValueError("must have no query, fragment or trailing '/'")
    if parts.path and not all(_SEGMENT.fullmatch(s) for s in parts.path[1:].split("/")):
        raise ValueError("must have a path of plain segments (no '.', '..', '//' or '%')")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise ValueError("must not carry credentials")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("has an invalid port") from None
    if parts.netloc.endswith(":") or (port is not None and port == 0):
        raise ValueError("has an invalid port")


def _loopback(host: str | None) -> bool:
    if host in _LOOPBACK_HOSTS:
        return True
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _split(value: str) -> list[str]:
    return [item.strip() for item in value.replace(",", " ").split() if item.strip()]


def _unknown_variables(env_file: Path | None) -> list[str]:
    known = {_PREFIX + name.upper() for name in AuthSettings.model_fields}
    names = [key.upper() for key in os.environ if key.upper().startswith(_PREFIX)]
    if env_file is not None and env_file.is_file():
        for line in env_file.read_text(encoding="utf-8", errors="replace").splitlines():
            key = line.split("=", 1)[0].strip().removeprefix("export ").strip().upper()
            if key.startswith(_PREFIX) and "=" in line:
                names.append(key)
    return sorted({name for name in names if name not in known and not name.startswith(_PREFIX + "TEST_")})


def load_settings(**overrides: Any) -> AuthSettings:
    """Read and validate settings, raising ConfigError with one line on failure."""
    env_file = Path(".env")
    unknown = _unknown_variables(env_file)
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown setting")
    try:
        return AuthSettings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_one_line(exc)) from None


def get_settings() -> AuthSettings:
    """Settings for the CLI, the scripts and create_app's default."""
    return load_settings()


def _one_line(exc: ValidationError) -> str:
    error = exc.errors(include_url=False, include_input=False)[0]
    loc = [str(part) for part in error.get("loc", ()) if part]
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    if not loc and ":" in message:
        field, message = message.split(":", 1)
        loc = [field.strip()]
        message = message.strip()
    name = _PREFIX + (loc[0].upper() if loc else "SETTINGS")
    return f"{name}: {message}"
