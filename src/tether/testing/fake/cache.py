"""The prompt cache of the fake Messages API (reference §2), as plain logic driven by a ``Clock``.

The rules, each pinned by ``tests/fake/test_cache_model.py``:

- **Blocks.** The prompt is flattened, in order, into every tool definition, every ``system`` block
  (a string is one text block), then every content block of every message (string content is one
  text block). A block costs what ``tether.api.tokens`` says; a message's ``MESSAGE_OVERHEAD`` is
  charged to its first block (to the next block if the message is empty), so the prompt's tokens
  always add up to ``count_request(request)``.
- **Keys.** The key at block *i* is a SHA-256 over the model id and the prefix through block *i*:
  each block as compact JSON with sorted keys and ``cache_control`` removed, plus the role at each
  message start. ``tool_choice`` and ``thinking`` are hashed in where ``messages`` begin, so
  changing them keeps the tools and system entries and loses the message entries. Hence the order
  of invalidation tools → system → messages, and a model switch loses everything.
- **Breakpoints.** Every explicit ``cache_control``; a top-level ``cache_control`` adds one on the
  last block that can take one (not ``thinking``/``redacted_thinking``), unless that block has its
  own. A breakpoint whose prefix is below ``ModelInfo.min_cache_tokens`` is ignored (no lookup, no
  write, no error); its tokens belong to the next breakpoint that writes, or else to ``input_tokens``.
- **Lookback.** A breakpoint at block *p* probes blocks *p*, *p*-1, …, *p*-19 (``LOOKBACK`` = 20
  positions including its own) and takes the first live entry, i.e. the longest. The entry of the
  previous turn is therefore found if it is at most 19 blocks before the new breakpoint.
- **Read.** ``cache_read_input_tokens`` = the prompt's tokens through the furthest hit of any
  breakpoint. **Write.** Every eligible breakpoint past that hit writes an entry; the tokens from the
  hit (or the previous writing breakpoint) up to it are billed as creation at *its* TTL.
  ``input_tokens`` = the rest: everything after the last block read or written.
- **Lifetime.** An entry lives ``ttl`` from the **start** of the request that wrote or last read it
  (the instant of ``lookup``) and is dead from that instant on. A read refreshes an entry with its
  own TTL. Only the entries actually hit are refreshed; nothing is recreated for free.
- **Visibility.** A plan's writes and refreshes happen at ``CachePlan.commit()``, which the server
  calls when the response begins: identical requests in flight before that all pay full price.
- **Isolation.** One store per API key.

Not modelled: the stripping of earlier thinking blocks on some models, and the ``speed``,
web-search and citations toggles that the real API renders between tools and system.
"""

from __future__ import annotations

import functools
import hashlib
import heapq
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from tether.api.catalog import ModelInfo
from tether.api.tokens import MESSAGE_OVERHEAD, block_tokens, message_blocks, system_blocks, text_tokens
from tether.api.types import compact_encoder
from tether.testing.fake.clock import Clock
from tether.testing.fake.errors import invalid

LOOKBACK = 20
MAX_BREAKPOINTS = 4
TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}
UNCACHEABLE = frozenset({"thinking", "redacted_thinking"})
ORDER_NOTE = "Note that blocks are processed in the following order: `tools`, `system`, `messages`."


@dataclass(slots=True)
class CacheUsage:
    input_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    ephemeral_5m_input_tokens: int
    ephemeral_1h_input_tokens: int

    def usage_dict(self) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.ephemeral_5m_input_tokens,
                "ephemeral_1h_input_tokens": self.ephemeral_1h_input_tokens,
            },
        }


@dataclass(frozen=True, slots=True)
class PromptFingerprint:
    """What ``diagnose`` compares: digests of each part of a prompt, without the model in them."""

    model: str
    tools: str
    system: str
    context: str  # tool_choice and thinking
    messages: tuple[str, ...]  # rolling digest after each message block
    cacheable_tokens: int  # tokens through the furthest breakpoint at or above the minimum


@dataclass(slots=True)
class _Item:
    """One block of the flattened prompt, before hashing and counting."""

    section: str
    path: str
    block: Mapping[str, Any]
    overhead: int  # the MESSAGE_OVERHEAD of the messages that start at this block
    roles: tuple[str, ...]  # roles of the messages that start at this block
    cacheable: bool
    marker: Any = field(init=False)  # the block's cache_control, read by every check

    def __post_init__(self) -> None:
        self.marker = self.block.get("cache_control")


@dataclass(frozen=True, slots=True)
class _Breakpoint:
    index: int
    ttl: str
    path: str


@dataclass(slots=True)
class _Entry:
    expires_at: float
    ttl: str


@dataclass(slots=True)
class _Store:
    """One key's live entries, and a heap of (expiry, key) so the dead ones go without a scan.

    Every entry has a heap item with its current expiry; a refresh leaves the old item behind,
    which is dropped when it comes out."""

    entries: dict[bytes, _Entry] = field(default_factory=dict)
    expiries: list[tuple[float, bytes]] = field(default_factory=list)

    def purge(self, now: float) -> None:
        """Drop every entry that is dead at ``now``."""
        while self.expiries and self.expiries[0][0] <= now:
            _, digest = heapq.heappop(self.expiries)
            entry = self.entries.get(digest)
            if entry is not None and entry.expires_at <= now:
                del self.entries[digest]

    def put(self, digest: bytes, expires_at: float, ttl: str) -> None:
        """Write or refresh an entry; an entry that lives longer already is kept."""
        entry = self.entries.get(digest)
        if entry is None or entry.expires_at < expires_at:
            self.entries[digest] = _Entry(expires_at, ttl)
            heapq.heappush(self.expiries, (expires_at, digest))


_json = compact_encoder(sort_keys=True)


def _canon(value: Any) -> bytes:
    return _framed(_json(value))


def _framed(text: str) -> bytes:
    data = text.encode()
    return len(data).to_bytes(8, "big") + data


@functools.lru_cache(maxsize=256)
def _head(section: str, roles: tuple[str, ...]) -> str:
    """``_json([section, list(roles)])`` without its closing bracket (a few values, each made once)."""
    return _json([section, list(roles)])[:-1]


def _items(request: Mapping[str, Any]) -> Iterator[_Item]:
    for i, tool in enumerate(request.get("tools") or ()):
        yield _Item("tools", f"tools.{i}", tool, 0, (), True)
    system = request.get("system")
    for i, block in enumerate(system_blocks(system)):
        path = "system" if isinstance(system, str) else f"system.{i}"
        yield _Item("system", path, block, 0, (), True)
    overhead, roles = 0, ()
    for m, message in enumerate(request.get("messages") or ()):
        overhead, roles = overhead + MESSAGE_OVERHEAD, (*roles, message.get("role", ""))
        for j, block in enumerate(message_blocks(message)):
            path = f"messages.{m}" if isinstance(message["content"], str) else f"messages.{m}.content.{j}"
            cacheable = block.get("type") not in UNCACHEABLE
            yield _Item("messages", path, block, overhead, roles, cacheable)
            overhead, roles = 0, ()


def _tokens(block: Mapping[str, Any], stripped_json: str) -> int:
    """``block_tokens(block)`` from the block's sorted JSON without ``cache_control``: the order of
    the keys does not change the length, so each block is encoded once per request."""
    if block.get("type") in ("image", "document"):
        return block_tokens(block)
    return text_tokens(stripped_json)


def _context(request: Mapping[str, Any]) -> dict[str, Any]:
    return {"tool_choice": request.get("tool_choice"), "thinking": request.get("thinking")}


@dataclass(slots=True)
class _Prompt:
    """The flattened prompt: per block, its cumulative tokens and its prefix key; and its total
    tokens, ``count_request(request)`` (a final empty message has no block but counts)."""

    items: list[_Item]
    ends: list[int]
    keys: list[bytes]
    parts: dict[str, Any]
    total: int

    @classmethod
    def build(cls, request: Mapping[str, Any], model: str) -> _Prompt:
        items = list(_items(request))
        chain = hashlib.sha256(_canon(["model", model]))
        sections = {"tools": hashlib.sha256(), "system": hashlib.sha256(), "messages": hashlib.sha256()}
        ends, keys, messages, end, counted = [], [], [], 0, 0
        context = _canon(["context", _context(request)])
        for item in items:
            block = _json(_strip(item.block))
            data = _framed(f"{_head(item.section, item.roles)},{block}]")  # = _canon([section, roles, block])
            if item.section == "messages" and not messages:
                chain.update(context)
            chain.update(data)
            sections[item.section].update(data)
            if item.section == "messages":
                messages.append(sections["messages"].hexdigest()[:16])
            tokens = _tokens(item.block, block)
            counted += tokens
            end += tokens + item.overhead
            ends.append(end)
            keys.append(chain.digest())
        total = counted + MESSAGE_OVERHEAD * len(request.get("messages") or ())
        parts = {
            "model": model,
            "tools": sections["tools"].hexdigest()[:16],
            "system": sections["system"].hexdigest()[:16],
            "context": hashlib.sha256(context).hexdigest()[:16],
            "messages": tuple(messages),
        }
        return cls(items, ends, keys, parts, total)


def _strip(block: Mapping[str, Any]) -> Mapping[str, Any]:
    return {k: v for k, v in block.items() if k != "cache_control"} if "cache_control" in block else block


def _ttl(control: Any) -> str:
    return (control or {}).get("ttl") or "5m"


def _breakpoints(items: list[_Item], top: Any) -> list[_Breakpoint]:
    """Explicit markers plus the automatic one, in prompt order (assumes a valid request)."""
    points = [_Breakpoint(i, _ttl(it.marker), it.path) for i, it in enumerate(items) if it.marker is not None]
    if top is not None:
        last = next((i for i in range(len(items) - 1, -1, -1) if items[i].cacheable), None)
        if last is not None and items[last].marker is None:
            points.append(_Breakpoint(last, _ttl(top), items[last].path))
            points.sort(key=lambda p: p.index)
    return points


def _check_control(path: str, control: Any) -> str | None:
    if not isinstance(control, Mapping) or control.get("type") != "ephemeral":
        return f"{path}.type: Input should be 'ephemeral'"
    if "ttl" in control and control["ttl"] not in TTL_SECONDS:
        return f"{path}.ttl: Input should be '5m' or '1h'"
    extra = set(control) - {"type", "ttl"}
    if extra:
        return f"{path}.{sorted(extra)[0]}: Extra inputs are not permitted"
    return None


def validate(request: Mapping[str, Any]) -> str | None:
    """The 400 message the real API gives for the request's cache markers, or None if they are fine."""
    return _check_markers(list(_items(request)), request.get("cache_control"))


def _check_markers(items: list[_Item], top: Any) -> str | None:
    for item in items:
        if item.marker is None:
            continue
        if not item.cacheable:
            return f"{item.path}.{item.block.get('type')}.cache_control: Extra inputs are not permitted"
        if error := _check_control(f"{item.path}.cache_control", item.marker):
            return error
    if top is not None and (error := _check_control("cache_control", top)):
        return error
    found = sum(item.marker is not None for item in items) + (top is not None)
    if found > MAX_BREAKPOINTS:
        return f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. Found {found}."
    return _check_ttls(items, top)


def _check_ttls(items: list[_Item], top: Any) -> str | None:
    last = next((it for it in reversed(items) if it.cacheable), None)
    if top is not None and last is not None and last.marker is not None and _ttl(last.marker) != _ttl(top):
        return (
            f"Top-level cache_control has ttl='{_ttl(top)}' but the target block already has "
            f"cache_control with ttl='{_ttl(last.marker)}'"
        )
    seen_short = False
    for point in _breakpoints(items, top):
        if point.ttl == "1h" and seen_short:
            return (
                f"{point.path}.cache_control.ttl: a ttl='1h' cache_control block must not come after "
                f"a ttl='5m' cache_control block. {ORDER_NOTE}"
            )
        seen_short = seen_short or point.ttl == "5m"
    return None


@dataclass(slots=True)
class CachePlan:
    """What one request reads and writes. Nothing is stored until ``commit``."""

    usage: CacheUsage
    fingerprint: PromptFingerprint
    miss_reason: dict[str, Any] | None  # diagnose() against this key's previous request
    start: float
    _store: _Store = field(repr=False)
    _touches: list[tuple[bytes, str]] = field(repr=False)  # entries read or written, with their TTL
    _committed: bool = field(default=False, repr=False)

    def commit(self) -> None:
        """Make this request's writes and refreshes visible (once; later calls do nothing)."""
        if self._committed:
            return
        self._committed = True
        for key, ttl in self._touches:
            self._store.put(key, self.start + TTL_SECONDS[ttl], ttl)


class CacheModel:
    """The prompt cache of every API key, driven by ``clock``."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._stores: dict[str, _Store] = {}
        self._previous: dict[str, PromptFingerprint] = {}

    def validate(self, request: Mapping[str, Any]) -> str | None:
        return validate(request)

    def lookup(self, key: str, request: Mapping[str, Any], info: ModelInfo) -> CachePlan:
        """Plan the request's cache reads and writes at its start (now); see the module rules.
        Markers that ``validate`` refuses raise its 400 (checked here on the prompt flattened once)."""
        prompt = _Prompt.build(request, info.id)
        marker = request.get("cache_control")
        if (error := _check_markers(prompt.items, marker)) is not None:
            raise invalid(error)
        start = self._clock.now()
        store = self._live_store(key, start)
        points = [
            p for p in _breakpoints(prompt.items, marker) if prompt.ends[p.index] >= info.min_cache_tokens
        ]
        hits = [hit for p in points if (hit := _probe(store.entries, prompt.keys, p.index)) is not None]
        top = max(hits, default=-1)
        usage, writes = _bill(prompt, points, top, prompt.total)
        touches = [(prompt.keys[i], store.entries[prompt.keys[i]].ttl) for i in hits] + writes
        cacheable = prompt.ends[points[-1].index] if points else 0
        fingerprint = PromptFingerprint(**prompt.parts, cacheable_tokens=cacheable)
        previous = self._previous.get(key)
        self._previous[key] = fingerprint
        reason = diagnose(previous, fingerprint, usage.cache_read_input_tokens) if previous else None
        return CachePlan(usage, fingerprint, reason, start, store, touches)

    def _live_store(self, key: str, now: float) -> _Store:
        store = self._stores.get(key)
        if store is None:
            store = self._stores[key] = _Store()
        store.purge(now)
        return store


def _probe(store: Mapping[bytes, _Entry], keys: list[bytes], index: int) -> int | None:
    for i in range(index, max(-1, index - LOOKBACK), -1):
        if keys[i] in store:
            return i
    return None


def _bill(
    prompt: _Prompt, points: list[_Breakpoint], top: int, total: int
) -> tuple[CacheUsage, list[tuple[bytes, str]]]:
    """The usage of reading through block ``top`` and writing at every breakpoint past it."""
    read = prompt.ends[top] if top >= 0 else 0
    written, done, writes = {"5m": 0, "1h": 0}, read, []
    for point in points:
        if point.index > top:
            written[point.ttl] += prompt.ends[point.index] - done
            done = prompt.ends[point.index]
            writes.append((prompt.keys[point.index], point.ttl))
    creation = written["5m"] + written["1h"]
    usage = CacheUsage(total - read - creation, creation, read, written["5m"], written["1h"])
    return usage, writes


def diagnose(
    previous: PromptFingerprint, current: PromptFingerprint, cache_read_input_tokens: int = 0
) -> dict[str, Any] | None:
    """The ``diagnostics.cache_miss_reason`` of ``current`` against ``previous``, or None if the prompt
    only grew. Checked in prompt order: model, tools, system, then messages (an earlier message
    differs); if only ``tool_choice``/``thinking`` differ the reason is ``unavailable``, as the real
    API says. ``cache_missed_input_tokens`` = what the previous request cached minus what was read."""
    if previous.model != current.model:
        kind = "model_changed"
    elif previous.tools != current.tools:
        kind = "tools_changed"
    elif previous.system != current.system:
        kind = "system_changed"
    elif not _extends(previous.messages, current.messages):
        kind = "messages_changed"
    elif previous.context != current.context:
        return {"type": "unavailable"}
    else:
        return None
    missed = max(0, previous.cacheable_tokens - cache_read_input_tokens)
    return {"type": kind, "cache_missed_input_tokens": missed}


def _extends(before: tuple[str, ...], after: tuple[str, ...]) -> bool:
    return not before or (len(after) >= len(before) and after[len(before) - 1] == before[-1])
