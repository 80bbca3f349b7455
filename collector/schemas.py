"""The JSON Schemas of the events (``schemas/`` in the source tree) and their checking."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

ENVELOPE = "cloudevents.envelope"


class SchemaViolation(ValueError):
    """An event that does not match its schema: a bug in the collector, never sent."""


def _folder() -> Any:
    # Installed wheel: shipped as collector._schemas. Source tree / editable install:
    # the top-level schemas/ folder itself.
    try:
        return resources.files("collector._schemas")
    except ModuleNotFoundError:
        return Path(__file__).resolve().parent.parent / "schemas"


def _files() -> dict[str, Any]:
    return {p.name: p for p in _folder().iterdir() if p.name.endswith(".json")}


def names() -> list[str]:
    """Schema file names, e.g. ``yarn.application.state_changed.v1.json``."""
    return sorted(_files())


def text(name: str) -> str:
    files = _files()
    if name not in files and f"{name}.json" in files:
        name = f"{name}.json"
    versions = sorted((f for f in files if f.startswith(f"{name}.v")), key=lambda f: int(f.split(".v")[-1][:-5]))
    if name not in files and versions:  # an event type: its newest major version
        name = versions[-1]
    if name not in files:
        raise KeyError(f"no schema named {name!r}; known: {', '.join(sorted(files))}")
    return files[name].read_text(encoding="utf-8")


@cache
def _registry() -> Registry:
    """Every schema by its ``$id``, so that one schema can ``$ref`` another's definitions."""
    resources_ = []
    for name in names():
        schema = json.loads(text(name))
        Draft202012Validator.check_schema(schema)
        resources_.append((schema["$id"], Resource.from_contents(schema, default_specification=DRAFT202012)))
    return Registry().with_resources(resources_)


@cache
def _validator(event_type: str, major: int) -> Draft202012Validator:
    schema = json.loads(text(f"{event_type}.v{major}.json"))
    return Draft202012Validator(schema, registry=_registry(), format_checker=FormatChecker())


def prepare() -> None:
    """Load and check every schema now (~0.1 s): at start-up, not inside the first poll."""
    for name in names():
        event_type, version = name[: -len(".json")].rsplit(".v", 1)
        _validator(event_type, int(version))


def validate(envelope: dict[str, Any]) -> None:
    """Check the envelope and its ``data`` against their schemas; raise ``SchemaViolation``."""
    problems = [e.message for e in _validator(ENVELOPE, 1).iter_errors(envelope)]
    dataschema = envelope.get("dataschema", "")
    try:
        event_type, version = dataschema.rsplit(":", 2)[-2:]
        validator = _validator(event_type, int(version.lstrip("v")))
    except (ValueError, KeyError) as exc:
        raise SchemaViolation(f"unknown dataschema {dataschema!r}: {exc}") from None
    problems += [
        f"data.{'.'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(envelope.get("data"))
    ]
    if problems:
        raise SchemaViolation(f"{envelope.get('type')} {envelope.get('id')}: " + "; ".join(problems[:5]))
