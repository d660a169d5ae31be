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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, ClassVar, TypeVar

from custody.errors import FormatError
from custody.model.entry import Entry
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
    notes: str | None = opt()
    by: str = req()
    holder: str | None = opt()

    @property
    def item_ids(self) -> tuple[str, ...]:
        return (self.item,)


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

    def check(self) -> None:
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


AnyTyped = KeyEvent | Ingest | Consent | Handoff | Reject | Access | Derive


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
