"""The products package's exceptions.

    ProductError (KanalError)
    ├── InvalidProduct   a product record that can't be stored (bad price, no id, …)
    ├── FeedError        a feed that can't be read or fetched at all
    └── UnknownProduct   a message or a request names a product id the catalogue never had
"""

from __future__ import annotations

from ..errors import KanalError


class ProductError(KanalError):
    """Base class of the products package's errors."""


class InvalidProduct(ProductError, ValueError):
    """A product record that can't be stored; the message says which field and why."""


class FeedError(ProductError):
    """A feed that can't be read or fetched at all."""


class UnknownProduct(ProductError, LookupError):
    """A product id the catalogue has never had."""
