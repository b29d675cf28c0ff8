"""Product ids written in journey and message files, checked against the catalogue.

`kanal journeys validate` and `kanal messages validate` call these when the database
exists: a literal id that names no product is a problem with its FILE:LINE, like any
other (`journeys/drop.yaml:7: trigger.where.product_id: no product 'MUG-9' in the
catalogue`). What can be checked:

- in a journey file, every string under a key `product_id` (a trigger's `where`, a
  wait's `where`, a send step's `data`, also inside operators such as `in: [...]`);
- in a message file, `product("ID")` and `recommend(product="ID")` (or a list of ids)
  written with literal strings in any template.

Ids that come from events (`data.event.product_id`) can only be checked when the
message is sent: an unknown one fails that message, visibly (state `failed`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from jinja2 import TemplateSyntaxError, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ..config import Config
from ..store import products as store
from ..store.connection import Connection
from ..store.db import Database, missing_file
from ..store.schema import migrate

_ENV = ImmutableSandboxedEnvironment()


@dataclass(frozen=True)
class Ref:
    """A product id written in a file, and where."""

    source: str
    line: int
    where: str
    product_id: str

    def problem(self) -> str:
        """The validate line for an id the catalogue lacks."""
        return (f"{self.source}:{self.line}: {self.where}: no product {self.product_id!r} "
                "in the catalogue")


def _compose(text: str) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None  # the file's own validation reports it


def _scalars(node: yaml.Node) -> Iterator[yaml.ScalarNode]:
    if isinstance(node, yaml.ScalarNode):
        yield node
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _scalars(item)
    elif isinstance(node, yaml.MappingNode):
        for _, value in node.value:
            yield from _scalars(value)


def _walk(node: yaml.Node, path: str) -> Iterator[tuple[str, yaml.Node, yaml.Node]]:
    """(path, key node, value node) of every mapping entry, depth first."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            sub = f"{path}.{key.value}" if path else str(key.value)
            yield sub, key, value
            yield from _walk(value, sub)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from _walk(item, f"{path}[{i}]")


def journey_refs(text: str, source: str) -> list[Ref]:
    """Literal product ids of a journey file."""
    root = _compose(text)
    if root is None:
        return []
    out: list[Ref] = []
    for path, key, value in _walk(root, ""):
        if key.value != "product_id":
            continue
        for scalar in _scalars(value):
            if scalar.tag == "tag:yaml.org,2002:str" and scalar.value:
                out.append(Ref(source, scalar.start_mark.line + 1, path, str(scalar.value)))
    return out


def _template_ids(template: str) -> Iterator[tuple[int, str, str]]:
    """(line in the template, function, id) of literal ids in product()/recommend()."""
    try:
        tree = _ENV.parse(template)
    except TemplateSyntaxError:
        return
    for call in tree.find_all(nodes.Call):
        if not isinstance(call.node, nodes.Name):
            continue
        values: list[nodes.Node] = []
        if call.node.name == "product" and call.args:
            values.append(call.args[0])
        values += [kw.value for kw in call.kwargs
                   if call.node.name in ("product", "recommend") and kw.key == "product"]
        for value in values:
            items = value.items if isinstance(value, nodes.List | nodes.Tuple) else [value]
            for item in items:
                if isinstance(item, nodes.Const) and isinstance(item.value, str | int) \
                        and not isinstance(item.value, bool):
                    yield call.lineno, call.node.name, str(item.value)


def message_refs(text: str, source: str) -> list[Ref]:
    """Literal product ids in the templates of a message file."""
    root = _compose(text)
    if root is None:
        return []
    out: list[Ref] = []
    for path, _, value in _walk(root, ""):
        if not isinstance(value, yaml.ScalarNode) or "product" not in str(value.value):
            continue
        # A block scalar (| or >) starts on the line after its indicator.
        first = value.start_mark.line + 1 + (1 if value.style in ("|", ">") else 0)
        for line, name, pid in _template_ids(str(value.value)):
            out.append(Ref(source, first + line - 1, f"{path}: {name}()", pid))
    return out


def unknown(conn: Connection, refs: Sequence[Ref]) -> list[Ref]:
    """The refs whose id the catalogue has never had (a deleted product is known)."""
    known = store.known_ids(conn, {r.product_id for r in refs})
    return [r for r in refs if r.product_id not in known]


def check_files(conn: Connection, paths: Sequence[Path], *, kind: str) -> list[str]:
    """Problems (FILE:LINE: WHERE: …) of the product ids in journey or message files."""
    refs: list[Ref] = []
    reader = journey_refs if kind == "journey" else message_refs
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue  # the file's own validation reports it
        refs += reader(text, str(path))
    return [r.problem() for r in unknown(conn, refs)]


def product_problems(config: Config, paths: Sequence[Path], *, kind: str) -> list[str]:
    """`check_files` against the configured database, when it exists (else nothing can
    be checked, and nothing is reported)."""
    if missing_file(config.db) or not paths:
        return []
    db = Database(config.db, synchronous=config.synchronous,
                  busy_timeout=config.busy_timeout)
    try:
        conn = db.conn()
        migrate(conn)
        return check_files(conn, paths, kind=kind)
    finally:
        db.close()
