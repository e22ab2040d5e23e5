"""Which properties two versions of one item hold differently (a conflict shown
side by side).

Pure: two ``Item``s in, a list of ``PropDiff`` out, one per property name per
component that differs.  Components are matched by name and RECURRENCE-ID (the
master and each override on its own); a property's values are compared in
their canonical form (``Prop.canonical``: parameter order and quoting do not
count), and shown as written, parameters included.  A sub-component (VALARM)
counts as one value of a pseudo-property named after it, its lines joined.
"""

from __future__ import annotations

from calsync.items.item import Item
from calsync.items.lines import Component
from calsync.plain import Plain


class PropDiff(Plain):
    """One property that differs: where (``component``), its ``name``, and the
    values each side holds (empty: that side has none)."""

    __slots__ = ("a", "b", "component", "name")
    component: str
    name: str
    a: list[str]
    b: list[str]

    def __init__(self, component: str, name: str, a: list[str], b: list[str]) -> None:
        self.component = component
        self.name = name
        self.a = a
        self.b = b

    def to_json(self) -> dict[str, object]:
        return {"component": self.component, "name": self.name, "a": self.a, "b": self.b}


def _label(comp: Component) -> str:
    rid = comp.value("RECURRENCE-ID")
    return f"{comp.name} {rid}" if rid else comp.name


def _values(comp: Component) -> dict[str, list[tuple[str, str]]]:
    """name -> [(canonical, shown)] in source order."""
    out: dict[str, list[tuple[str, str]]] = {}
    for prop in comp.props:
        shown = prop.to_line()[len(prop.name) :].removeprefix(":")
        out.setdefault(prop.name, []).append((prop.canonical(), shown))
    for sub in comp.subs:
        text = "\n".join(sub.to_lines())
        out.setdefault(sub.name, []).append((text, text))
    return out


def property_diff(a: Item, b: Item) -> list[PropDiff]:
    """The properties ``a`` and ``b`` hold differently (ItemError if one does not parse)."""
    comps_a = {_label(c): c for c in a.components()}
    comps_b = {_label(c): c for c in b.components()}
    out: list[PropDiff] = []
    for label in dict.fromkeys([*comps_a, *comps_b]):
        va = _values(comps_a[label]) if label in comps_a else {}
        vb = _values(comps_b[label]) if label in comps_b else {}
        for name in dict.fromkeys([*va, *vb]):
            left, right = va.get(name, []), vb.get(name, [])
            if sorted(c for c, _ in left) != sorted(c for c, _ in right):
                out.append(PropDiff(label, name, [s for _, s in left], [s for _, s in right]))
    return out
