"""Journeys that match how carts behave: several triggers, runs per cart, goals for
the same cart, and journeys that exclude each other (issue 13)."""

from __future__ import annotations

from pathlib import Path

import pytest
from journeys_util import Journeys

from kanal_collector.journeys import JourneyFileError, parse_journey
from kanal_collector.journeys.definition import load_files
from kanal_collector.journeys.explain import explain

HOUR = 3600
DAY = 86_400

CART = """\
name: cart
trigger:
  - event: Product Added
  - event: Checkout Started
entry: {rule: every_time, dedupe: cart_id}
goal: {event: Order Completed, same: [cart_id]}
steps:
  - wait: 1h
  - send: cart_reminder
    channel: email
"""


@pytest.fixture
def env(journeys_env: Journeys) -> Journeys:
    return journeys_env


def test_either_trigger_starts_a_run_and_one_cart_is_reminded_of_once(env: Journeys) -> None:
    env.write("cart", CART)
    env.sync()
    env.person("ann")
    env.track("ann", "Product Added", cart_id="T1")
    env.track("ann", "Checkout Started", cart_id="T1")   # the same cart
    env.track("ann", "Checkout Started", cart_id="T2")   # another one, by checkout
    assert [r["dedupe"] for r in env.runs()] == ["T1", "T2"]
    env.advance(HOUR + 1)
    env.advance(DAY)
    env.track("ann", "Checkout Started", cart_id="T1")   # after its run ended: still no
    env.advance(HOUR + 1)
    assert sorted(r["key"] for r in env.outbox()) == ["journey:cart:1:2", "journey:cart:2:2"]
    report = explain(env.conn, "ann", "cart", now_ms=env.now_ms())
    assert [n["code"] for n in report["notEntered"]] == ["deduplicated", "deduplicated"]


def test_an_order_for_one_cart_ends_that_carts_run_only(env: Journeys) -> None:
    env.write("cart", CART)
    env.sync()
    env.person("bo")
    env.track("bo", "Product Added", cart_id="T1")
    env.track("bo", "Product Added", cart_id="T2")
    env.advance(600)
    env.track("bo", "Order Completed", order_id="o1", cart_id="T2", total=10)
    assert [(r["dedupe"], r["state"]) for r in env.runs()] == [("T1", "active"),
                                                              ("T2", "converted")]
    env.advance(HOUR)
    assert [r["key"] for r in env.outbox()] == ["journey:cart:1:2"]  # T1 is reminded of


def test_an_order_without_the_property_ends_every_run(env: Journeys) -> None:
    env.write("cart", CART)
    env.sync()
    env.person("cy")
    env.track("cy", "Product Added", cart_id="T1")
    env.track("cy", "Product Added", cart_id="T2")
    env.track("cy", "Order Completed", order_id="o1", total=10)
    assert [r["state"] for r in env.runs()] == ["converted", "converted"]
    env.advance(2 * HOUR)
    assert env.outbox() == []


BROWSE = """\
name: browse
group: abandonment
trigger: {event: Product Viewed}
entry: {rule: every_time}
exclude: {journeys: [cart]}
steps: [{wait: 1d}, {send: browse_reminder, channel: email}]
"""
CHECKOUT = """\
name: checkout
group: abandonment
trigger: {event: Checkout Started}
entry: {rule: every_time}
steps: [{wait: 1h}, {send: checkout_reminder, channel: email}]
"""
CART_EXCLUDING = """\
name: cart
trigger: {event: Product Added}
entry: {rule: every_time}
exclude: {groups: [abandonment]}
steps: [{wait: 2h}, {send: cart_reminder, channel: email}]
"""


def test_a_journey_does_not_start_while_the_person_is_in_an_excluded_one(
        env: Journeys) -> None:
    env.write("browse", BROWSE)
    env.write("checkout", CHECKOUT)
    env.write("cart", CART_EXCLUDING)
    env.sync()
    env.person("di")
    env.track("di", "Checkout Started", cart_id="c1")   # checkout (group abandonment)
    env.track("di", "Product Added", cart_id="c1")      # cart excludes the group
    env.track("di", "Product Viewed", product_id="p1")  # browse excludes cart: none yet
    assert sorted(r["journey"] for r in env.runs()) == ["browse", "checkout"]
    env.advance(HOUR + 1)                               # checkout has sent and ended
    env.track("di", "Product Added", cart_id="c2")      # browse (its group) still runs
    assert sorted(r["journey"] for r in env.runs()) == ["browse", "checkout"]
    report = explain(env.conn, "di", "cart", now_ms=env.now_ms())
    refused = report["notEntered"]
    assert [(n["code"], n["journey"]) for n in refused] == [("excluded", "checkout"),
                                                            ("excluded", "browse")]
    assert "group 'abandonment'" in refused[0]["text"]
    env.advance(DAY)                                    # browse has ended too
    env.track("di", "Product Added", cart_id="c3")
    env.track("di", "Product Viewed", product_id="p2")  # browse excludes the cart run
    assert sorted(r["journey"] for r in env.runs()) == ["browse", "cart", "checkout"]
    report = explain(env.conn, "di", "browse", now_ms=env.now_ms())
    assert [n["code"] for n in report["notEntered"]] == ["excluded"]


def test_exclusions_and_triggers_are_validated_with_their_lines(tmp_path: Path) -> None:
    (tmp_path / "browse.yaml").write_text(BROWSE.replace("[cart]", "[cart, crat]"))
    (tmp_path / "cart.yaml").write_text(CART_EXCLUDING.replace("[abandonment]",
                                                               "[abandonmnet]"))
    journeys, problems = load_files(sorted(tmp_path.glob("*.yaml")))
    assert [str(p) for p in problems] == [
        f"{tmp_path / 'browse.yaml'}:5: exclude.journeys[1]: no journey named 'crat'",
        f"{tmp_path / 'cart.yaml'}:4: exclude.groups[0]: no journey is in group "
        "'abandonmnet'"]
    assert journeys == {}


@pytest.mark.parametrize(("text", "problem"), [
    ("trigger: []", "trigger: a list of triggers needs at least one"),
    ("trigger: [{event: A}, {schedule: {every: 1d}, audience: {trait: x, exists: true}}]",
     "trigger: a schedule trigger stands alone"),
    ("trigger: {event: A, max_age: soon}", "trigger.max_age: a duration like"),
    ("trigger: {event: A, max_age: 0s}", "trigger.max_age: a duration longer than 0s"),
    ("trigger: [{event: A}, {event: B, maxage: 1h}]", "trigger[1].maxage: unknown field"),
    ("trigger: [{event: A}, {segment: vip}]\nentry: {dedupe: cart_id}",
     "entry.dedupe: a dedupe key needs event triggers"),
    ("trigger: {event: A}\ngoal: {event: B, same: 3}", "goal.same: a list of property"),
    ("trigger: {event: A}\nexclude: [x]", "exclude: a mapping"),
    ("trigger: {event: A}\ngroup: 'a b'", "group: a group name"),
])
def test_trigger_options_are_checked(text: str, problem: str) -> None:
    with pytest.raises(JourneyFileError) as caught:
        parse_journey(f"name: j\n{text}\nsteps: [{{wait: 1h}}]\n")
    assert problem in str(caught.value)


def test_a_journey_cant_exclude_itself(tmp_path: Path) -> None:
    (tmp_path / "cart.yaml").write_text(CART_EXCLUDING.replace(
        "exclude: {groups: [abandonment]}", "exclude: {journeys: [cart]}"))
    _, problems = load_files([tmp_path / "cart.yaml"])
    assert "exclude.journeys[0]: a journey can't exclude itself" in str(problems[0])


EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "journeys"
SHOPPER_NUDGES = ("abandoned_cart", "browse_abandonment", "price_drop", "post_purchase")


def test_the_example_shop_journeys_do_not_pile_up_on_one_shopper(env: Journeys) -> None:
    for name in SHOPPER_NUDGES:  # the README's example journeys, as written
        env.write(name, (EXAMPLES / f"{name}.yaml").read_text(encoding="utf-8"))
    env.sync()
    env.person("eva")
    env.track("eva", "Product Viewed", product_id="p1")        # browse reminder starts
    env.track("eva", "Product Price Dropped", product_id="p1")  # an offer: not now
    assert [r["journey"] for r in env.runs()] == ["browse_abandonment"]
    report = explain(env.conn, "eva", "price_drop", now_ms=env.now_ms())
    assert [(n["code"], n["journey"]) for n in report["notEntered"]] == [
        ("excluded", "browse_abandonment")]
    env.advance(600)
    env.track("eva", "Product Added", product_id="p1", cart_id="k1")  # ends browse
    env.advance(600)
    env.track("eva", "Order Completed", order_id="o1", cart_id="k1", total=40)
    journeys = [(r["journey"], r["state"]) for r in env.runs()]
    assert ("post_purchase", "active") in journeys        # the cross-sell after the order
    env.advance(600)
    env.track("eva", "Product Price Dropped", product_id="p2")  # still one nudge at a time
    report = explain(env.conn, "eva", "price_drop", now_ms=env.now_ms())
    assert [(n["code"], n.get("journey")) for n in report["notEntered"]] == [
        ("excluded", "browse_abandonment"), ("excluded", "post_purchase")]
    assert not [r for r in env.runs() if r["journey"] == "price_drop"]
