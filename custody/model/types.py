"""One typed class per entry type, in one registry (docs/spec/entry.md §Event types).

`Entry` (custody.model.entry) is the generic, canonical `key value` text; this module
gives each event type its fields with names and types, parsed once:

    typed = parse_typed(entry)          # -> Ingest | Handoff | ... ; FormatError naming the field
    typed.case, typed.by, typed.items   # attributes, never `.get("field")`

`REGISTRY` is the single list of the types this version of custody knows; a verifier
must refuse an entry whose type is not in it (docs/spec/entry.md, last rule).  The
field tables below mirror the spec's: a field declared with `req()` is marked † there,
`many()` is repeatable, `num()` is a decimal integer.  Fields a type does not declare
are kept in the underlying `Entry` (forward compatibility for optional fields) but
carry no meaning for the rules.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, ClassVar, TypeVar

from custody.errors import FormatError
from custody.model.entry import Entry, parse_time
from custody.model.names import check_origin, check_party_name

_MAX_DIGITS = 20  # a decimal field longer than this is malformed, not an OverflowError later

# -- field declarations ------------------------------------------------------------------


def _spec(kind: str, key: str | None, default: Any = None) -> Any:
    meta = {"kind": kind, "key": key}
    if kind == "many":
        return field(default=(), metadata=meta)
    if kind in ("req", "num"):
        return field(metadata=meta)
    return field(default=default, metadata=meta)


def req(key: str | None = None) -> Any:
    """A required text field (marked † in the spec)."""
    return _spec("req", key)


def opt(key: str | None = None) -> Any:
    """An optional text field (None when absent)."""
    return _spec("opt", key)


def num(key: str | None = None) -> Any:
    """A required non-negative decimal integer."""
    return _spec("num", key)


def many(key: str | None = None) -> Any:
    """A repeatable field: every value, in order (may be empty)."""
    return _spec("many", key)


def _key_of(f: dataclasses.Field[Any]) -> str:
    return f.metadata.get("key") or f.name.rstrip("_").replace("_", "-")


def _parse_int(type_: str, key: str, text: str) -> int:
    # str.isdigit() is true of every Unicode digit (superscripts too, which int() refuses);
    # the format's numbers are ASCII.
    if (
        not (text.isascii() and text.isdigit())
        or len(text) > _MAX_DIGITS
        or (len(text) > 1 and text[0] == "0")
    ):
        raise FormatError(f"{type_} entry field '{key}' is not a decimal number: {text[:40]!r}")
    return int(text)


# -- the base class ----------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Typed:
    """Fields common to every entry: the generic entry it was parsed from."""

    TYPE: ClassVar[str] = ""
    entry: Entry = field(repr=False, compare=False)

    @property
    def time(self) -> str:
        """The claimed time as written (`YYYY-MM-DDTHH:MM:SSZ`)."""
        return self.entry.time

    @property
    def claimed_time(self) -> datetime:
        return self.entry.claimed_time

    @property
    def case_id(self) -> str | None:
        """The case this entry belongs to, or None (key entries)."""
        return getattr(self, "case", None)

    @property
    def item_ids(self) -> tuple[str, ...]:
        """Every item (BLAKE3) this entry names, in order, the parent of a derive first."""
        return ()

    @classmethod
    def from_entry(cls: type[T], entry: Entry) -> T:
        """Parse the fields of `entry`; FormatError names the first field that is wrong."""
        if entry.type != cls.TYPE:
            raise FormatError(f"a {entry.type} entry is not a {cls.TYPE} entry")
        values: dict[str, Any] = {"entry": entry}
        for f in _FIELDS[cls]:
            key, kind = _key_of(f), f.metadata["kind"]
            if kind == "many":
                values[f.name] = tuple(entry.get_all(key))
                continue
            text = entry.get(key)
            if text is None:
                if kind in ("req", "num"):
                    raise FormatError(f"{cls.TYPE} entry has no '{key}' field")
                continue
            values[f.name] = _parse_int(cls.TYPE, key, text) if kind == "num" else text
        typed = cls(**values)
        typed.check()
        return typed

    def check(self) -> None:
        """Value checks beyond presence (an enumeration, a date); FormatError if wrong."""

    def fields(self) -> list[tuple[str, str | int | None]]:
        """The `key value` pairs of this entry in spec order, for `Entry.build`."""
        out: list[tuple[str, str | int | None]] = []
        for f in _FIELDS[type(self)]:
            value = getattr(self, f.name)
            if f.metadata["kind"] == "many":
                out.extend((_key_of(f), v) for v in value)
            else:
                out.append((_key_of(f), value))
        return out


T = TypeVar("T", bound=Typed)
_FIELDS: dict[type[Typed], tuple[dataclasses.Field[Any], ...]] = {}
#: entry type -> its class; the single list of types this version knows.
REGISTRY: dict[str, type[Typed]] = {}


def register(cls: type[T]) -> type[T]:
    REGISTRY[cls.TYPE] = cls
    _FIELDS[cls] = tuple(f for f in dataclasses.fields(cls) if f.name != "entry")
    return cls


def _name(check: Callable[[str], str], key: str, value: str) -> None:
    """A name field checked by `check` (custody.model.names); FormatError names the field."""
    try:
        check(value)
    except FormatError as exc:
        raise FormatError(f"key entry field '{key}': {exc.message}") from None


def _one_of(type_: str, key: str, value: str | None, allowed: tuple[str, ...]) -> None:
    if value is not None and value not in allowed:
        raise FormatError(
            f"{type_} entry field '{key}' is {value!r}, not one of {', '.join(allowed)}"
        )


# -- the event types (docs/spec/entry.md) -------------------------------------------------

ROLES = ("owner", "agency", "lab", "court", "defence", "witness")
KEY_ACTIONS = ("register", "rotate", "revoke")
KEPT = ("own", "shared")
CONSENT_ACTIONS = ("grant", "revoke")
ONWARD = ("none", "court", "any")
ACCESS_ACTIONS = ("view", "export")
KINDS = ("media", "attachment")
DERIVE_OPS = ("trim", "redact", "transcode")
#: The `legal-basis` values of an ingest (docs/spec/entry.md §ingest).
LEGAL_BASES = ("consent", "warrant", "subpoena", "exigent", "voluntary", "emergency")
REVIEW_OUTCOMES = ("upheld", "rejected")
HOLD_ACTIONS = ("place", "release")
ANALYSIS_KINDS = (
    "face-recognition",
    "licence-plate",
    "object-detection",
    "transcription",
    "other",
)
#: How long after an emergency disclosure its review is due, unless a policy says
#: otherwise (docs/spec/entry.md §policy).
DEFAULT_REVIEW_HOURS = 72


@register
@dataclass(frozen=True, kw_only=True)
class KeyEvent(Typed):
    """`key`: a party key is registered, rotated or revoked."""

    TYPE: ClassVar[str] = "key"
    action: str = req()
    party: str = req()
    role: str | None = opt()
    org: str | None = opt()
    vkey: str | None = opt()
    reason: str | None = opt()
    kept: str | None = opt()  # where the private key is kept: own | shared (None: not recorded)
    kept_others: str | None = opt()  # decimal: how many other parties' keys shared the home
    kept_log: str | None = opt()
    held_by: str | None = opt()

    def check(self) -> None:
        if self.action not in KEY_ACTIONS:
            raise FormatError(f"unknown key action {self.action!r}")
        if self.action == "register" and self.role is None:
            raise FormatError("key entry has no 'role' field")
        if self.action in ("register", "rotate") and self.vkey is None:
            raise FormatError("key entry has no 'vkey' field")
        self._check_kept()

    def _check_kept(self) -> None:
        """The `kept`, `kept-others`, `kept-log` and `held-by` fields (entry.md §key)."""
        extra = (
            ("kept-others", self.kept_others is not None),
            ("kept-log", self.kept_log is not None),
            ("held-by", self.held_by is not None),
        )
        if self.kept is None:
            for key, present in extra:
                if present:
                    raise FormatError(f"key entry field '{key}' is given without 'kept'")
            return
        if self.action == "revoke":
            raise FormatError("key entry field 'kept' is not allowed on a revoke entry")
        _one_of(self.TYPE, "kept", self.kept, KEPT)
        if (
            self.kept_others is not None
            and _parse_int(self.TYPE, "kept-others", self.kept_others) < 1
        ):
            raise FormatError("key entry field 'kept-others' is 0: leave it out instead")
        if self.kept_log is not None:
            _name(check_origin, "kept-log", self.kept_log)
        if self.held_by is not None:
            _name(check_party_name, "held-by", self.held_by)
            if self.held_by == self.party:
                raise FormatError("key entry field 'held-by' names the key's own party")
        shared = self.kept_others is not None or self.held_by is not None
        if self.kept == "own" and shared:
            raise FormatError(
                "key entry field 'kept' is 'own' but 'kept-others' or 'held-by' is given"
            )
        if self.kept == "shared" and not shared:
            raise FormatError(
                "key entry field 'kept' is 'shared' but has no 'kept-others' or 'held-by'"
            )

    @property
    def others(self) -> int:
        """How many other parties' private keys were in the home that made this key."""
        return int(self.kept_others) if self.kept_others is not None else 0


def kept_fields(
    party: str,
    home_keys: Sequence[str],
    log_origin: str | None = None,
    held_by: str | None = None,
) -> list[tuple[str, str]]:
    """The `kept` / `kept-others` / `kept-log` / `held-by` fields of a new key of `party`
    (docs/spec/entry.md §key).

    `home_keys` are the names of the private keys in the home creating it, read from its
    key files; `log_origin` is the origin of the log key when the home holds it (that
    name in `home_keys` is the log key, recorded as `kept-log`).  Retired and
    half-written key files and `party` itself are not other keepers.  The other parties
    are counted, not named: a key entry travels in every bundle its party is in, and
    must not carry the names of parties of other cases.  Deterministic.  FormatError if
    `held_by` is not a valid party name or is `party` itself.
    """
    others = {
        n
        for n in home_keys
        if n not in (party, log_origin) and not n.startswith(".") and not n.endswith(".retired")
    }
    shared = bool(others) or held_by is not None
    fields = [("kept", "shared" if shared else "own")]
    if others:
        fields.append(("kept-others", str(len(others))))
    if log_origin is not None:
        fields.append(("kept-log", log_origin))
    if held_by is not None:
        fields.append(("held-by", held_by))
    # Check the values as a parsed entry's are checked, so a bad --held-by is refused now.
    KeyEvent(
        entry=Entry("key", "1970-01-01T00:00:00Z", ()),
        action="register",
        party=party,
        role="owner",
        vkey="-",
        kept=fields[0][1],
        kept_others=str(len(others)) if others else None,
        kept_log=log_origin,
        held_by=held_by,
    ).check()
    return fields


@dataclass(frozen=True, kw_only=True)
class _Evidence(Typed):
    """Fields that `ingest` and `derive` share: what the file is."""

    case: str = req()
    exhibit: str = req()
    item: str = req()
    name: str = req()
    name_bytes: str | None = opt()  # the raw name (hex) when `name` is escaped (entry.md)
    size: int = num()
    kind: str = req()
    sha256: str | None = opt()
    metadata: str | None = opt()
    content: str | None = opt()
    streams: tuple[str, ...] = many("stream")
    tool: str | None = opt()

    def check(self) -> None:
        _one_of(self.TYPE, "kind", self.kind, KINDS)


@register
@dataclass(frozen=True, kw_only=True)
class Ingest(_Evidence):
    """`ingest`: evidence acquired."""

    TYPE: ClassVar[str] = "ingest"
    source: str | None = opt()
    legal_basis: str | None = opt()
    ref: str | None = opt()
    consent: str | None = opt()  # entry hash of the consent grant it comes under
    justification: str | None = opt()  # why, for legal-basis emergency
    recorded: str | None = opt()  # the clip's own creation time (metadata), if it has one
    location: str | None = opt()  # the clip's own recorded location "LAT,LON", if any
    notes: str | None = opt()
    by: str = req()
    holder: str | None = opt()

    def check(self) -> None:
        super().check()
        if self.consent is not None:
            _hash_field(self.TYPE, "consent", self.consent)
        if self.recorded is not None:
            _time_field(self.TYPE, "recorded", self.recorded)
        if self.location is not None:
            parse_location(self.location, f"{self.TYPE} entry field 'location'")

    @property
    def item_ids(self) -> tuple[str, ...]:
        return (self.item,)

    @property
    def recorded_time(self) -> datetime | None:
        return None if self.recorded is None else _time_field(self.TYPE, "recorded", self.recorded)


@register
@dataclass(frozen=True, kw_only=True)
class Consent(Typed):
    """`consent`: an owner's consent (`grant`) or its revocation (`revoke`)."""

    TYPE: ClassVar[str] = "consent"
    action: str = req()
    owner: str = req()
    case: str | None = opt()
    items: tuple[str, ...] = many("item")
    purpose: str | None = opt()
    until: str | None = opt()
    onward: str | None = opt()
    consent: str | None = opt()
    request: str | None = opt()  # grant: entry hash of the request it answers

    def check(self) -> None:
        if self.request is not None:
            if self.action != "grant":
                raise FormatError("consent entry field 'request' is allowed only on a grant")
            _hash_field(self.TYPE, "request", self.request)
        if self.action not in CONSENT_ACTIONS:
            raise FormatError(f"unknown consent action {self.action!r}")
        if self.action == "grant":
            for key in ("onward", "case", "purpose"):
                if getattr(self, key) is None:
                    raise FormatError(f"consent entry has no '{key}' field")
            if self.onward not in ONWARD:
                raise FormatError(f"onward {self.onward!r} is not one of {', '.join(ONWARD)}")
            if self.until is not None:
                self.until_date  # noqa: B018 - raises FormatError when malformed
        elif self.consent is None:
            raise FormatError("consent entry has no 'consent' field")

    @property
    def until_date(self) -> date | None:
        """The last day of validity (inclusive, UTC), or None for no limit."""
        if self.until is None:
            return None
        try:
            if len(self.until) == 10:
                return date.fromisoformat(self.until)
        except ValueError:
            pass
        raise FormatError(f"'until' is not a date like 2026-12-31: {self.until!r}")

    @property
    def item_ids(self) -> tuple[str, ...]:
        return self.items


@register
@dataclass(frozen=True, kw_only=True)
class Handoff(Typed):
    """`handoff`: custody passes from `sender` to `receiver`, both signing."""

    TYPE: ClassVar[str] = "handoff"
    case: str = req()
    items: tuple[str, ...] = many("item")
    sender: str = req("from")
    receiver: str = req("to")
    purpose: str = req()
    authority: str | None = opt()
    offer: str = req()

    # A handoff naming no item is refused by the custody rules ("handoff names no
    # item"), after the signatures and the offer are checked, as it always was.

    @property
    def item_ids(self) -> tuple[str, ...]:
        return self.items


@register
@dataclass(frozen=True, kw_only=True)
class Reject(Typed):
    """`reject`: the receiver refuses an offer, which can then never be accepted."""

    TYPE: ClassVar[str] = "reject"
    case: str = req()
    items: tuple[str, ...] = many("item")
    sender: str = req("from")
    receiver: str = req("to")
    offer: str = req()
    by: str = req()
    reason: str = req()

    @property
    def item_ids(self) -> tuple[str, ...]:
        return self.items


@register
@dataclass(frozen=True, kw_only=True)
class Access(Typed):
    """`access`: the holder viewed or exported footage."""

    TYPE: ClassVar[str] = "access"
    case: str = req()
    item: str = req()
    by: str = req()
    purpose: str = req()
    action: str = req()
    out: str | None = opt()

    def check(self) -> None:
        _one_of(self.TYPE, "action", self.action, ACCESS_ACTIONS)

    @property
    def item_ids(self) -> tuple[str, ...]:
        return (self.item,)


@register
@dataclass(frozen=True, kw_only=True)
class Derive(_Evidence):
    """`derive`: a trimmed, redacted or transcoded copy of `parent` (docs/derive.md)."""

    TYPE: ClassVar[str] = "derive"
    parent: str = req()
    op: str = req()
    params: tuple[str, ...] = many("param")
    reason: str = req()
    by: str = req()

    def check(self) -> None:
        super().check()
        _one_of(self.TYPE, "op", self.op, DERIVE_OPS)

    @property
    def item_ids(self) -> tuple[str, ...]:
        return (self.parent, self.item)

    def param(self, name: str) -> str | None:
        """The value of `param NAME VALUE`, or None."""
        prefix = name + " "
        for p in self.params:
            if p.startswith(prefix):
                return p[len(prefix) :]
        return None


# -- requests, emergencies, retention, analysis (issue 12) ---------------------------------


def _hash_field(type_: str, key: str, value: str) -> str:
    """An entry hash (64 lower-case hex digits); FormatError naming the field."""
    if len(value) != 64 or any(ch not in "0123456789abcdef" for ch in value):
        raise FormatError(f"{type_} entry field '{key}' is not an entry hash: {value[:40]!r}")
    return value


def _time_field(type_: str, key: str, value: str) -> datetime:
    """A time `YYYY-MM-DDTHH:MM:SSZ`; FormatError naming the field."""
    try:
        return parse_time(value, key)
    except FormatError:
        raise FormatError(
            f"{type_} entry field '{key}' is not a UTC time like 2026-12-31T23:59:59Z: "
            f"{value[:40]!r}"
        ) from None


def _date_field(type_: str, key: str, value: str) -> date:
    """A date `YYYY-MM-DD`; FormatError naming the field."""
    try:
        if len(value) == 10:
            return date.fromisoformat(value)
    except ValueError:
        pass
    raise FormatError(f"{type_} entry field '{key}' is not a date like 2026-12-31: {value[:40]!r}")


@dataclass(frozen=True)
class Area:
    """A circle on the Earth: centre latitude and longitude (degrees, WGS 84) and a radius
    in metres (docs/spec/entry.md §request)."""

    lat: float
    lon: float
    radius_m: float

    def contains(self, lat: float, lon: float) -> bool:
        """Whether the point lies within the circle (great-circle distance, haversine on a
        sphere of radius 6,371,008.8 m; error well under 0.5% of the distance)."""
        return distance_m(self.lat, self.lon, lat, lon) <= self.radius_m

    def __str__(self) -> str:
        return f"{_num(self.lat)},{_num(self.lon)},{_num(self.radius_m)}"


def _num(x: float) -> str:
    text = f"{x:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres between two points (degrees)."""
    r = 6_371_008.8
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(min(1.0, math.sqrt(a)))


def _decimal(text: str, what: str) -> float:
    if not re.fullmatch(r"[+-]?[0-9]{1,9}(\.[0-9]{1,9})?", text):
        raise FormatError(f"{what}: {text[:40]!r} is not a decimal number")
    value = float(text)
    if not math.isfinite(value):  # pragma: no cover - the pattern excludes it
        raise FormatError(f"{what}: {text[:40]!r} is not a finite number")
    return value


def parse_location(text: str, what: str = "location") -> tuple[float, float]:
    """`LAT,LON` in decimal degrees; FormatError naming `what`."""
    parts = text.split(",")
    if len(parts) != 2:
        raise FormatError(f"{what} {text[:40]!r} is not 'LAT,LON' in decimal degrees")
    lat, lon = (_decimal(p.strip(), what) for p in parts)
    if not -90 <= lat <= 90 or not -180 <= lon <= 180:
        raise FormatError(f"{what} {text[:40]!r}: latitude or longitude out of range")
    return lat, lon


def parse_area(text: str, what: str = "area") -> Area:
    """`LAT,LON,RADIUS_M`; FormatError naming `what`."""
    parts = text.split(",")
    if len(parts) != 3:
        raise FormatError(
            f"{what} {text[:40]!r} is not 'LAT,LON,RADIUS_M' (degrees, degrees, metres)"
        )
    lat, lon = parse_location(",".join(parts[:2]), what)
    radius = _decimal(parts[2].strip(), what)
    if radius <= 0:
        raise FormatError(f"{what} {text[:40]!r}: the radius must be more than 0 metres")
    return Area(lat, lon, radius)


@register
@dataclass(frozen=True, kw_only=True)
class Request(Typed):
    """`request`: an agency asks for footage of a time window (and an area)."""

    TYPE: ClassVar[str] = "request"
    case: str = req()
    by: str = req()
    owner: str | None = opt()  # the owner asked, when the request is addressed to one
    purpose: str = req()
    start: str = req()
    end: str = req()
    area: str | None = opt()
    answer_by: str | None = opt()
    ref: str | None = opt()

    def check(self) -> None:
        if self.start_time > self.end_time:
            raise FormatError("request entry field 'start' is after its 'end'")
        if self.area is not None:
            parse_area(self.area, "request entry field 'area'")
        if self.answer_by is not None:
            _date_field(self.TYPE, "answer-by", self.answer_by)
        if self.owner is not None:
            _name(check_party_name, "owner", self.owner)

    @property
    def start_time(self) -> datetime:
        return _time_field(self.TYPE, "start", self.start)

    @property
    def end_time(self) -> datetime:
        return _time_field(self.TYPE, "end", self.end)

    @property
    def area_circle(self) -> Area | None:
        return None if self.area is None else parse_area(self.area)

    @property
    def answer_by_date(self) -> date | None:
        return (
            None if self.answer_by is None else _date_field(self.TYPE, "answer-by", self.answer_by)
        )


@register
@dataclass(frozen=True, kw_only=True)
class Refusal(Typed):
    """`refusal`: an owner declines a request (an answer, like a consent grant naming it)."""

    TYPE: ClassVar[str] = "refusal"
    case: str = req()
    owner: str = req()
    request: str = req()
    reason: str | None = opt()

    def check(self) -> None:
        _hash_field(self.TYPE, "request", self.request)


@register
@dataclass(frozen=True, kw_only=True)
class Review(Typed):
    """`review`: another party reviews an emergency disclosure (an emergency ingest)."""

    TYPE: ClassVar[str] = "review"
    case: str = req()
    item: str = req()
    ingest: str = req()  # entry hash of the emergency ingest reviewed
    by: str = req()
    outcome: str = req()
    note: str = req()

    def check(self) -> None:
        _hash_field(self.TYPE, "ingest", self.ingest)
        _one_of(self.TYPE, "outcome", self.outcome, REVIEW_OUTCOMES)

    @property
    def item_ids(self) -> tuple[str, ...]:
        return (self.item,)


@register
@dataclass(frozen=True, kw_only=True)
class Retention(Typed):
    """`retention`: how long a case (no item) or an item may be kept, and on what basis."""

    TYPE: ClassVar[str] = "retention"
    case: str = req()
    item: str | None = opt()
    until: str = req()
    basis: str = req()
    by: str = req()

    def check(self) -> None:
        _date_field(self.TYPE, "until", self.until)

    @property
    def until_date(self) -> date:
        return _date_field(self.TYPE, "until", self.until)

    @property
    def item_ids(self) -> tuple[str, ...]:
        return () if self.item is None else (self.item,)


@register
@dataclass(frozen=True, kw_only=True)
class Hold(Typed):
    """`hold`: a legal hold on a case (no item) or an item is placed, or released."""

    TYPE: ClassVar[str] = "hold"
    case: str = req()
    item: str | None = opt()
    action: str = req()
    hold: str | None = opt()  # release: entry hash of the hold placed
    reason: str = req()
    by: str = req()

    def check(self) -> None:
        _one_of(self.TYPE, "action", self.action, HOLD_ACTIONS)
        if self.action == "release":
            if self.hold is None:
                raise FormatError("hold entry has no 'hold' field (the hold it releases)")
            _hash_field(self.TYPE, "hold", self.hold)
        elif self.hold is not None:
            raise FormatError("hold entry field 'hold' is allowed only on a release")

    @property
    def item_ids(self) -> tuple[str, ...]:
        return () if self.item is None else (self.item,)


@register
@dataclass(frozen=True, kw_only=True)
class Disposal(Typed):
    """`disposal`: the holder disposes of an item; its object leaves the evidence store."""

    TYPE: ClassVar[str] = "disposal"
    case: str = req()
    item: str = req()
    by: str = req()
    reason: str = req()

    @property
    def item_ids(self) -> tuple[str, ...]:
        return (self.item,)


@register
@dataclass(frozen=True, kw_only=True)
class Analysis(Typed):
    """`analysis`: software analysed footage (face recognition, plates, transcription...)."""

    TYPE: ClassVar[str] = "analysis"
    case: str = req()
    item: str = req()
    by: str = req()
    kind: str = req()
    tool: str = req()
    tool_version: str = req()
    purpose: str = req()
    warrant: str | None = opt()  # the warrant it is done under, where one is required
    result: str | None = opt()  # BLAKE3 of the result file
    result_name: str | None = opt()

    def check(self) -> None:
        _one_of(self.TYPE, "kind", self.kind, ANALYSIS_KINDS)
        if self.result is not None and (
            len(self.result) != 64 or any(ch not in "0123456789abcdef" for ch in self.result)
        ):
            raise FormatError(
                f"analysis entry field 'result' is not a BLAKE3: {self.result[:40]!r}"
            )

    @property
    def item_ids(self) -> tuple[str, ...]:
        return (self.item,)


@register
@dataclass(frozen=True, kw_only=True)
class Policy(Typed):
    """`policy`: the log's rules for analysis and reviews, signed with the log key.

    A new policy entry replaces the previous one whole (an empty `forbid` list allows
    every kind again).  Log-wide: it names no case.
    """

    TYPE: ClassVar[str] = "policy"
    forbid: tuple[str, ...] = many()
    warrant_required: tuple[str, ...] = many()
    review_within: str | None = opt()  # hours, decimal; default DEFAULT_REVIEW_HOURS
    note: str | None = opt()

    def check(self) -> None:
        for kind in self.forbid:
            _one_of(self.TYPE, "forbid", kind, ANALYSIS_KINDS)
        for kind in self.warrant_required:
            _one_of(self.TYPE, "warrant-required", kind, ANALYSIS_KINDS)
        if (
            self.review_within is not None
            and _parse_int(self.TYPE, "review-within", self.review_within) < 1
        ):
            raise FormatError("policy entry field 'review-within' must be at least 1 (hours)")

    @property
    def review_hours(self) -> int:
        if self.review_within is None:
            return DEFAULT_REVIEW_HOURS
        return _parse_int(self.TYPE, "review-within", self.review_within)


AnyTyped = (
    KeyEvent
    | Ingest
    | Consent
    | Handoff
    | Reject
    | Access
    | Derive
    | Request
    | Refusal
    | Review
    | Retention
    | Hold
    | Disposal
    | Analysis
    | Policy
)


@dataclass(frozen=True, kw_only=True)
class DeriveRequest(Typed):
    """What the custody rules read of a `derive` before the copy exists.

    Not an entry type (it is not in REGISTRY): a dry run of the rules, made before
    ffmpeg runs, knows who derives from which parent but not yet the child's file.
    """

    TYPE: ClassVar[str] = "derive"
    case: str = req()
    exhibit: str = req()
    parent: str = req()
    item: str = req()
    by: str = req()


_FIELDS[DeriveRequest] = tuple(f for f in dataclasses.fields(DeriveRequest) if f.name != "entry")


def parse_typed(entry: Entry) -> Typed:
    """The typed form of `entry`.

    Raises FormatError if the type is unknown to this version of custody (a verifier
    must refuse it, never skip it) or a field is missing or malformed.
    """
    cls = REGISTRY.get(entry.type)
    if cls is None:
        raise FormatError(
            f"unknown entry type '{entry.type}'",
            hint="this log was written by a newer custody; upgrade to verify it",
        )
    return cls.from_entry(entry)


def build(cls: type[T], when: datetime, **values: Any) -> T:
    """A typed entry from keyword values (field names as in the class), for appends.

    The canonical text is `Entry.build(cls.TYPE, when, typed.fields())`; the field
    order is the spec's.  Raises FormatError like parsing would.
    """
    probe: Callable[..., T] = cls
    typed = probe(entry=Entry.build(cls.TYPE, when, []), **values)
    entry = Entry.build(cls.TYPE, when, typed.fields())
    return cls.from_entry(entry)
