"""Dataclass configs with type-checked dotted overrides (``optim.lr=1e-3``).

The config *classes* live next to the code that uses them (data, training,
evaluation); this module only holds the mechanism to override, serialise and
load them. A typo gets the nearest valid key suggested.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, Iterable, Mapping, TypeVar

import yaml

__all__ = [
    "ConfigError", "apply_overrides", "config_to_dict", "config_from_dict", "save_config", "load_config", "flat_keys",
    "bounded", "validate_ranges",
]

T = TypeVar("T")


class ConfigError(ValueError):
    """A bad override or config file entry; the message names the key."""


def bounded(default: Any, *, ge: float | None = None, gt: float | None = None, le: float | None = None, lt: float | None = None) -> Any:
    """A dataclass field with an allowed numeric range, checked by :func:`validate_ranges`.

    ``batch_size: int = bounded(32, ge=1)``. The range applies to the value, or to every
    element of a list/tuple value; ``None`` (an optional field left unset) is not checked.
    """
    return dataclasses.field(default=default, metadata={"range": {"ge": ge, "gt": gt, "le": le, "lt": lt}})


def _range_text(rng: Mapping[str, float | None]) -> str:
    lo = f">= {rng['ge']:g}" if rng.get("ge") is not None else (f"> {rng['gt']:g}" if rng.get("gt") is not None else "")
    hi = f"<= {rng['le']:g}" if rng.get("le") is not None else (f"< {rng['lt']:g}" if rng.get("lt") is not None else "")
    return " and ".join(t for t in (lo, hi) if t)


def _in_range(v: float, rng: Mapping[str, float | None]) -> bool:
    # NaN fails every comparison, so it is always out of range (as it should be).
    checks = {"ge": lambda b: v >= b, "gt": lambda b: v > b, "le": lambda b: v <= b, "lt": lambda b: v < b}
    return all(check(rng[k]) for k, check in checks.items() if rng.get(k) is not None)


def validate_ranges(cfg: Any, prefix: str = "") -> None:
    """Raise :class:`ConfigError` naming the dotted key of the first field outside its
    :func:`bounded` range, e.g. ``optim.batch_size=0 is out of range: it must be >= 1``."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            validate_ranges(value, key + ".")
            continue
        rng = f.metadata.get("range")
        if rng is None or value is None:
            continue
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not _in_range(v, rng):
                shown = value if not isinstance(value, (list, tuple)) else list(value)
                each = "each value " if isinstance(value, (list, tuple)) else ""
                raise ConfigError(f"{key}={shown} is out of range: {each}must be {_range_text(rng)}")


def flat_keys(cfg: Any, prefix: str = "") -> list[str]:
    """All dotted leaf keys of a (nested) dataclass instance."""
    out: list[str] = []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            out.extend(flat_keys(value, key + "."))
        else:
            out.append(key)
    return out


def _suggest(key: str, choices: Iterable[str]) -> str:
    choices = list(choices)
    close = difflib.get_close_matches(key, choices, n=1, cutoff=0.5)
    if not close:  # compare on the last component too: "lr" -> "optim.lr"
        last = {c.rsplit(".", 1)[-1]: c for c in choices}
        hit = difflib.get_close_matches(key.rsplit(".", 1)[-1], list(last), n=1, cutoff=0.6)
        close = [last[hit[0]]] if hit else []
    return f"; did you mean '{close[0]}'?" if close else ""


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert ``value`` (a YAML-parsed scalar/list or a string) to field type ``tp`` or raise."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{key}: {value!r} is not a valid {_type_name(tp)}")
    if origin is typing.Literal:
        if value in args:
            return value
        raise ConfigError(f"{key}: {value!r} is not one of {list(args)}{_suggest(str(value), map(str, args))}")
    if origin in (tuple, list):
        if isinstance(value, str):
            value = yaml.safe_load(value) if value.strip() else []
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{key}: expected {len(args)} values, got {len(value)}")
            return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        elem = args[0] if args else Any
        seq = [_coerce(v, elem, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(seq) if origin is tuple else seq
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
            return False
        raise ConfigError(f"{key}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    if isinstance(tp, type) and issubclass(tp, Path):
        return Path(value)
    raise ConfigError(f"{key}: unsupported field type {_type_name(tp)}")


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _set_dotted(cfg: Any, key: str, raw: Any, root_keys: list[str]) -> None:
    parts = key.split(".")
    node = cfg
    for i, part in enumerate(parts):
        names = {f.name for f in dataclasses.fields(node)}
        if part not in names:
            raise ConfigError(f"unknown config key '{key}'{_suggest(key, root_keys)}")
        if i == len(parts) - 1:
            current = getattr(node, part)
            if dataclasses.is_dataclass(current) and not isinstance(current, type):
                raise ConfigError(f"'{key}' is a section; set one of its keys, e.g. '{key}.{dataclasses.fields(current)[0].name}'")
            tp = _field_types(type(node))[part]
            setattr(node, part, _coerce(raw, tp, key))
        else:
            node = getattr(node, part)
            if not dataclasses.is_dataclass(node):
                raise ConfigError(f"unknown config key '{key}': '{'.'.join(parts[: i + 1])}' is not a section")


def apply_overrides(cfg: T, overrides: Iterable[str] | Mapping[str, Any]) -> T:
    """Return a copy of ``cfg`` with ``key=value`` overrides applied.

    Values are parsed as YAML scalars (``1e-3``, ``true``, ``[256, 192]``) and then
    coerced to the field's declared type; a wrong type or unknown key raises
    :class:`ConfigError` naming the key (and the nearest valid key on a typo), and so
    does a value outside a field's :func:`bounded` range (checked on the result).
    """
    import copy

    out = copy.deepcopy(cfg)
    keys = flat_keys(out)
    items: list[tuple[str, Any]]
    if isinstance(overrides, Mapping):
        items = list(overrides.items())
    else:
        items = []
        for ov in overrides:
            if "=" not in ov:
                raise ConfigError(f"override {ov!r} is not of the form key=value{_suggest(ov, keys)}")
            k, v = ov.split("=", 1)
            k = k.strip()
            try:
                parsed = yaml.safe_load(v) if v.strip() else ""
            except yaml.YAMLError:
                parsed = v
            # Keep strings that YAML would turn into dates etc. as they were typed.
            if not isinstance(parsed, (str, int, float, bool, list, type(None))):
                parsed = v
            items.append((k, parsed))
    for k, v in items:
        _set_dotted(out, k, v, keys)
    validate_ranges(out)
    return out


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Plain nested dict (tuples become lists, Paths strings): safe for YAML/JSON."""

    def conv(v: Any) -> Any:
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return {f.name: conv(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        if isinstance(v, Path):
            return str(v)
        return v

    return conv(cfg)


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_from_dict(cls: type[T], d: Mapping[str, Any]) -> T:
    """Build ``cls()`` and apply every entry of the nested dict ``d`` (type-checked)."""
    return apply_overrides(cls(), _flatten(d))


def save_config(cfg: Any, path: str | Path) -> None:
    from hsrpose.utils.io import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(config_to_dict(cfg), sort_keys=False))


def load_config(cls: type[T], path: str | Path) -> T:
    path = Path(path)
    try:
        d = yaml.safe_load(path.read_text())
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the config file ({e.strerror or e})") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(d, Mapping):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    try:
        return config_from_dict(cls, d)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from e
