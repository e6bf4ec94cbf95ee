"""One registry class, used for models, compression passes, backends and distillation losses.

Built-in entries are added in one list per kind (`BACKENDS.add(...)` in backends/__init__.py,
`PASSES.add(...)` in compress/passes.py, `LOSSES.add(...)` in compress/losses/__init__.py), so what
exists is read in one place and no import order decides it.

Third-party packages register through the entry-point group named at construction, e.g.
`[project.entry-points."edgebench.backends"] myrt = "mypkg.runner:MyRunner"`.

A built-in entry can also be added by where it lives (`add_lazy(name, "module:attr")`), resolved
on first `get`: its name is known at once, but the module, and the torch it imports, loads only
when the entry is used, so a CLI command that fails on a bad argument does not wait for torch.
"""
from __future__ import annotations

import fnmatch
import importlib
import os
from collections.abc import Callable, Iterator
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Generic, TypeVar

from edgebench.core.errors import NotFoundError, closest

T = TypeVar("T", bound=Callable[..., Any])  # registered things are classes or factories: they have a __name__


_env_plugins_imported = False


def _import_env_plugins() -> None:
    """Modules named in $EDGEBENCH_PLUGINS (comma-separated) register runners or passes on import.

    This is the unpackaged counterpart of entry points: it reaches worker processes too, because
    they inherit the environment.
    """
    global _env_plugins_imported
    if _env_plugins_imported:
        return
    _env_plugins_imported = True
    for name in filter(None, (m.strip() for m in os.environ.get("EDGEBENCH_PLUGINS", "").split(","))):
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise NotFoundError(f"cannot import plugin module '{name}' from EDGEBENCH_PLUGINS: {e}") from None


class Registry(Generic[T]):
    def __init__(self, kind: str, entry_point_group: str | None = None):
        self.kind = kind
        self._items: dict[str, T] = {}
        self._lazy: dict[str, str] = {}  # name -> "module:attr", loaded by `get`
        self._aliases: dict[str, str] = {}
        self._group = entry_point_group
        self._plugins_loaded = False

    def add(self, name: str, obj: T, *, aliases: tuple[str, ...] = ()) -> None:
        self._items[name] = obj
        self._lazy.pop(name, None)
        for alias in aliases:
            self._aliases[alias] = name

    def add_lazy(self, name: str, target: str, *, aliases: tuple[str, ...] = ()) -> None:
        """Register `target` ("module:attr") under `name` without importing it yet."""
        self._lazy[name] = target
        for alias in aliases:
            self._aliases[alias] = name

    def _load_plugins(self) -> None:
        if self._plugins_loaded or not self._group:
            return
        self._plugins_loaded = True
        _import_env_plugins()
        for ep in entry_points(group=self._group):
            if ep.name not in self._items and ep.name not in self._lazy:
                self._items[ep.name] = ep.load()

    def canonical(self, name: str) -> str:
        self._load_plugins()
        name = self._aliases.get(name, name)
        if name not in self._items and name not in self._lazy:
            # repr: names read from files may hold control characters
            raise NotFoundError(f"unknown {self.kind} {name!r}{closest(name, self.names(include_aliases=True))}")
        return name

    def get(self, name: str) -> T:
        name = self.canonical(name)
        if name not in self._items:
            target = self._lazy[name]
            self._items[name] = EntryPoint(name, target, self._group or "").load()
            self._lazy.pop(name, None)  # (the module may have registered itself while loading)
        return self._items[name]

    def __contains__(self, name: str) -> bool:
        self._load_plugins()
        return name in self._items or name in self._lazy or name in self._aliases

    def names(self, pattern: str = "*", include_aliases: bool = False) -> list[str]:
        self._load_plugins()
        names = [*self._items, *self._lazy] + (list(self._aliases) if include_aliases else [])
        return sorted(n for n in names if fnmatch.fnmatch(n, pattern))

    def items(self) -> Iterator[tuple[str, T]]:
        self._load_plugins()
        return iter(sorted((name, self.get(name)) for name in [*self._items, *self._lazy]))
