"""The dashboard at /dashboard: sign in with an admin key, then overview, journeys,
attribution, experiments, deliverability, audiences and costs — the same report
documents the admin API answers, drawn as server-rendered pages with inline SVG charts."""

from __future__ import annotations

from . import attribution as _attribution  # noqa: F401  (its page registers on the blueprint)
from . import audiences as _audiences  # noqa: F401  (its pages register on the blueprint)
from .routes import dashboard_blueprint

__all__ = ["dashboard_blueprint"]
