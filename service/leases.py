"""Leases: which runner works on a job, and when a job may be taken over.

A runner claims a job with ``lease_owner = host:pid:token`` and renews it while it works. A lease is
stale when it has expired, or when its holder is a process on this host that no longer exists, or this
very process's pid with a token no live runner has (a restarted container keeps its host name and pid).
"""

from __future__ import annotations

import os
import secrets
import socket

_live_lease_tokens: set[str] = set()
"""Lease tokens of runners alive in this process (a same-pid lease with another token is stale)."""


def new_lease_owner() -> str:
    """A lease holder id for a new runner in this process."""
    token = secrets.token_hex(6)
    _live_lease_tokens.add(token)
    return f"{socket.gethostname()}:{os.getpid()}:{token}"


def forget_lease_owner(lease_owner: str) -> None:
    """Mark a runner of this process as gone (its leases become stale)."""
    _live_lease_tokens.discard(lease_owner.rsplit(":", 1)[-1])


def lease_is_stale(lease_owner: str | None, lease_expires: float | None, now: float) -> bool:
    """Whether a lease may be taken over (see the module docstring)."""
    if lease_owner is None or lease_expires is None or lease_expires < now:
        return True
    host, _, rest = lease_owner.partition(":")
    pid_text, _, token = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return token not in _live_lease_tokens
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, owned by someone else
        return False
    return False
