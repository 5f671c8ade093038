"""Command-line flags generated from the config dataclasses.

Every field of the config (and of its nested model config) becomes a flag, so
the CLI never drifts from what the code accepts.
"""
from __future__ import annotations

import argparse
import dataclasses
import typing


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_dataclass_flags(parser: argparse.ArgumentParser, cls, skip: tuple[str, ...] = ()) -> None:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip or dataclasses.is_dataclass(hints[f.name]):
            continue
        kind = hints[f.name]
        if kind is bool:
            parser.add_argument(_flag(f.name), action=argparse.BooleanOptionalAction, default=None)
        elif typing.get_origin(kind) is tuple:
            parser.add_argument(_flag(f.name), type=lambda s: tuple(x for x in s.split(",") if x), default=None)
        else:
            parser.add_argument(_flag(f.name), type=kind, default=None)


def emit_json(result: dict, out=None) -> None:
    """Print a benchmark's result as JSON, and write it to `out` too when given."""
    import json
    from pathlib import Path

    text = json.dumps(result, indent=2)
    print(text)
    if out:
        Path(out).write_text(text + "\n")


def dataclass_from_args(cls, args: argparse.Namespace, **overrides):
    """An instance of cls with the flags that were given; defaults elsewhere."""
    given = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(cls)
        if getattr(args, f.name, None) is not None
    }
    given.update(overrides)
    return cls(**given)
