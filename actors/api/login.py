"""UAA's endpoints cf v8 and cloudfoundry-client log in with: the login
prompts and the token endpoint (password and refresh_token grants for the
`cf` client, Basic auth with an empty secret). Tokens are the `uaa`
actor's to issue; this only speaks UAA's HTTP."""

from __future__ import annotations

import base64
import binascii
from urllib.parse import parse_qsl, unquote

from aiohttp import web

from actors.api.context import BASE_URL, PLATFORM, read_body
from protocol.errors import BadCredentials, InvalidToken
from protocol.messages import IssueToken, TokenGrant

__all__ = ["add_routes"]


def add_routes(app: web.Application) -> None:
    app.router.add_get("/login", _login_info)
    app.router.add_post("/oauth/token", _token)


def _oauth_error(status: int, error: str, description: str) -> web.Response:
    return web.json_response({"error": error, "error_description": description}, status=status)


async def _login_info(request: web.Request) -> web.Response:
    base = request.app[BASE_URL]()
    return web.json_response(
        {
            "app": {"version": "77.0.0"},
            "links": {"uaa": base, "login": base, "passwd": "/forgot_password", "register": "/create_account"},
            "zone_name": "uaa",
            "entityID": "minifoundry",
            "commit_id": "minifoundry",
            "idpDefinitions": {},
            "prompts": {"username": ["text", "Email"], "password": ["password", "Password"]},
            "timestamp": "2026-01-01T00:00:00+0000",
        }
    )


def _client(request: web.Request, form: dict[str, str]) -> tuple[str, str] | None:
    """The OAuth client from Basic auth, or from the form (a public client)."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        client_id, sep, secret = decoded.partition(":")
        if not sep:
            return None
        return unquote(client_id), unquote(secret)
    if "client_id" in form:
        return form["client_id"], form.get("client_secret", "")
    return None


async def _token(request: web.Request) -> web.Response:
    if request.content_type != "application/x-www-form-urlencoded":
        return _oauth_error(400, "invalid_request", "The token request must be application/x-www-form-urlencoded")
    raw = await read_body(request)
    if raw is None:
        return _oauth_error(400, "invalid_request", "The token request is too large")
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        return _oauth_error(400, "invalid_request", "The token request is not UTF-8")
    form = dict(pairs)
    client = _client(request, form)
    if client is None:
        return _oauth_error(401, "unauthorized", "An Authentication object was not found in the SecurityContext")
    grant_type = form.get("grant_type", "")
    if grant_type not in ("password", "refresh_token"):
        return _oauth_error(400, "unsupported_grant_type", f"Unsupported grant type: {grant_type}")
    platform = request.app[PLATFORM]
    message = IssueToken(
        grant_type=grant_type,
        client_id=client[0],
        client_secret=client[1],
        username=form.get("username", ""),
        password=form.get("password", ""),
        refresh_token=form.get("refresh_token", ""),
    )
    try:
        grant: TokenGrant = await platform.system.ask("uaa", message, timeout=platform.clock.for_real(30.0))
    except BadCredentials:
        return _oauth_error(401, "unauthorized", "Bad credentials")
    except InvalidToken:
        return _oauth_error(401, "invalid_token", "The token expired, was revoked, or the token ID is incorrect.")
    return web.json_response(
        {
            "access_token": grant.access_token,
            "token_type": "bearer",
            "id_token": grant.access_token,
            "refresh_token": grant.refresh_token,
            "expires_in": grant.expires_in,
            "scope": grant.scope,
            "jti": grant.jti,
        },
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
    )
