"""The docs keep up with the code: every `kanal` command (with its options) has an entry
in docs/cli.md, and every setting of the registry (with its type and default) a row in
docs/configuration.md. A failure lists every name missing, not only the first."""

from __future__ import annotations

import json
import re

import click
from docs_util import DOCS, README, ROOT, page_names, text_of

from kanal_collector.audiences import plugins as destinations
from kanal_collector.channels import plugins
from kanal_collector.cli import cli
from kanal_collector.config_keys import AUDIENCE_COMMON, CHANNEL_COMMON, CORE, Key

# Options every command takes, documented once at the top of docs/cli.md.
COMMON_OPTIONS = {"--db", "--config", "--create-db", "--help"}


def _commands(group: click.Command, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path] if path else []
    if isinstance(group, click.Group):
        ctx = click.Context(group)
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            assert command is not None, name
            found += _commands(command, (*path, name))
    return found


def _command(path: tuple[str, ...]) -> click.Command:
    command: click.Command = cli
    for name in path:
        assert isinstance(command, click.Group)
        found = command.get_command(click.Context(command), name)
        assert found is not None, name
        command = found
    return command


def _entries() -> dict[str, str]:
    """{`kanal …` heading of docs/cli.md: the text under it}."""
    parts = re.split(r"^### `(kanal [^`]+)`\n", text_of("cli"), flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_every_command_has_an_entry_in_the_cli_reference() -> None:
    paths = _commands(cli)
    assert len(paths) > 80
    entries = _entries()
    missing = [" ".join(("kanal", *p)) for p in paths
               if " ".join(("kanal", *p)) not in entries]
    assert not missing, f"docs/cli.md has no entry (### `kanal …`) for: {', '.join(missing)}"
    stale = sorted(set(entries) - {" ".join(("kanal", *p)) for p in paths})
    assert not stale, f"docs/cli.md documents commands that don't exist: {', '.join(stale)}"


def test_every_option_is_in_its_command_entry() -> None:
    entries = _entries()
    missing = []
    for path in _commands(cli):
        name = " ".join(("kanal", *path))
        for param in _command(path).params:
            if not isinstance(param, click.Option) or set(param.opts) & COMMON_OPTIONS:
                continue
            if not any(re.search(rf"`{re.escape(opt)}\b", entries.get(name, ""))
                       for opt in param.opts):
                missing.append(f"{name} {param.opts[0]}")
    assert not missing, f"options missing from docs/cli.md: {', '.join(missing)}"
    top = text_of("cli").split("## Every command")[0]
    assert all(f"`{opt}" in top for opt in ("--db", "--config", "--create-db"))


def _documented_value(value: object) -> str:
    return "–" if value is None else f"`{json.dumps(value, ensure_ascii=False)}`"


def _registry() -> list[Key]:
    pm = plugins.new_plugin_manager(entry_points=False)
    declared = [*plugins.channel_settings(pm).values(),
                *destinations.destination_settings(pm).values()]
    return [*CORE, *CHANNEL_COMMON, *AUDIENCE_COMMON, *(k for keys in declared for k in keys)]


def _rows() -> dict[str, list[str]]:
    """{key path: [its rows' cells]} of docs/configuration.md's tables."""
    rows: dict[str, list[str]] = {}
    for line in text_of("configuration").splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if cells and re.fullmatch(r"`[a-z_*.]+`", cells[0]):
            rows.setdefault(cells[0].strip("`"), []).append(" | ".join(cells[1:]))
    return rows


def test_every_setting_is_in_the_configuration_reference() -> None:
    rows = _rows()
    keys = _registry()
    assert len(keys) > 150
    missing, wrong = [], []
    for key in keys:
        path = key.path
        if path not in rows:
            missing.append(path)
            continue
        kind = ("one of " + ", ".join(f"`{c}`" for c in key.choices)) if key.choices \
            else key.type
        expected = f"{kind} | {_documented_value(key.default)}"
        if not any(row.startswith(expected) for row in rows[path]):
            wrong.append(f"{path} (the registry: {expected}; docs: {rows[path]})")
    assert not missing, ("docs/configuration.md has no row for: " + ", ".join(missing))
    assert not wrong, ("docs/configuration.md says another type or default for: "
                       + "; ".join(wrong))


def test_every_page_is_in_the_table_of_contents() -> None:
    listed = set(page_names())
    pages = {p.stem for p in DOCS.glob("*.md")} - {"index"}
    assert pages == listed, f"pages outside docs/index.md's toctrees: {pages - listed}"


def _slug(heading: str) -> str:
    """The anchor GitHub and MyST give a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def test_the_readmes_links_into_docs_lead_somewhere() -> None:
    """Sphinx checks the links between pages; the README is not built, so this does."""
    text = README.read_text(encoding="utf-8")
    links = re.findall(r"\]\((docs/[^)#]*)(?:#([^)]*))?\)", text)
    assert len(links) > 20
    broken = []
    for target, anchor in links:
        path = ROOT / target
        if not path.is_file():
            broken.append(target)
        elif anchor and anchor not in {_slug(h) for h in re.findall(
                r"^#+ (.*)$", path.read_text(encoding="utf-8"), re.M)}:
            broken.append(f"{target}#{anchor}")
    assert not broken, f"README links that lead nowhere: {', '.join(broken)}"
