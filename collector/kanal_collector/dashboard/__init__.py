"""The dashboard at /dashboard: sign in with an admin key, then overview, journeys,
attribution, experiments and costs — the same report documents the admin API answers,
drawn as server-rendered pages with inline SVG charts."""

from __future__ import annotations

from .routes import dashboard_blueprint

__all__ = ["dashboard_blueprint"]
