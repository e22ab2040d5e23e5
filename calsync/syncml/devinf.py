"""Device information (DevInf 1.0-1.2): reading the peer's, writing ours.

What matters of a peer's DevInf: per datastore (``SourceRef``) the content
type it prefers to receive (``Rx-Pref``) and the types it accepts, whether it
takes large objects in chunks (``SupportLargeObjs``) and NumberOfChanges.
CTCaps are kept only as the list of content types they describe.

Our own DevInf lists each datastore with iCalendar 2.0 and, when the vCalendar
converter is available, vCalendar 1.0 on both Rx and Tx.  It sends no CTCap:
a peer then assumes every property is supported, which is true (items are
stored whole).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from calsync.syncml.model import DEVINF, Node

ICAL = ("text/calendar", "2.0")
VCAL = ("text/x-vcalendar", "1.0")


@dataclass
class DataStoreInfo:
    source_ref: str
    display_name: str | None = None
    max_guid_size: int | None = None
    rx_pref: list[tuple[str, str]] = field(default_factory=list)
    rx: list[tuple[str, str]] = field(default_factory=list)
    tx_pref: list[tuple[str, str]] = field(default_factory=list)
    tx: list[tuple[str, str]] = field(default_factory=list)
    ctcaps: list[tuple[str, str]] = field(default_factory=list)
    sync_types: list[int] = field(default_factory=list)


@dataclass
class DeviceInfo:
    ver_dtd: str = "1.2"
    man: str | None = None
    mod: str | None = None
    oem: str | None = None
    fwv: str | None = None
    swv: str | None = None
    hwv: str | None = None
    dev_id: str | None = None
    dev_type: str | None = None
    utc: bool = False
    number_of_changes: bool = False
    large_objects: bool = False
    datastores: list[DataStoreInfo] = field(default_factory=list)

    def datastore(self, uri: str | None) -> DataStoreInfo | None:
        """The datastore a device names ``uri`` (``./calendar`` and ``calendar`` match)."""
        if uri is None:
            return None
        want = normalize_uri(uri)
        for ds in self.datastores:
            if normalize_uri(ds.source_ref) == want:
                return ds
        return None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> DeviceInfo:
        raw = json.loads(text)
        stores = []
        for d in raw.pop("datastores", []):
            for key in ("rx_pref", "rx", "tx_pref", "tx", "ctcaps"):
                d[key] = [tuple(x) for x in d.get(key, [])]
            stores.append(DataStoreInfo(**d))
        return cls(**raw, datastores=stores)


def normalize_uri(uri: str) -> str:
    """``./Calendar?filter`` -> ``calendar``: how datastore names are compared."""
    uri = uri.strip()
    uri = uri.split("?", 1)[0]
    while uri.startswith("./"):
        uri = uri[2:]
    return uri.strip("/").lower()


def _types(node: Node, name: str) -> list[tuple[str, str]]:
    out = []
    for n in node.findall(name):
        ct = n.value("CTType")
        if ct:
            out.append((ct, n.value("VerCT") or ""))
    return out


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def parse(node: Node) -> DeviceInfo:
    """A DevInf element (any version) as DeviceInfo; unknown parts are ignored."""
    info = DeviceInfo(
        ver_dtd=node.value("VerDTD") or "1.2",
        man=node.value("Man"),
        mod=node.value("Mod"),
        oem=node.value("OEM"),
        fwv=node.value("FwV"),
        swv=node.value("SwV"),
        hwv=node.value("HwV"),
        dev_id=node.value("DevID"),
        dev_type=node.value("DevTyp"),
        utc=node.find("UTC") is not None,
        number_of_changes=node.find("SupportNumberOfChanges") is not None,
        large_objects=node.find("SupportLargeObjs") is not None,
    )
    for ds in node.findall("DataStore"):
        ref = ds.value("SourceRef")
        if not ref:
            continue
        store = DataStoreInfo(
            source_ref=ref,
            display_name=ds.value("DisplayName"),
            max_guid_size=_int(ds.value("MaxGUIDSize")),
            rx_pref=_types(ds, "Rx-Pref"),
            rx=_types(ds, "Rx"),
            tx_pref=_types(ds, "Tx-Pref"),
            tx=_types(ds, "Tx"),
            ctcaps=_types(ds, "CTCap"),
            sync_types=[t for t in (_int(s.string()) for s in _sync_types(ds)) if t is not None],
        )
        info.datastores.append(store)
    return info


def _sync_types(ds: Node) -> list[Node]:
    cap = ds.find("SyncCap")
    return cap.findall("SyncType") if cap is not None else []


def preferred_type(info: DeviceInfo | None, uri: str | None, supported: list[str]) -> str | None:
    """The content type to send a device's datastore ``uri``, among ``supported``.

    Its Rx-Pref when we support it, else the first Rx we support; None when the
    DevInf says nothing usable (the caller then goes by what the device sends).
    """
    if info is None:
        return None
    ds = info.datastore(uri)
    if ds is None:
        return None
    for ct, _ in ds.rx_pref + ds.rx:
        if ct.lower() in supported:
            return ct.lower()
    return None


@dataclass
class ServerDataStore:
    uri: str
    display_name: str
    types: list[tuple[str, str]]


def build(
    dev_id: str,
    datastores: list[ServerDataStore],
    *,
    ver_dtd: str = "1.2",
    man: str = "calsync",
    mod: str = "calsync server",
    swv: str = "0.1",
    large_objects: bool = True,
) -> Node:
    """Our DevInf for a peer speaking ``ver_dtd``."""
    root = Node("DevInf", ns=DEVINF)
    root.add("VerDTD", ver_dtd)
    root.add("Man", man)
    root.add("Mod", mod)
    root.add("OEM", "calsync")
    root.add("FwV", swv)
    root.add("SwV", swv)
    root.add("HwV", "server")
    root.add("DevID", dev_id)
    root.add("DevTyp", "server")
    if ver_dtd != "1.0":
        root.add("UTC")
        root.add("SupportNumberOfChanges")
        if large_objects:
            root.add("SupportLargeObjs")
    for ds in datastores:
        node = root.add("DataStore")
        node.add("SourceRef", ds.uri)
        node.add("DisplayName", ds.display_name)
        node.add("MaxGUIDSize", "32")
        for role in ("Rx", "Tx"):
            for i, (ct, ver) in enumerate(ds.types):
                t = node.add(f"{role}-Pref" if i == 0 else role)
                t.add("CTType", ct)
                t.add("VerCT", ver)
        # Rx before Tx is what the DTD wants: reorder (Rx-Pref, Rx*, Tx-Pref, Tx*)
        node.children.sort(key=_datastore_order)
        cap = node.add("SyncCap")
        for n in range(1, 8):
            cap.add("SyncType", str(n))
    return root


_ORDER = {"SourceRef": 0, "DisplayName": 1, "MaxGUIDSize": 2, "Rx-Pref": 3, "Rx": 4}
_ORDER.update({"Tx-Pref": 5, "Tx": 6, "SyncCap": 9})


def _datastore_order(n: Node) -> int:
    return _ORDER.get(n.name, 8)
