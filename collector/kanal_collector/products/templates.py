"""The products' template functions: `product(id)`, `recommend(…)`, `product_block(p)`.

    {% set p = product(data.event.product_id) %}
    {% if p %}{{ product_block(p) }}{% endif %}
    {% for r in recommend(kind="similar", n=3) %}{{ product_block(r) }}{% endfor %}

- `product(id, fallback=None, required=False)` is the product as it is *now* in the
  catalogue (name, url, image, price in the person's currency …), or none when it is
  deleted or out of stock, so a block around it is skipped, never sent stale; with
  `fallback="similar"` (or another kind) the first recommendation of that kind for it
  stands in; with `required=True` the whole message is skipped instead (state
  `skipped`, "product 'ID' is out of stock"). An id the catalogue never had fails the
  message (state `failed`, the id in the reason).
- `recommend(kind="personal", n=4, product=None, category=None, min_price=None,
  max_price=None, exclude=None)`; `product` (an id or a list) defaults to the products
  of the event that started the journey, which are never recommended back.
- `product_block(p)` is an email-ready block (image, name, price, link) in HTML, a line
  of text elsewhere.

At send time (an outbox row), each product shown with a link is remembered with the kind
that chose it, so a click on it and a purchase within the attribution window count for
that kind and message (report: `kanal report recommendations`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jinja2 import pass_eval_context
from jinja2.nodes import EvalContext
from markupsafe import Markup, escape

from ..messages.errors import SkipSend
from ..messages.hooks import RenderTarget, TemplateGlobals
from ..store import product_activity as activity
from ..store import products as catalogue
from ..store.connection import Connection
from .errors import UnknownProduct
from .recommend import Filters, check_kind, recommend
from .settings import ProductSettings
from .views import template_product

NAMES = ("product", "recommend", "product_block")
"""What the functions are called in templates."""
FEATURED = "product"
"""The kind recorded for a product a message names itself (not a recommendation)."""


def trigger_products(data: Mapping[str, Any]) -> list[str]:
    """Product ids of the event that started the journey (`data.event`): its
    `product_id`, and those of its `products` list (an order, a cart)."""
    event = data.get("event") if isinstance(data.get("event"), Mapping) else {}
    assert isinstance(event, Mapping)
    out: list[str] = []
    for source in (event, data):
        value = source.get("product_id")
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
            out.append(str(value))
    items = event.get("products")
    if isinstance(items, list):
        for item in items:
            if isinstance(item, Mapping):
                value = item.get("product_id")
                if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
                    out.append(str(value))
    return list(dict.fromkeys(out))


def _ids(value: Any, name: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str | int) and not isinstance(value, bool):
        return [str(value)]
    if isinstance(value, list | tuple):
        return [str(v) for v in value if isinstance(v, str | int) and not isinstance(v, bool)]
    raise ValueError(f"{name}: a product id or a list of them")


def _number(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name}: a number")
    return float(value)


class ProductFunctions:
    """The functions one rendering sees, bound to its connection, person and row."""

    def __init__(self, conn: Connection, settings: ProductSettings, *,
                 profile_id: int | None, traits: Mapping[str, Any], data: Mapping[str, Any],
                 now_ms: int, outbox_id: int | None = None, message: str | None = None,
                 journey: str | None = None) -> None:
        self.conn = conn
        self.settings = settings
        self.profile_id = profile_id
        currency = traits.get("currency")
        self.currency = currency if isinstance(currency, str) else None
        self.trigger = trigger_products(data)
        self.now_ms = now_ms
        self.outbox_id = outbox_id
        self.message = message
        self.journey = journey
        self.shown: list[activity.RecLink] = []

    def globals(self) -> dict[str, Any]:
        """{name: function} for the template context."""
        return {"product": self.product, "recommend": self.recommend,
                "product_block": product_block}

    def _remember(self, item: Mapping[str, Any], kind: str) -> None:
        if self.outbox_id is not None and item.get("url"):
            self.shown.append(activity.RecLink(self.outbox_id, str(item["url"]),
                                               str(item["id"]), kind, self.message,
                                               self.journey, self.now_ms))

    def product(self, product_id: Any, fallback: str | None = None,
                required: bool = False) -> dict[str, Any] | None:
        """The product now, or None when it is deleted or out of stock (see the module);
        `required=True`: then the message is not sent at all (skipped, with why)."""
        if product_id is None or product_id == "":
            return None
        pid = str(product_id)
        row = catalogue.load_products(self.conn, [pid]).get(pid)
        if row is None:
            raise UnknownProduct(f"unknown product id {pid!r} (not in the catalogue)")
        if row.get("deleted_at") is None and row["in_stock"]:
            item = template_product(row, currency=self.currency, kind=FEATURED)
            self._remember(item, FEATURED)
            return item
        stand_ins = [] if fallback is None else self.recommend(kind=fallback, n=1, product=pid)
        if stand_ins:
            return stand_ins[0]
        if required:
            why = "was deleted" if row.get("deleted_at") is not None else "is out of stock"
            raise SkipSend(f"product {pid!r} {why}")
        return None

    def recommend(self, kind: str = "personal", n: int = 4, product: Any = None,
                  category: str | None = None, min_price: Any = None, max_price: Any = None,
                  exclude: Any = None) -> list[dict[str, Any]]:
        """Up to `n` recommendations of `kind` (see recommend.py)."""
        check_kind(str(kind))
        seeds = _ids(product, "product") or self.trigger
        filters = Filters(category=str(category) if category else None,
                          min_price=_number(min_price, "min_price"),
                          max_price=_number(max_price, "max_price"),
                          exclude=frozenset(_ids(exclude, "exclude")) | set(self.trigger))
        answer = recommend(self.conn, self.settings, now_ms=self.now_ms,
                           profile_id=self.profile_id, kind=str(kind), n=int(n),
                           products=seeds, filters=filters, currency=self.currency)
        for item in answer.items:
            self._remember(item, str(item["kind"]))
        return answer.items

    def record(self) -> None:
        """Store what was shown (in the caller's transaction; a re-render adds nothing)."""
        if self.shown:
            activity.add_rec_links(self.conn, self.shown)


@pass_eval_context
def product_block(eval_ctx: EvalContext, item: Any) -> Markup | str:
    """A product as an email block (image, name, price, link), or a line of text."""
    if not isinstance(item, Mapping) or not item.get("name"):
        return ""
    if not eval_ctx.autoescape:
        parts = [str(item["name"]), str(item.get("price_text") or "")]
        line = " — ".join(p for p in parts if p)
        return f"{line} {item['url']}" if item.get("url") else line
    url = escape(item.get("url") or "")
    name = escape(item["name"])
    price = escape(item.get("price_text") or "")
    if item.get("on_sale"):
        price = Markup("<s>{}</s> <strong>{}</strong>").format(
            item.get("regular_price_text") or "", item.get("price_text") or "")
    image = Markup("")
    if item.get("image_url"):
        image = Markup('<img src="{}" alt="{}" width="120" style="display:block;border:0">'
                       ).format(item["image_url"], item["name"])
        if url:
            image = Markup('<a href="{}">{}</a>').format(url, image)
    title = Markup('<a href="{}" style="font-weight:bold">{}</a>').format(url, name) \
        if url else Markup("<strong>{}</strong>").format(name)
    return Markup(
        '<table role="presentation" class="kanal-product" cellpadding="0" cellspacing="0" '
        'border="0" style="margin:0 0 16px 0"><tr>'
        '<td valign="top" style="padding:0 12px 0 0">{}</td>'
        '<td valign="top">{}<br>{}</td></tr></table>').format(image, title, price)


def template_globals(settings: ProductSettings) -> TemplateGlobals:
    """The dispatcher's maker of product functions (`[products]` settings)."""

    def make(conn: Connection, target: RenderTarget) -> ProductFunctions:
        return ProductFunctions(conn, settings, profile_id=target.profile_id,
                                traits=target.traits, data=target.data, now_ms=target.now_ms,
                                outbox_id=target.outbox_id, message=target.message,
                                journey=target.journey)

    return make
