"""DBOS, imported in one place: a helpful error when the extra is missing, and the names that are
not public in the pinned version (``dbos==3.4.0``) kept together, so an upgrade looks here first."""

from __future__ import annotations

from typing import Any

from tether.errors import ConfigError

try:
    from dbos import DBOS, DBOSClient, DBOSConfiguredInstance
    from dbos._error import DBOSMaxStepRetriesExceeded, DBOSNonExistentWorkflowError
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the install
    raise ConfigError("the distributed fleet needs DBOS: pip install 'tether[distributed]'") from exc

__all__ = ["DBOS", "DBOSClient", "DBOSConfiguredInstance", "DBOSMaxStepRetriesExceeded",
           "DBOSNonExistentWorkflowError", "recover_pending_workflows"]


def recover_pending_workflows(executor_ids: list[str]) -> list[Any]:
    """Re-queue the PENDING workflows of ``executor_ids`` (blocking). Public as
    ``DBOS.recover_pending_workflows`` in some DBOS versions, underscored in 3.4.0. DBOS makes it
    idempotent: a workflow is re-queued only while it is PENDING on one of those executors."""
    recover = getattr(DBOS, "recover_pending_workflows", None) or DBOS._recover_pending_workflows
    return recover(executor_ids)
