"""The public surface: exported names, version, exception tree."""

from __future__ import annotations
import __future__

import inspect
import tomllib
from pathlib import Path

import kanal
from kanal import _exceptions

ROOT = Path(__file__).resolve().parents[2]


def test_all_lists_exactly_the_public_names_sorted() -> None:
    public = {
        name for name, value in vars(kanal).items()
        if not name.startswith("_") and not isinstance(value, __future__._Feature)
    }
    assert sorted(kanal.__all__) == kanal.__all__
    assert set(kanal.__all__) - {"__version__"} == public


def test_version_matches_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert kanal.__version__ == project["version"]


def test_every_exception_is_in_the_docstring_tree_and_documented() -> None:
    doc = _exceptions.__doc__ or ""
    classes = [
        v for v in vars(_exceptions).values()
        if inspect.isclass(v) and issubclass(v, Exception)
        and v.__module__ == _exceptions.__name__
    ]
    assert {c.__name__ for c in classes} == {
        "KanalError", "DeliveryError", "APIError", "TransportError", "DroppedError",
        "MessageTooLargeError", "QueueFullError",
    }
    for cls in classes:
        assert cls.__name__ in doc
        assert cls.__doc__ and "\n" not in cls.__doc__.strip()
        assert issubclass(cls, kanal.KanalError)
        assert getattr(kanal, cls.__name__) is cls


def test_module_functions_mirror_client_methods() -> None:
    for name in ("identify", "track", "page", "screen", "group", "alias", "order_completed",
                 "order_updated", "order_refunded", "order_cancelled", "checkout_started",
                 "product_added", "product_removed"):
        function = getattr(kanal, name)
        method = getattr(kanal.Client, name)
        assert function.__doc__ == method.__doc__
        params = list(inspect.signature(method).parameters)
        assert list(inspect.signature(function).parameters) == params[1:]


def test_public_callables_have_docstrings() -> None:
    for name in kanal.__all__:
        value = getattr(kanal, name)
        if callable(value):
            assert value.__doc__, name
    for name, member in vars(kanal.Client).items():
        if not name.startswith("_"):
            assert member.__doc__, name


def test_client_options_are_keyword_only_after_the_key() -> None:
    params = list(inspect.signature(kanal.Client).parameters.values())
    assert params[0].name == "write_key"
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params[1:])
    names = {p.name for p in params}
    assert {"host", "flush_at", "flush_interval", "max_queue_size", "max_retries", "timeout",
            "gzip", "sync_mode", "send", "disabled", "on_error", "debug",
            "spool_path"} <= names
