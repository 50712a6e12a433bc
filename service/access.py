"""Server paths and URIs are the operator's: what a job submitted over the API may name (issue 12, item 4).

A model given as a server path, and a custom benchmark's data file given as a server path, is refused
(422, naming the field) unless it lies under a folder the operator allows
(``MORALSCOPE_ALLOWED_LOCAL_ROOTS``; default none). Paths are resolved (``~``, ``..``, symlinks; relative
ones against the server's working directory) before they are compared, and the message depends only on
what the spec wrote and the settings — never on whether the path exists. A URI is read with the service's
credentials, so only operator-allowed prefixes are accepted (``MORALSCOPE_ALLOWED_URI_PREFIXES``), and
anything that could redirect the request or change its credentials is refused: query options
(``?endpoint_override=…``, ``?scheme=…``), a fragment, user info (``key:secret@``), ``.``/``..`` segments.

Model names are classified by syntax (``workers.models.model_name_kind``): built-in names and Hub ids
(``org/name``) need no check, and the runner then never reads them as folders
(``resolve_model(any_local_folder=False)``). ``upload:`` references resolve inside the caller's own
uploads folder (:func:`uploads_location`). ``moralscope run`` runs with ``unrestricted_paths`` (the user's
own spec on the user's own machine). The policy is checked at submission and again by the runner.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from evals.custom import DataAccess
from schemas.custom import UPLOAD_SCHEME
from schemas.errors import InvalidInputError
from schemas.spec import JobSpec
from service.results import normalize_results_root
from service.settings import Settings
from workers.models import model_name_kind


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


@dataclass(frozen=True)
class AccessPolicy:
    """The folders and URI prefixes a job may read (see the module docstring)."""

    local_roots: tuple[Path, ...] = ()
    uri_prefixes: tuple[str, ...] = ()
    unrestricted: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> AccessPolicy:
        roots = tuple(Path(os.path.realpath(root.expanduser())) for root in settings.allowed_local_roots)
        prefixes = tuple(prefix.strip() for prefix in settings.allowed_uri_prefixes if prefix.strip())
        return cls(roots, prefixes, settings.unrestricted_paths)

    # -- paths ---------------------------------------------------------------------------------
    def check_path(self, value: str, *, field: str, what: str, instead: str) -> None:
        """Refuse a server path outside the allowed folders (the message never depends on the disk)."""
        if self.unrestricted:
            return
        resolved = Path(os.path.realpath(os.path.expanduser(value)))
        if any(_inside(resolved, root) for root in self.local_roots):
            return
        where = (
            f"lies outside the folders its operator allows ({', '.join(map(str, self.local_roots))})"
            if self.local_roots
            else "names a path on the server, and its operator allows none (MORALSCOPE_ALLOWED_LOCAL_ROOTS)"
        )
        raise InvalidInputError(f"{field}: the {what} {value!r} {where}; {instead}", field=field)

    # -- URIs ----------------------------------------------------------------------------------
    def check_uri(self, value: str, *, field: str) -> None:
        """Refuse a URI outside the allowed prefixes, or one carrying options, credentials or dot segments."""
        if self.unrestricted:
            return
        parts = urlsplit(value)
        problem = None
        if parts.query or parts.fragment or "?" in value or "#" in value:
            problem = "carries options (?…): they could redirect the request (endpoint_override and the like)"
        elif "@" in parts.netloc:
            problem = "carries credentials (user@ or key:secret@)"
        elif any(segment in (".", "..") for segment in unquote(parts.path).split("/")):
            problem = "has . or .. segments"
        elif not any(self._under_prefix(parts.scheme, parts.netloc, unquote(parts.path), p) for p in self.uri_prefixes):
            problem = (
                f"is not under a prefix its operator allows ({', '.join(self.uri_prefixes)})"
                if self.uri_prefixes
                else "names storage the server would read with its own credentials, and its operator allows no "
                "URIs (MORALSCOPE_ALLOWED_URI_PREFIXES)"
            )
        if problem is not None:
            raise InvalidInputError(
                f"{field}: the URI {value!r} {problem}; upload the file instead (Client.upload, POST /v1/uploads)",
                field=field,
            )

    @staticmethod
    def _under_prefix(scheme: str, netloc: str, path: str, prefix: str) -> bool:
        allowed = urlsplit(prefix)
        if scheme.lower() != allowed.scheme.lower() or netloc != allowed.netloc:
            return False
        base = allowed.path.rstrip("/")
        return not base or path == base or path.startswith(base + "/")

    # -- what a spec names ---------------------------------------------------------------------
    def check_data(self, value: str, field: str) -> None:
        """A custom benchmark's ``data``: an upload (the caller's own), a URI or a server path."""
        if value.startswith(UPLOAD_SCHEME):
            return
        if value.startswith("file://"):
            value = value.removeprefix("file://")
        elif re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", value):
            self.check_uri(value, field=field)
            return
        self.check_path(
            value,
            field=field,
            what="data file",
            instead="upload the file instead (Client.submit does it for local files; POST /v1/uploads)",
        )

    def check_model(self, name: str, *, field: str) -> None:
        """A model name written as a path must lie under an allowed folder; other names are not paths."""
        if model_name_kind(name) == "path":
            self.check_path(
                name,
                field=field,
                what="model folder",
                instead="name a Hugging Face id (org/name) or a built-in model instead",
            )

    def check_spec(self, spec: JobSpec) -> None:
        """Every model and data file the spec names (InvalidInputError, 422, naming the first refused)."""
        for index, model in enumerate(spec.models):
            self.check_model(model.name, field=f"models.{index}.name")
        for index, entry in enumerate(spec.benchmarks.custom):
            self.check_data(entry.data, f"benchmarks.custom.{index}.data")


def uploads_location(settings: Settings, owner: str) -> str:
    """Where ``owner``'s uploads are kept: under the results root, so that every replica sees them."""
    folder = re.sub(r"[^A-Za-z0-9_-]", "-", owner)
    return f"{normalize_results_root(settings.results_uri)}/uploads/{folder}"


def data_access(settings: Settings, owner: str) -> DataAccess:
    """What a job of ``owner`` may read for its custom benchmarks, under the operator's policy."""
    policy = AccessPolicy.from_settings(settings)
    return DataAccess(
        uploads=uploads_location(settings, owner),
        check=policy.check_data,
        max_bytes=None if policy.unrestricted else settings.max_upload_bytes,
    )
