"""JSON schema of the workflow format, built from the very models the loader validates with.

`Workflow` gives the top level; each installed step contributes one variant of a steps entry
(`StepSpec`'s own fields — `id`, `input`, `save`, `temporal` — with `use` fixed to the step's
name and `with` its Options), each source one variant of an inputs entry, each sink one field of
`output`. A step whose Options cannot be exported is left out with a warning instead of breaking
the schema for every other step. A text field also takes a number (`fps: 25`), as the loader
does. A test validates every shipped workflow and every YAML block in the docs against both this
schema and the loader.
"""

from __future__ import annotations

import logging
import typing
from typing import Any

from .errors import defined_at, first_line
from .host import PluginHost
from .workflow import StepSpec, Workflow

log = logging.getLogger("stylefarm.schema")


def _options_schema(model: type, defs: dict[str, Any], what: str) -> dict[str, Any] | None:
    try:
        options = model.model_json_schema()
    except Exception as exc:  # a plugin's exotic option type must not break everyone's schema
        where = defined_at(model)
        log.warning("schema: %s left out (%s%s): %s", what, f"{where}, " if where else "",
                    f"{model.__module__}.{model.__qualname__}", first_line(exc, with_type=True))
        return None
    defs.update(options.pop("$defs", {}))
    return options


def _temporal_schema() -> dict[str, Any]:
    """`temporal:` takes a mapping, a mode name, or true/false (YAML's `off` is false)."""
    from .temporal import TemporalOptions

    options = TemporalOptions.model_json_schema()
    mode = TemporalOptions.model_fields["mode"].annotation
    modes = list(typing.get_args(mode)) if typing.get_origin(mode) is typing.Literal else []
    return {"anyOf": [{"type": "null"}, {"type": "boolean"}, {"enum": modes}, options]}


def _step_variants(host: PluginHost, defs: dict[str, Any]) -> list[dict[str, Any]]:
    base = StepSpec.model_json_schema(by_alias=True)
    defs.update(base.pop("$defs", {}))
    variants = []
    for name, provided in sorted(host.steps.items()):
        options = _options_schema(provided.obj.Options, defs, f"step {name} of {provided.plugin.distribution}")
        if options is None:
            continue
        defs[f"step_{name}"] = options
        props = dict(base["properties"])
        props.update({"use": {"const": name}, "with": {"$ref": f"#/$defs/step_{name}"},
                      "temporal": _temporal_schema()})
        variants.append({"type": "object", "description": provided.obj.describe(), "properties": props,
                         "required": ["use"], "additionalProperties": False})
    return variants


def _numbers_as_text(node: Any) -> None:
    """The option models take a number for a text field (`coerce_numbers_to_str`: YAML users write
    `fps: 25`, `g: 48`); pydantic's schema still says "string", so say "string or number"."""
    if isinstance(node, dict):
        if node.get("type") == "string" and "enum" not in node and "const" not in node:
            node["type"] = ["string", "number"]
        for value in node.values():
            _numbers_as_text(value)
    elif isinstance(node, list):
        for value in node:
            _numbers_as_text(value)


def workflow_schema(host: PluginHost) -> dict[str, Any]:
    schema = Workflow.model_json_schema()
    defs = schema.setdefault("$defs", {})
    schema["properties"]["steps"] = {"type": "array", "items": {"oneOf": _step_variants(host, defs)}}
    input_variants = []
    for key, provided in sorted(host.sources.items()):
        options = _options_schema(provided.obj.Options, defs, f"source {key} of {provided.plugin.distribution}")
        if options is not None:
            defs[f"source_{key}"] = options
            input_variants.append({"$ref": f"#/$defs/source_{key}"})
    schema["properties"]["inputs"] = {"type": "array", "minItems": 1, "items": {"anyOf": input_variants}}
    output = defs.get("OutputSpec", {})
    for key, provided in sorted(host.sinks.items()):
        if key == "images":
            continue
        options = _options_schema(provided.obj.Options, defs, f"sink {key} of {provided.plugin.distribution}")
        if options is not None:
            output.setdefault("properties", {})[key] = {"anyOf": [options, {"type": "boolean"}]}
    output["additionalProperties"] = False
    _numbers_as_text(schema)
    return schema
