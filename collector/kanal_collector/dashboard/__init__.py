"""The dashboard at /dashboard: sign in with an admin key, then overview, journeys,
attribution, experiments, deliverability, audiences and costs — the same report
documents the admin API answers, drawn as server-rendered pages with inline SVG charts —
and the operator's pages: people, messages and the outbox, segments, live events,
settings, and journeys drawn from their files."""

from __future__ import annotations

from . import attribution as _attribution  # noqa: F401  (its page registers on the blueprint)
from . import audiences as _audiences  # noqa: F401  (its pages register on the blueprint)
from . import events as _events  # noqa: F401
from . import journey_flows as _journey_flows  # noqa: F401
from . import messages as _messages  # noqa: F401
from . import people as _people  # noqa: F401
from . import segments as _segments  # noqa: F401
from . import settings as _settings  # noqa: F401
from .routes import dashboard_blueprint

__all__ = ["dashboard_blueprint"]
