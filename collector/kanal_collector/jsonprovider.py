"""The JSON every route answers is valid JSON (RFC 8259): no NaN, no Infinity.

Python's `json` writes `float('nan')` as the bare word `NaN`, which no strict parser
reads (browsers' `JSON.parse` included). Money is kept finite where it is read
(money.py); this provider is the last line: a value that still isn't finite is written
as `null` (and logged), never as a word that breaks the client.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from flask.json.provider import DefaultJSONProvider

log = logging.getLogger("kanal.json")


def finite(value: Any) -> Any:
    """`value` with every float that is not finite replaced by None (dicts, lists)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def dumps_strict(obj: Any, **kwargs: Any) -> str:
    """json.dumps that never writes NaN or Infinity (they become null)."""
    kwargs["allow_nan"] = False
    try:
        return json.dumps(obj, **kwargs)
    except ValueError:
        log.warning("a JSON answer held NaN or an infinity; written as null")
        return json.dumps(finite(obj), **kwargs)


class StrictJSONProvider(DefaultJSONProvider):
    """Flask's JSON provider, writing strict JSON (see the module)."""

    sort_keys = False

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        """Serialize `obj` as strict JSON."""
        kwargs.setdefault("default", self.default)
        kwargs.setdefault("ensure_ascii", self.ensure_ascii)
        kwargs.setdefault("sort_keys", self.sort_keys)
        return dumps_strict(obj, **kwargs)
