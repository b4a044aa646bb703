"""What can go wrong talking to the hub, as HTTP errors clients can act on."""

from __future__ import annotations

import errno

import httpx2  # the HTTP client huggingface_hub 2.x uses
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from bodega.errors import BodegaError, ModelNotFound


class HubAuthError(BodegaError):
    """The repo is gated or private and the token (``HF_TOKEN``) does not open it."""

    status = 401
    type = "authentication_error"
    code = "hub_access_denied"


class HubForbidden(HubAuthError):
    """A token was sent but it may not read the repo."""

    status = 403
    type = "permission_error"


class HubUnreachable(BodegaError):
    """The hub could not be reached or answered with a server error."""

    status = 502
    type = "server_error"
    code = "hub_unreachable"


class InsufficientStorage(BodegaError):
    """The download does not fit the free disk space of the cache."""

    status = 507
    type = "server_error"
    code = "insufficient_storage"


class ModelInUse(BodegaError):
    """The cached repo is loaded (or downloading) and cannot be deleted."""

    status = 409
    type = "invalid_request_error"
    code = "model_in_use"


def hub_error(exc: Exception, repo_id: str) -> BodegaError:
    """The client-facing error for what huggingface_hub raised about ``repo_id``."""
    reason = _reason(exc)
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return InsufficientStorage(f"The disk filled up while downloading {repo_id!r}: {reason}")
    if isinstance(exc, LocalEntryNotFoundError | OfflineModeIsEnabled):
        # huggingface_hub's word for "the hub did not answer and the cache lacks it".
        return HubUnreachable(f"The hub could not be reached for {repo_id!r}: {reason}")
    if isinstance(exc, GatedRepoError):
        status = exc.response.status_code if exc.response is not None else 401
        error = HubForbidden if status == 403 else HubAuthError
        return error(
            f"The hub refused access to {repo_id!r} (gated or private; set HF_TOKEN to a "
            f"token that may read it): {reason}",
            param="model_path",
        )
    if isinstance(exc, RepositoryNotFoundError):
        return ModelNotFound(
            f"The hub has no model repo {repo_id!r} (or it is private and HF_TOKEN "
            f"does not open it): {reason}",
            param="model_path",
        )
    if isinstance(exc, RevisionNotFoundError):
        return ModelNotFound(
            f"The repo {repo_id!r} has no such revision: {reason}", param="revision"
        )
    if isinstance(exc, EntryNotFoundError):
        return ModelNotFound(f"A file of {repo_id!r} is not on the hub: {reason}")
    if isinstance(exc, HfHubHTTPError) and exc.response is not None:
        status = exc.response.status_code
        if status in (401, 403):
            error = HubForbidden if status == 403 else HubAuthError
            return error(f"The hub refused access to {repo_id!r}: {reason}", param="model_path")
    if isinstance(exc, HfHubHTTPError | httpx2.HTTPError | OSError):
        return HubUnreachable(f"The hub could not be reached for {repo_id!r}: {reason}")
    return HubUnreachable(f"Downloading {repo_id!r} failed: {type(exc).__name__}: {reason}")


def _reason(exc: Exception) -> str:
    """The hub's own words: its ``X-Error-Message`` or the exception's first line."""
    response = getattr(exc, "response", None)
    if response is not None:
        message = response.headers.get("X-Error-Message")
        if message:
            return str(message)
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
