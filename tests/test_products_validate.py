"""Product ids written in journey and message files are checked by `validate`."""

from __future__ import annotations

import textwrap
from pathlib import Path

from click.testing import CliRunner
from kanal_testing import db_at
from products_util import Shop, product

from kanal_collector.cli import cli
from kanal_collector.products.checks import journey_refs, message_refs

JOURNEY = """\
name: mug_drop
trigger:
  event: Product Price Dropped
  where:
    product_id: {in: [MUG, MUG-9]}
steps:
  - send: promo
    channel: email
    data:
      product_id: TEAPOT
"""
MESSAGE = """\
email:
  subject: "{{ product('MUG').name }} and {{ product(data.event.product_id).name }}"
  html: |
    <p>Hi</p>
    {% for r in recommend(kind='similar', product=['MUG', 'CUP-0']) %}
      {{ product_block(r) }}
    {% endfor %}
    {{ product_block(product("NOPE")) }}
"""


def test_refs_are_found_with_their_lines() -> None:
    refs = journey_refs(JOURNEY, "j.yaml")
    assert [(r.line, r.where, r.product_id) for r in refs] == [
        (5, "trigger.where.product_id", "MUG"), (5, "trigger.where.product_id", "MUG-9"),
        (10, "steps[0].data.product_id", "TEAPOT")]
    refs = message_refs(MESSAGE, "m.yaml")
    assert [(r.line, r.where, r.product_id) for r in refs] == [
        (2, "email.subject: product()", "MUG"), (5, "email.html: recommend()", "MUG"),
        (5, "email.html: recommend()", "CUP-0"), (8, "email.html: product()", "NOPE")]


def test_validate_reports_unknown_ids_with_file_and_line(tmp_path: Path) -> None:
    shop = Shop(tmp_path)
    shop.products(product("MUG"), product("TEAPOT"))
    shop.conn.execute("UPDATE products SET deleted_at = 1 WHERE id = 'TEAPOT'")
    shop.close()
    journeys = tmp_path / "journeys"
    messages = tmp_path / "messages"
    journeys.mkdir()
    messages.mkdir()
    (journeys / "mug_drop.yaml").write_text(JOURNEY)
    (messages / "promo.yaml").write_text(textwrap.dedent(MESSAGE))
    db = ["--db", db_at(tmp_path / "kanal.db")]
    result = CliRunner().invoke(cli, ["journeys", "validate", str(journeys / "mug_drop.yaml"),
                                      "--messages-dir", str(messages), *db])
    assert result.exit_code == 1
    assert (f"{journeys / 'mug_drop.yaml'}:5: trigger.where.product_id: no product 'MUG-9' "
            "in the catalogue") in result.output
    assert "TEAPOT" not in result.output  # deleted, but known: a message skips it
    assert "1 of 1 journey file(s) have problems" in result.output
    result = CliRunner().invoke(cli, ["messages", "validate", "--dir", str(messages), *db])
    assert result.exit_code == 1
    assert f"{messages / 'promo.yaml'}:5: email.html: recommend(): no product 'CUP-0'" in \
        result.output
    assert f"{messages / 'promo.yaml'}:8: email.html: product(): no product 'NOPE'" in \
        result.output
    # without a database nothing can be checked, and nothing is made up
    result = CliRunner().invoke(cli, ["messages", "validate", "--dir", str(messages),
                                      "--db", str(tmp_path / "none.db")])
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "none.db").exists()
