"""Plain data classes for what every sync loads.

Why not ``dataclasses`` there: it writes and compiles each class's methods
when the module loads (~0.4 ms a class on a small VM) and imports ``inspect``
(~5 ms).  The 29 data classes on a sync's path cost ~16 ms of each run, a
tenth of a sync with nothing to do.  These classes name their fields in
``__slots__`` and write their ``__init__``; ``Plain`` gives them a
dataclass's ``repr`` and field-wise ``==``.  Code off that path (conversions,
the gateway, the protocol engines) keeps using ``dataclasses``.
"""

from __future__ import annotations

from typing import Any


class Plain:
    """Base of a plain data class: ``repr`` and ``==`` over its ``__slots__``."""

    __slots__: tuple[str, ...] = ()

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({fields})"

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self.__slots__)

    __hash__ = None  # type: ignore[assignment]  # mutable, like a dataclass with ==


class Frozen(Plain):
    """A plain data class whose fields never change: hashable (``__init__``
    sets them with ``object.__setattr__``, as a frozen dataclass does)."""

    __slots__: tuple[str, ...] = ()

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen: cannot set {name}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen: cannot delete {name}")

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(getattr(self, name) for name in self.__slots__))
