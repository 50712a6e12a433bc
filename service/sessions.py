"""Browser sessions of the web console: signed, expiring cookies and the CSRF tokens bound to them.

A session cookie reads ``<payload>.<signature>``: the payload (base64url JSON) holds a random session
id, the owner the session was opened for (``key:<digest>`` as in :mod:`service.auth`, never the key
itself; none before login) and its expiry; the signature is HMAC-SHA256 of the payload under the
server's session secret. Nothing is stored server side: any replica holding the same secret reads any
session, and a session ends when it expires, when the browser drops the cookie (logout), or when its
key is removed from the server's keys (:meth:`service.auth.KeyRing.session_principal`).

The cookie is ``HttpOnly`` (scripts cannot read it), ``SameSite=Strict`` (the browser does not send it
with requests started by other sites), ``Path=/``, and ``Secure`` when the request came over https.

Forms and cookie-authenticated API calls that change something carry a CSRF token: HMAC of the session
id under the same secret (a form field, or the ``X-CSRF-Token`` header), so a page on another site can
neither read nor forge it. Requests whose ``Origin`` names another host are refused as well.

The secret is ``MORALSCOPE_SESSION_SECRET``. Without it each process draws a random one: sessions then
end when the server restarts, and replicas behind one address do not share them (set the variable from
a Secret in such deployments).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from service.settings import Settings

COOKIE_NAME = "moralscope_session"
CSRF_FIELD = "csrf_token"
"""The form field holding the CSRF token."""
CSRF_HEADER = "X-CSRF-Token"
"""The header holding the CSRF token on API calls authenticated by the session cookie."""
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class Session:
    """One browser session."""

    sid: str
    """A random id: what the CSRF token is bound to."""
    owner: str | None
    """The owner the session was logged in as (None: not logged in)."""
    expires: int
    """Unix time after which the session is no longer accepted."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionSigner:
    """Issues and reads session cookies and their CSRF tokens under one secret."""

    def __init__(self, secret: bytes, *, max_age: int) -> None:
        if len(secret) < 16:
            raise ValueError("the session secret must be at least 16 bytes long")
        self._key = hashlib.sha256(b"moralscope session\0" + secret).digest()
        self.max_age = max_age

    @classmethod
    def from_settings(cls, settings: Settings) -> SessionSigner:
        """The signer of ``MORALSCOPE_SESSION_SECRET``, or of a random per-process secret when it is unset."""
        secret = settings.session_secret.get_secret_value().encode() if settings.session_secret else None
        return cls(secret or secrets.token_bytes(32), max_age=settings.session_max_age)

    def _sign(self, purpose: bytes, data: bytes) -> bytes:
        return hmac.new(self._key, purpose + b"\0" + data, hashlib.sha256).digest()

    def issue(self, owner: str | None, *, now: float | None = None) -> tuple[Session, str]:
        """A new session (a fresh id, so logging in never reuses an earlier session) and its cookie value."""
        session = Session(sid=secrets.token_urlsafe(16), owner=owner, expires=int(now or time.time()) + self.max_age)
        payload = json.dumps({"sid": session.sid, "own": owner, "exp": session.expires}, separators=(",", ":"))
        encoded = _b64(payload.encode())
        return session, f"{encoded}.{_b64(self._sign(b'session', encoded.encode()))}"

    def read(self, cookie: str | None, *, now: float | None = None) -> Session | None:
        """The session of a cookie value; None when it is missing, forged, malformed or expired."""
        if not cookie or cookie.count(".") != 1:
            return None
        encoded, signature = cookie.split(".")
        try:
            valid = hmac.compare_digest(_unb64(signature), self._sign(b"session", encoded.encode()))
            data = json.loads(_unb64(encoded)) if valid else None
        except (binascii.Error, ValueError, UnicodeDecodeError):
            return None
        if not isinstance(data, dict):
            return None
        sid, owner, expires = data.get("sid"), data.get("own"), data.get("exp")
        if not isinstance(sid, str) or not isinstance(expires, int) or not (owner is None or isinstance(owner, str)):
            return None
        if expires <= (now or time.time()):
            return None
        return Session(sid=sid, owner=owner, expires=expires)

    def csrf_token(self, session: Session) -> str:
        """The CSRF token of a session (what its forms carry)."""
        return _b64(self._sign(b"csrf", session.sid.encode()))

    def csrf_valid(self, session: Session | None, token: str | None) -> bool:
        """Whether ``token`` is the CSRF token of ``session``."""
        if session is None or not token:
            return False
        return hmac.compare_digest(token.encode(), self.csrf_token(session).encode())


def session_of(request: Request) -> Session | None:
    """The request's valid session, if its cookie holds one."""
    signer: SessionSigner = request.app.state.sessions
    return signer.read(request.cookies.get(COOKIE_NAME))


def is_cross_origin(request: Request) -> bool:
    """Whether the browser says the request comes from a page of another host (its ``Origin`` header).

    Hosts are compared without the scheme, so a proxy that terminates TLS in front of the server does
    not make its own pages look foreign. ``Origin: null`` (sandboxed or privacy-stripped) counts as foreign.
    """
    origin = request.headers.get("origin")
    if origin is None:
        return False
    host = request.headers.get("host", "")
    return origin == "null" or urlsplit(origin).netloc.lower() != host.lower()


def is_https(request: Request) -> bool:
    """Whether the browser reached us over https (directly, or through a proxy that says so)."""
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


def set_session_cookie(response: Response, request: Request, value: str, *, max_age: int) -> None:
    """Store a session cookie: HttpOnly, SameSite=Strict, Path=/, Secure over https."""
    response.set_cookie(
        COOKIE_NAME,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="strict",
        secure=is_https(request),
    )
