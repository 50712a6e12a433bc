"""API keys: who is calling, and which jobs they may see.

With keys configured (``MORALSCOPE_API_KEYS`` and/or ``MORALSCOPE_API_KEYS_FILE``) every ``/v1`` call
needs ``Authorization: Bearer <key>``, and each key owns the jobs it submitted (another key gets 404
for them, so job ids leak nothing). Keys are kept only as sha256 digests; a job's owner is a short
digest, never the key. With no keys configured, every caller is the same local owner.

The web console authenticates a browser once with a key and then by a session cookie that names the
key's owner (:mod:`service.sessions`); :meth:`KeyRing.session_principal` accepts such a session only
while its key is still configured.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from schemas.errors import AuthError
from service.settings import Settings

LOCAL_OWNER = "local"
"""The owner of every job when no API keys are configured."""


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of a request."""

    owner: str
    """The owner id jobs are stored under (``key:<digest prefix>``, or ``local`` without keys)."""
    authenticated: bool


def owner_of_key(key: str) -> str:
    """The owner id of an API key (a digest prefix: stable, and useless to an attacker)."""
    return "key:" + hashlib.sha256(key.encode()).hexdigest()[:16]


class KeyRing:
    """The configured API keys, as digests."""

    def __init__(self, keys: list[str]) -> None:
        self._owners = {hashlib.sha256(k.encode()).hexdigest(): owner_of_key(k) for k in keys if k}
        self._owner_ids = frozenset(self._owners.values())

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        return cls(settings.all_api_keys())

    @property
    def enabled(self) -> bool:
        return bool(self._owners)

    def authenticate(self, authorization: str | None) -> Principal:
        """The principal of an ``Authorization`` header value; :class:`AuthError` when it is missing or wrong."""
        if not self.enabled:
            return Principal(owner=LOCAL_OWNER, authenticated=False)
        if not authorization:
            raise AuthError("this server requires an API key: send the header `Authorization: Bearer <key>`")
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError("the Authorization header must read `Bearer <key>`")
        return self.authenticate_key(token)

    def authenticate_key(self, key: str) -> Principal:
        """The principal of a bare key (the console's login form); :class:`AuthError` when it is wrong."""
        if not self.enabled:
            return Principal(owner=LOCAL_OWNER, authenticated=False)
        owner = self._owners.get(hashlib.sha256(key.strip().encode()).hexdigest())
        if owner is None:
            raise AuthError("the API key is not valid for this server; check the key the client sends")
        return Principal(owner=owner, authenticated=True)

    def session_principal(self, owner: str | None) -> Principal | None:
        """The principal of a console session logged in as ``owner``: the local owner without keys; None
        when keys are configured and the session is not logged in, or its key has since been removed."""
        if not self.enabled:
            return Principal(owner=LOCAL_OWNER, authenticated=False)
        if owner is not None and owner in self._owner_ids:
            return Principal(owner=owner, authenticated=True)
        return None
