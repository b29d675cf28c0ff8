"""The kinds of recommendation lists `kanal products build` keeps (build.py) and
`recommend` serves (recommend.py), apart from both so that serving one imports no numpy."""

from __future__ import annotations

ITEM_KINDS = ("bought_together", "viewed_together", "similar")
"""Lists per product: what goes with it."""
GLOBAL_KINDS = ("popular", "trending")
"""Lists for the whole shop."""
