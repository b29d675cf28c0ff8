"""The admin HTTP API under /api/ (Authorization: Bearer <admin key>)."""

from __future__ import annotations

from . import audiences as _audiences  # noqa: F401  (the ads audiences' routes)
from . import predict as _predict  # noqa: F401  (registers the predictive score routes)
from . import products as _products  # noqa: F401  (registers the product routes)
from . import profiles as _profiles  # noqa: F401  (registers the profile routes)
from . import reports as _reports  # noqa: F401  (registers the report and cost routes)
from . import suppressions as _suppressions  # noqa: F401  (the suppression list's routes)
from .routes import admin_blueprint

__all__ = ["admin_blueprint"]
