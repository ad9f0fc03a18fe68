"""The `uaa` actor: UAA's part of the platform, one user (`admin`) and one
OAuth client (`cf`, empty secret, as the cf CLI and cloudfoundry-client use).

It issues signed JWT access tokens (HS256 with a key it keeps owner-only in
``<data>/uaa/signing.key``; claims `user_name`, `user_id`, `origin`, `exp`
and the rest UAA sets) and refresh tokens (signed with a key derived apart,
so neither kind passes for the other), and verifies access tokens for the
API: a token forged, tampered, unsigned (`alg: none`), of the wrong kind or
past its `exp` is `InvalidToken`. Expiry runs on the platform's clock.

The admin password comes from ``MINIFOUNDRY_ADMIN_PASSWORD`` at the first
boot on a data directory, or is generated and written owner-only to
``<data>/uaa/admin-password``; either way only its scrypt hash is kept
(``<data>/uaa/users.json``), and later boots read that.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import os
import secrets
import uuid
from pathlib import Path
from typing import Any

import jwt
import structlog

from actors.runtime import AsyncioActor, handles
from actors.runtime.offload import in_thread
from protocol.errors import BadCredentials, InvalidToken
from protocol.messages import IssueToken, TokenClaims, TokenGrant, VerifyToken

__all__ = ["ADMIN", "PASSWORD_ENV", "UaaActor", "UaaConfig", "password_file"]

log = structlog.get_logger("minifoundry.uaa")

ADMIN = "admin"
CLIENT_ID = "cf"
PASSWORD_ENV = "MINIFOUNDRY_ADMIN_PASSWORD"
SCOPES = (
    "openid",
    "cloud_controller.admin",
    "cloud_controller.read",
    "cloud_controller.write",
    "doppler.firehose",
    "scim.read",
    "uaa.user",
)
_ALGORITHM = "HS256"
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}


@dataclasses.dataclass(frozen=True, slots=True)
class UaaConfig:
    # UAA's validity for the `cf` client: 2 hours, and 14 days to refresh.
    access_token_seconds: int = 7200
    refresh_token_seconds: int = 1_209_600
    issuer: str = "http://127.0.0.1/oauth/token"


def password_file(uaa_dir: Path | str) -> Path:
    """Where a generated admin password is kept for its owner to read."""
    return Path(uaa_dir) / "admin-password"


def _write_private(path: Path, data: bytes) -> None:
    """Write `path` owner-only (0600), atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _hash(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, **_SCRYPT)


def _load_or_create(uaa_dir: Path, env_password: str | None) -> tuple[bytes, dict[str, Any]]:
    """The signing key and the user table, created at the first boot."""
    uaa_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(uaa_dir, 0o700)
    key_path = uaa_dir / "signing.key"
    if not key_path.exists():
        _write_private(key_path, secrets.token_hex(32).encode("ascii"))
    key = bytes.fromhex(key_path.read_text(encoding="ascii").strip())
    if len(key) < 32:
        raise ValueError(f"{key_path} does not hold a signing key")
    users_path = uaa_dir / "users.json"
    if users_path.exists():
        users = json.loads(users_path.read_text(encoding="utf-8"))
    else:
        password = env_password or secrets.token_urlsafe(18)
        if not env_password:
            _write_private(password_file(uaa_dir), (password + "\n").encode("utf-8"))
        salt = secrets.token_bytes(16)
        users = {
            ADMIN: {
                # Named, not drawn: secrets come from `secrets`, and ids from
                # nothing random at all.
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"minifoundry:user:{ADMIN}")),
                "salt": salt.hex(),
                "hash": _hash(password, salt).hex(),
            }
        }
        _write_private(users_path, json.dumps(users, indent=2).encode("utf-8"))
    return key, users


class UaaActor(AsyncioActor):
    default_name = "uaa"

    def __init__(self, uaa_dir: Path | str, config: UaaConfig | None = None, *, name: str = "uaa") -> None:
        super().__init__(name=name)
        self.uaa_dir = Path(uaa_dir)
        self.config = config or UaaConfig()
        self._key = b""
        self._refresh_key = b""
        self._users: dict[str, Any] = {}

    async def on_start(self) -> None:  # type: ignore[override]  # pykka types hooks -> None
        env_password = os.environ.get(PASSWORD_ENV) or None
        async with self.clock.threaded_io():
            self._key, self._users = await in_thread(_load_or_create, self.uaa_dir, env_password)
        self._refresh_key = hmac.new(self._key, b"refresh-token", hashlib.sha256).digest()

    # --- issuing ------------------------------------------------------------------------------

    @handles(IssueToken, concurrent=True)
    async def _issue(self, message: IssueToken) -> TokenGrant:
        if message.client_id != CLIENT_ID or message.client_secret != "":
            raise BadCredentials("Bad credentials")
        if message.grant_type == "password":
            user = self._users.get(message.username)
            if user is None or not await self._password_matches(user, message.password):
                log.info("uaa-login-refused", user=message.username)
                raise BadCredentials("Bad credentials")
            return self._grant(message.username, user["id"], "password")
        if message.grant_type == "refresh_token":
            claims = self._decode(message.refresh_token, self._refresh_key)
            name = claims.get("user_name")
            if not isinstance(name, str) or name not in self._users:
                raise InvalidToken("Invalid refresh token")
            user = self._users[name]
            if claims.get("user_id") != user["id"]:
                raise InvalidToken("Invalid refresh token")
            return self._grant(name, user["id"], "refresh_token")
        raise BadCredentials(f"Unsupported grant type: {message.grant_type}")

    async def _password_matches(self, user: dict[str, Any], password: str) -> bool:
        salt = bytes.fromhex(user["salt"])
        async with self.clock.threaded_io():
            digest = await in_thread(_hash, password, salt)
        return hmac.compare_digest(digest, bytes.fromhex(user["hash"]))

    def _grant(self, user_name: str, user_id: str, grant_type: str) -> TokenGrant:
        now = int(self.clock.now())
        jti = self.system.new_guid().replace("-", "")
        claims = {
            "jti": jti,
            "sub": user_id,
            "scope": list(SCOPES),
            "client_id": CLIENT_ID,
            "cid": CLIENT_ID,
            "azp": CLIENT_ID,
            "grant_type": grant_type,
            "user_id": user_id,
            "origin": "uaa",
            "user_name": user_name,
            "email": user_name,
            "auth_time": now,
            "rev_sig": jti[:8],
            "iat": now,
            "exp": now + self.config.access_token_seconds,
            "iss": self.config.issuer,
            "zid": "uaa",
            "aud": ["cloud_controller", "openid", "uaa", CLIENT_ID, "doppler", "scim"],
        }
        refresh = dict(claims, jti=f"{jti}-r", exp=now + self.config.refresh_token_seconds, aud=[CLIENT_ID])
        headers = {"kid": "key-1", "typ": "JWT"}
        return TokenGrant(
            access_token=jwt.encode(claims, self._key, algorithm=_ALGORITHM, headers=headers),
            refresh_token=jwt.encode(refresh, self._refresh_key, algorithm=_ALGORITHM, headers=headers),
            expires_in=self.config.access_token_seconds - 1,
            scope=" ".join(SCOPES),
            jti=jti,
        )

    # --- verifying ----------------------------------------------------------------------------

    @handles(VerifyToken)
    def _verify(self, message: VerifyToken) -> TokenClaims:
        claims = self._decode(message.token, self._key)
        user_name, user_id = claims.get("user_name"), claims.get("user_id")
        user = self._users.get(user_name) if isinstance(user_name, str) else None
        if user is None or user["id"] != user_id:
            raise InvalidToken()
        scopes = claims.get("scope")
        return TokenClaims(
            user_name=str(user_name),
            user_id=str(user_id),
            scopes=tuple(scopes) if isinstance(scopes, list) else (),
            expires_at=float(claims["exp"]),
        )

    def _decode(self, token: str, key: bytes) -> dict[str, Any]:
        """The claims of a token signed with `key` and not expired on the
        platform's clock; `InvalidToken` otherwise (never `alg: none`)."""
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[_ALGORITHM],  # only ours: `none` and every other alg are refused
                options={"verify_exp": False, "verify_aud": False, "verify_iat": False, "require": ["exp"]},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"Invalid Auth Token: {exc}") from None
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or isinstance(exp, bool) or exp <= self.clock.now():
            raise InvalidToken("Invalid Auth Token: the token has expired")
        return claims
