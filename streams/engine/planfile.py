"""The worker's plan file (``LEADSCORE_PLAN_PATH``): the default plan of every tenant."""

from __future__ import annotations

from streams.errors import StartupError
from streams.scoring import Plan, PlanError, load_plan
from streams.settings import Settings


def load_plan_file(settings: Settings) -> Plan:
    """The compiled plan, or ``StartupError`` naming the file and every mistake."""
    path = settings.plan_path
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise StartupError(
            f"cannot read the plan {str(path)[:300]} ({exc.strerror}): fix LEADSCORE_PLAN_PATH"
        ) from None
    except UnicodeDecodeError as exc:
        raise StartupError(
            f"invalid plan: {path}: not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    try:
        return load_plan(text, source=str(path))
    except PlanError as exc:
        raise StartupError(f"invalid plan:\n{exc}") from None
