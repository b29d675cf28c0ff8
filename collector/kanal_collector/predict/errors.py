"""The errors of predictive scores.

    KanalError
    └── PredictError       a fit could not run or did not finish
        ├── FitBusy        another fit holds the `predict` lease
        └── FitFailed      the fit failed (recorded; the scores in use stay)
"""

from __future__ import annotations

from ..errors import KanalError


class PredictError(KanalError):
    """A fit could not run or did not finish."""


class FitBusy(PredictError):
    """Another fit (or a rebuild) holds the `predict` lease."""


class FitFailed(PredictError):
    """The fit failed; it is recorded and the scores in use are unchanged."""
