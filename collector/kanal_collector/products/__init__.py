"""Products and the next best offer: the catalogue, feeds, signals, recommendations.

    settings.py    `[products]` in kanal.toml
    record.py      one product record: fields, money, availability (checked)
    merchant.py    Google Merchant Center RSS/Atom feeds (defusedxml, streamed)
    feeds.py       reading a feed file: CSV, JSON lines or XML
    importer.py    writing products and their price/stock history (idempotent)
    fetch.py       scheduled feeds through the SSRF guard (FeedWorker)
    step.py        the processor step: views, carts, orders, back-in-stock requests,
                   recommendation clicks and conversions
    signals.py     history → "Product Back in Stock" / "Product Price Dropped" events
    build.py       the recommendation lists (RecommendationsWorker)
    recommend.py   serving a kind for a person, with filters and a popular fallback
    templates.py   product(), recommend(), product_block() for message templates
    checks.py      product ids named in journey and message files
    views.py       products as the API, the CLI and templates show them
    report.py      what each recommendation kind earns

Products are trusted data: only feeds, `kanal products import` and the admin API write
them. docs/products.md has the formats and commands.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..exports import lazy_exports

if TYPE_CHECKING:
    from .build import RecommendationsWorker
    from .errors import FeedError, InvalidProduct, ProductError, UnknownProduct
    from .fetch import FeedWorker, fetch_feed
    from .importer import ImportReport, import_rows
    from .recommend import KINDS, Filters, Recommendations
    from .settings import Feed, ProductSettings
    from .signals import BACK_IN_STOCK, PRICE_DROPPED, SignalsWorker
    from .step import ProductsStep
    from .templates import ProductFunctions, template_globals

_lazy = lazy_exports(__name__, {
    "RecommendationsWorker": ".build",
    "FeedError": ".errors",
    "InvalidProduct": ".errors",
    "ProductError": ".errors",
    "UnknownProduct": ".errors",
    "FeedWorker": ".fetch",
    "fetch_feed": ".fetch",
    "ImportReport": ".importer",
    "import_rows": ".importer",
    "KINDS": ".recommend",
    "Filters": ".recommend",
    "Recommendations": ".recommend",
    "Feed": ".settings",
    "ProductSettings": ".settings",
    "BACK_IN_STOCK": ".signals",
    "PRICE_DROPPED": ".signals",
    "SignalsWorker": ".signals",
    "ProductsStep": ".step",
    "ProductFunctions": ".templates",
    "template_globals": ".templates",
})


def __getattr__(name: str) -> Any:
    """Import a public name on first use (exports.py)."""
    return _lazy(name)


__all__ = [
    "BACK_IN_STOCK",
    "Feed",
    "FeedError",
    "FeedWorker",
    "Filters",
    "ImportReport",
    "InvalidProduct",
    "KINDS",
    "PRICE_DROPPED",
    "ProductError",
    "ProductFunctions",
    "ProductSettings",
    "ProductsStep",
    "Recommendations",
    "RecommendationsWorker",
    "SignalsWorker",
    "UnknownProduct",
    "fetch_feed",
    "import_rows",
    "template_globals",
]
