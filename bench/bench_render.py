"""Rendering with the link guard (issue 13), beside rendering without it, same run.

A message with N links (1, 10, 100) whose paths come from the trigger's properties is
rendered for a person; the guard marks every expression's output, watches the untrusted
properties, and checks the hosts of the links they wrote. Three figures per size:

- plain: no guard (the baseline: what rendering cost before);
- guarded, untrusted trigger: the properties are read, so every link is checked;
- guarded, trusted trigger: nothing untrusted is read, so no link is checked.

    python bench/bench_render.py [--renders 1000] [--rounds 5]

Prints figures; never fails on timing.
"""

from __future__ import annotations

import argparse
import statistics
import time

from kanal_collector.messages import Catalog
from kanal_collector.messages.linkguard import LinkPolicy
from kanal_collector.messages.renderer import Trust


def message(links: int) -> Catalog:
    html = "".join(f'<p><a href="https://shop.example/p/{{{{ data.event.id }}}}/{i}">'
                   f"{{{{ data.event.name }}}} #{i}</a></p>" for i in range(links))
    return Catalog.from_dicts([{"name": "m", "email": {
        "subject": "Hi {{ traits.first_name }}, {{ data.event.name }}", "html": html,
        "text": "See https://shop.example/cart/{{ data.event.id }}"}}])


def timed(catalog: Catalog, renders: int, trust: Trust | None) -> float:
    msg = catalog.get("m")
    data = {"event": {"id": "42", "name": "Red shoes"}}
    traits = {"first_name": "Ann"}
    start = time.perf_counter()
    for _ in range(renders):
        msg.render("email", traits=traits, data=data, trust=trust)
    return (time.perf_counter() - start) / renders * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--renders", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    policy = LinkPolicy(("shop.example",))
    # The three are measured in turns, five rounds, and the medians compared: a shared
    # machine's load then weighs on all three alike.
    print("links  plain µs/render  guarded untrusted  ratio  guarded trusted  ratio")
    for links in (1, 10, 100):
        catalog = message(links)
        renders = max(20, args.renders // links)
        trusts = {"plain": None, "untrusted": Trust(policy, untrusted_data=("event",)),
                  "trusted": Trust(policy)}
        rounds: dict[str, list[float]] = {name: [] for name in trusts}
        for _ in range(args.rounds):
            for name, trust in trusts.items():
                rounds[name].append(timed(catalog, renders, trust))
        plain, untrusted, trusted = (statistics.median(rounds[n]) for n in trusts)
        print(f"{links:5d}  {plain:15.1f}  {untrusted:17.1f}  {untrusted / plain:5.2f}"
              f"  {trusted:15.1f}  {trusted / plain:5.2f}")


if __name__ == "__main__":
    main()
