"""Read the files users hand to costsim with limits, so hostile input fails fast with one line.

Every input file (scenario, hardware profile, hf_config, calibration results) goes through `read_text`:
a regular file only (a directory or FIFO is named as such, never read), at most MAX_BYTES, strict UTF-8.
YAML goes through `load_yaml` (a SafeLoader that rejects duplicate keys, nesting deeper than MAX_DEPTH and
documents that expand, through aliases, to more than MAX_NODES nodes); JSON through `load_json` (the same
depth limit, no NaN or infinities). Errors are `LoadError` (a CostsimError) with the file and the limit.
`short` and `clip` render a value or text for a message with a bounded length.
"""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import yaml

from .errors import CostsimError

MAX_BYTES = 1 << 20            # 1 MiB: the largest shipped input is a few KiB
MAX_DEPTH = 32                 # nesting of mappings and lists
MAX_NODES = 100_000            # nodes after alias expansion (a billion-laughs document has 10^9)


class LoadError(CostsimError):
    """An input file that cannot be read or parsed; the message names the file."""


def short(value: Any, limit: int = 60) -> str:
    """repr of `value`, cut to `limit` characters (never render an unbounded value into a message)."""
    try:
        text = repr(value) if not isinstance(value, (dict, list, tuple)) else _short_container(value)
    except Exception:          # noqa: BLE001 (a hostile __repr__ cannot exist in parsed data, but be safe)
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def clip(text: str, limit: int = 60) -> str:
    """`text` on one line, cut to `limit` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _short_container(value: Any) -> str:
    """repr of a small container; '<list of N>' for anything over 50 values (never walk a big one)."""
    budget, stack = 50, [value]
    while stack:
        v = stack.pop()
        budget -= 1
        if budget < 0:
            return f"<{type(value).__name__} of {len(value)}>"
        if isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, (list, tuple)):
            stack.extend(v)
    return repr(value)


def read_text(path: str | os.PathLike, what: str, max_bytes: int = MAX_BYTES) -> str:
    """UTF-8 text of a regular file of at most `max_bytes`; LoadError naming `what` and the file otherwise."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise LoadError(f"{p}: {what} not found") from None
    except OSError as exc:
        raise LoadError(f"{p}: cannot read {what} ({exc.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        raise LoadError(f"{p}: is a directory, not a {what}")
    if not stat.S_ISREG(st.st_mode):
        raise LoadError(f"{p}: not a regular file (a FIFO or device), not a {what}")
    if st.st_size > max_bytes:
        raise LoadError(f"{p}: {what} is {st.st_size:,} bytes; the limit is {max_bytes:,}")
    try:
        with open(p, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise LoadError(f"{p}: cannot read {what} ({exc.strerror})") from None
    if len(data) > max_bytes:
        raise LoadError(f"{p}: {what} is over {max_bytes:,} bytes, the limit")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LoadError(f"{p}: {what} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
                        f"{exc.start})") from None


class _LimitedLoader(yaml.SafeLoader):
    """SafeLoader with a nesting limit, an alias-expansion limit and duplicate keys refused."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):   # noqa: ANN001 (PyYAML's signature)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise _Limit(f"nested deeper than {MAX_DEPTH} levels (line {mark.line + 1})")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):   # noqa: ANN001
        seen: dict[Any, int] = {}
        if isinstance(node, yaml.MappingNode):
            for key_node, _ in node.value:
                if isinstance(key_node, yaml.ScalarNode):
                    key = key_node.value
                    if key in seen and key_node.tag != "tag:yaml.org,2002:merge":
                        raise _Limit(f"duplicate key '{clip(key, 40)}' (line {key_node.start_mark.line + 1}"
                                     f", first on line {seen[key]})")
                    seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


class _Limit(Exception):
    pass


def _expanded_size(node: yaml.Node) -> int:
    """Node count with aliases expanded (memoised on shared nodes, so it costs the distinct nodes only)."""
    memo: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(node, False)]
    while stack:
        n, done = stack.pop()
        if id(n) in memo:
            continue
        kids = [c for pair in n.value for c in pair] if isinstance(n, yaml.MappingNode) else \
            list(n.value) if isinstance(n, yaml.SequenceNode) else []
        if done:
            memo[id(n)] = min(1 + sum(memo.get(id(c), 1) for c in kids), MAX_NODES + 1)
        else:
            stack.append((n, True))
            stack.extend((c, False) for c in kids if id(c) not in memo)
    return memo[id(node)]


def parse_yaml(text: str, where: str) -> Any:
    """Parse YAML text with the limits; LoadError '<where>: …' on anything wrong."""
    loader = _LimitedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node) > MAX_NODES:
            raise _Limit(f"expands to more than {MAX_NODES:,} values (aliases); the limit is {MAX_NODES:,}")
        return loader.construct_document(node)
    except _Limit as exc:
        raise LoadError(f"{where}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or ""
        line = f" (line {mark.line + 1})" if mark else ""
        raise LoadError(f"{where}: not valid YAML{line}" + (f": {clip(problem, 80)}" if problem else "")) \
            from None
    except RecursionError:
        raise LoadError(f"{where}: nested too deeply; the limit is {MAX_DEPTH} levels") from None
    finally:
        loader.dispose()


def load_yaml(path: str | os.PathLike, what: str, max_bytes: int = MAX_BYTES) -> Any:
    """read_text + parse_yaml."""
    return parse_yaml(read_text(path, what, max_bytes), str(path))


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def parse_json(text: str, where: str) -> Any:
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise LoadError(f"{where}: nested too deeply; the limit is {MAX_DEPTH} levels") from None
    except json.JSONDecodeError as exc:
        raise LoadError(f"{where}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    except ValueError as exc:    # NaN/Infinity, or an integer of more than 4300 digits
        raise LoadError(f"{where}: not valid JSON ({clip(str(exc), 80)})") from None
    if (d := depth(data)) > MAX_DEPTH:
        raise LoadError(f"{where}: nested {d} levels deep; the limit is {MAX_DEPTH}")
    return data


def load_json(path: str | os.PathLike, what: str, max_bytes: int = MAX_BYTES) -> Any:
    return parse_json(read_text(path, what, max_bytes), str(path))


def depth(value: Any) -> int:
    """Nesting depth of parsed data, iteratively (stops counting past MAX_DEPTH + 1)."""
    best = 0
    stack = [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, (dict, list)):
            best = max(best, d)
            if d > MAX_DEPTH:
                return d
            stack.extend((c, d + 1) for c in (v.values() if isinstance(v, dict) else v))
    return best
