"""Write a fitted hardware profile: the base profile's tree with the fitted leaves replaced, in the shipped style.

One `{value, unit, source}` leaf per line; the base file's header comment and the comments after section keys
are carried over, so regenerating a shipped profile from its own reference data gives the same text. The
output is loaded back with costsim.hardware before it replaces anything, so a written profile is a valid one.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import os
import re
import tempfile
from pathlib import Path

import yaml

from ..hardware import HardwareProfile, load_profile
from ..safe_load import short
from ..safe_write import check_target, write_text
from .fit import FitError, ProfileFit

FIT_NOTE = ("# Fitted by `costsim calibrate fit` (calibration/README.md): a number whose source starts \"fit:\" "
            "comes from the results files it names; the others are the base profile's.")
_KEY = re.compile(r"^(\s*)([A-Za-z0-9_]+):(.*)$")
_PLAIN = re.compile(r"[A-Za-z][\w .,()+/-]*[\w)]")


def _comments(text: str) -> tuple[list[str], dict[str, str]]:
    """(header comment lines, {dotted path of a section key: its trailing comment})."""
    header, trailing, stack = [], {}, []
    seen_key = False
    for line in text.splitlines():
        m = _KEY.match(line)
        if not m:
            if not seen_key and line.startswith("#"):
                header.append(line)
            continue
        seen_key = True
        indent, key, rest = len(m.group(1)), m.group(2), m.group(3).strip()
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, key))
        if rest.startswith("#"):
            trailing[".".join(k for _, k in stack)] = rest
    return header, trailing


def _num(v) -> str:
    if isinstance(v, bool):
        raise FitError(f"profile value {short(v)} is not a number")
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return repr(v) if isinstance(v, float) else str(v)


def _text(s) -> str:
    """A plain YAML scalar where it reads back as the same string, else a double-quoted one."""
    s = str(s)
    return s if _PLAIN.fullmatch(s) and ": " not in s and " #" not in s else json.dumps(s, ensure_ascii=False)


def _leaf(node: dict) -> str:
    value = node["value"]
    text = "[" + ", ".join(_num(v) for v in value) + "]" if isinstance(value, list) else _num(value)
    return f"{{value: {text}, unit: {node['unit']}, source: {json.dumps(node['source'], ensure_ascii=False)}}}"


def _emit(node: dict, trailing: dict[str, str], prefix: str, indent: int, out: list[str]) -> None:
    pad = "  " * indent
    for key, child in node.items():
        path = f"{prefix}{key}"
        if isinstance(child, dict) and "value" in child:
            out.append(f"{pad}{key}: {_leaf(child)}")
        elif isinstance(child, dict):
            note = f"  {trailing[path]}" if path in trailing else ""
            out.append(f"{pad}{key}:{note}")
            _emit(child, trailing, f"{path}.", indent + 1, out)
        else:
            out.append(f"{pad}{key}: {_text(child)}")


def _set(tree: dict, path: str, leaf: dict | None) -> None:
    *parents, last = path.split(".")
    node = tree
    for p in parents:
        node = node.setdefault(p, {})
    if leaf is None:
        node.pop(last, None)
    else:
        node[last] = leaf
    # drop sections a removal emptied (e.g. compute.gemm.mamf_shape)
    for depth in range(len(parents), 0, -1):
        parent = tree
        for p in parents[:depth - 1]:
            parent = parent[p]
        if parent.get(parents[depth - 1]) == {}:
            parent.pop(parents[depth - 1])


def render_profile(fit: ProfileFit, name: str, description: str) -> str:
    """YAML text of the fitted profile."""
    base_text = Path(fit.base.path).read_text(encoding="utf-8")
    header, trailing = _comments(base_text)
    tree = copy.deepcopy(yaml.safe_load(base_text))
    tree["name"], tree["description"] = name, description
    for p in fit.params:
        _set(tree, p.path, None if p.value is None else {"value": p.value, "unit": p.unit, "source": p.source})
    lines = [h for h in header if h != FIT_NOTE] + [FIT_NOTE]
    _emit(tree, trailing, "", 0, lines)
    return "\n".join(lines) + "\n"


def write_profile(fit: ProfileFit, out: str | Path, name: str | None = None) -> HardwareProfile:
    """Render, validate by loading, then write `out`; returns the loaded profile."""
    out = Path(out)
    name = name or out.stem
    base = fit.base
    description = base.description if name == base.name else \
        f"{base.description}; calibrated: " + "; ".join(dict.fromkeys(s.results.environment.summary for s in fit.sources))
    text = render_profile(fit, name, description)
    if str(out) not in ("-", "") and not out.parent.exists():
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FitError(f"--output {out}: cannot create folder {out.parent} ({exc.strerror})") from None
    check_target(out, "--output")
    fd, tmp = tempfile.mkstemp(suffix=".yaml")     # validate by loading before anything is written
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        try:
            hw = load_profile(tmp)
        except ValueError as exc:
            raise FitError(f"fitted profile is not valid: {exc}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    write_text(out, text, what="--output")
    return dataclasses.replace(hw, path=str(out))
