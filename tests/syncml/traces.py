"""The captured SyncML messages in ../shared: SyncEvolution sessions and real devices."""

from __future__ import annotations

from pathlib import Path

from calsync.syncml.model import Node
from tests.conftest import SHARED

TRACES = SHARED / "peers" / "syncevolution" / "traces"
DEVICES = SHARED / "peers" / "syncml-devices"


def trace_wbxml() -> list[Path]:
    return sorted(TRACES.glob("*/*.wbxml"))


def trace_xml_bodies() -> list[Path]:
    return sorted(TRACES.glob("*/*.body.xml"))


def device_wbxml() -> list[Path]:
    return sorted(DEVICES.glob("*/*.wbxml"))


def device_xml() -> list[Path]:
    """Device messages in XML (the Nokia E7 transcription is not a real message)."""
    return sorted(
        p
        for p in DEVICES.glob("*/*.xml")
        if not p.name.endswith(".decoded.xml") and "nokia-e7" not in str(p)
    )


def all_messages() -> list[Path]:
    return trace_wbxml() + trace_xml_bodies() + device_wbxml() + device_xml()


def label(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def canon(node: Node, *, devinf_type: bool = True) -> tuple[object, ...]:
    """A comparable form of a tree: text as str with XML's line-end normalisation.

    Empty (or blank) text and no text are the same thing in XML (``<Last/>``); a DevInf's
    Meta/Type may say +wbxml or +xml depending on who decoded it.
    """
    text: str | None = None
    if node.text is not None:
        text = node.string().replace("\r\n", "\n").replace("\r", "\n")
        text = text if text.strip() else None  # whitespace-only is ignorable in XML
    if devinf_type and text is not None and node.name == "Type" and "devinf" in text:
        text = "devinf"
    return (
        node.name,
        node.ns,
        text,
        tuple(canon(c, devinf_type=devinf_type) for c in node.children),
    )


def assert_exists(paths: list[Path]) -> None:
    assert paths, f"no captured messages found under {SHARED}"
