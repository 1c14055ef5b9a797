"""The `Accepted` condition a resource should show, and the merge patch that makes it show it.

One condition type, positive polarity (Kubernetes API conventions): `True`/`Accepted` when the server serves the
resource's current generation, `False`/`Invalid` with every error when it does not. `observedGeneration` says which
generation the verdict is about, so `kubectl wait --for=condition=Accepted` cannot pass on a stale verdict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from egress_xds.sources.kubernetes.api import CONDITION_ACCEPTED, ResourceRef

REASON_ACCEPTED = "Accepted"
REASON_INVALID = "Invalid"
MAX_MESSAGE = 4096  # the API allows 32 KiB; a status is for humans


@dataclass(frozen=True)
class DesiredStatus:
    ref: ResourceRef
    generation: int
    accepted: bool
    message: str

    @property
    def reason(self) -> str:
        return REASON_ACCEPTED if self.accepted else REASON_INVALID

    @property
    def status(self) -> str:
        return "True" if self.accepted else "False"


def shows(resource: Mapping[str, Any], desired: DesiredStatus) -> bool:
    """True when the resource's status already says exactly this (so no write is needed)."""
    status = resource.get("status") or {}
    condition = _accepted_condition(status)
    return (
        status.get("observedGeneration") == desired.generation
        and condition is not None
        and condition.get("status") == desired.status
        and condition.get("reason") == desired.reason
        and condition.get("message") == _clip(desired.message)
        and condition.get("observedGeneration") == desired.generation
    )


def status_patch(desired: DesiredStatus, current: Mapping[str, Any] | None, now: str) -> dict[str, Any]:
    """A JSON merge patch for the status subresource. `lastTransitionTime` moves only when `status` flips."""
    previous = _accepted_condition(current or {})
    transition = now
    if previous is not None and previous.get("status") == desired.status and previous.get("lastTransitionTime"):
        transition = str(previous["lastTransitionTime"])
    condition = {
        "type": CONDITION_ACCEPTED,
        "status": desired.status,
        "reason": desired.reason,
        "message": _clip(desired.message),
        "observedGeneration": desired.generation,
        "lastTransitionTime": transition,
    }
    return {"status": {"observedGeneration": desired.generation, "conditions": [condition]}}


def _accepted_condition(status: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for condition in status.get("conditions") or []:
        if isinstance(condition, dict) and condition.get("type") == CONDITION_ACCEPTED:
            return condition
    return None


def _clip(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 3] + "..."
