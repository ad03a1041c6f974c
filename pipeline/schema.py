"""JSON schema of the workflow format, with every installed step's, source's and sink's options."""

from __future__ import annotations

from typing import Any

from .host import PluginHost
from .workflow import Workflow


def workflow_schema(host: PluginHost) -> dict[str, Any]:
    schema = Workflow.model_json_schema()
    defs = schema.setdefault("$defs", {})
    step_variants = []
    for name, provided in sorted(host.steps.items()):
        options = provided.obj.Options.model_json_schema()
        defs.update(options.pop("$defs", {}))
        defs[f"step_{name}"] = options
        step_variants.append({
            "type": "object",
            "description": provided.obj.describe(),
            "properties": {"use": {"const": name}, "with": {"$ref": f"#/$defs/step_{name}"},
                           "id": {"type": "string"}},
            "required": ["use"],
            "additionalProperties": False,
        })
    schema["properties"]["steps"] = {"type": "array", "items": {"oneOf": step_variants}}
    input_variants = []
    for key, provided in sorted(host.sources.items()):
        options = provided.obj.Options.model_json_schema()
        defs.update(options.pop("$defs", {}))
        defs[f"source_{key}"] = options
        input_variants.append({"$ref": f"#/$defs/source_{key}"})
    schema["properties"]["inputs"] = {"type": "array", "minItems": 1, "items": {"anyOf": input_variants}}
    output = defs.get("OutputSpec", {})
    for key, provided in sorted(host.sinks.items()):
        if key == "images":
            continue
        options = provided.obj.Options.model_json_schema()
        defs.update(options.pop("$defs", {}))
        output.setdefault("properties", {})[key] = {"anyOf": [options, {"type": "boolean"}]}
    output["additionalProperties"] = False
    return schema
