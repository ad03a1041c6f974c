"""`stylefarm schema` accepts exactly what the loader accepts: every shipped workflow and every
workflow block in the docs passes both; a set of invalid documents fails both."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from stylefarm.errors import WorkflowError
from stylefarm.host import get_host
from stylefarm.plan import validate_document
from stylefarm.schema import workflow_schema
from stylefarm.workflow import parse_yaml

jsonschema = pytest.importorskip("jsonschema")
TOP_KEYS = {"version", "inputs", "steps", "output", "execution"}
FILLER_INPUTS = [{"generate": "noise"}]


def documents() -> list[tuple[str, Path, str]]:
    """(id, folder paths resolve against, YAML text): workflows/*.yaml and ```yaml blocks of the docs."""
    found = [(str(p.relative_to(REPO)), p.parent, p.read_text()) for p in sorted((REPO / "workflows").glob("*.yaml"))]
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), *sorted(REPO.glob("plugins/*/README.md")),
             *sorted(REPO.glob("examples/*/README.md"))]
    for page in pages:
        for n, block in enumerate(re.findall(r"```ya?ml\n(.*?)```", page.read_text(), re.S)):
            data = yaml.safe_load(block)
            if isinstance(data, dict) and set(data) <= TOP_KEYS:  # a workflow (or part of one), not another format
                found.append((f"{page.relative_to(REPO)}#{n}", page.parent, block))
    return found


@pytest.fixture(scope="module")
def validator():
    schema = workflow_schema(get_host())
    return jsonschema.Draft202012Validator(schema)


def as_workflow(text: str) -> dict:
    data = yaml.safe_load(text)
    data.setdefault("inputs", FILLER_INPUTS)  # snippets that show only steps or outputs
    return data


@pytest.mark.parametrize("name, folder, text", documents(), ids=[d[0] for d in documents()])
def test_shipped_and_documented_workflows_pass_schema_and_loader(request, validator, name, folder, text):
    data = as_workflow(text)
    missing = {s.get("use") for s in data.get("steps") or []} - set(get_host().steps)
    if name.startswith("examples/") and missing:  # an example plugin's README: install it, discover again
        request.getfixturevalue("example_plugin")
        validator = jsonschema.Draft202012Validator(workflow_schema(get_host(refresh=True)))
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}" for e in validator.iter_errors(data)]
    assert not errors, errors
    validate_document(parse_yaml(json.dumps(data), name), folder)


INVALID = {
    "unknown top-level key": {"inputs": FILLER_INPUTS, "stepz": []},
    "unknown step": {"inputs": FILLER_INPUTS, "steps": [{"use": "no_such_step"}]},
    "unknown option": {"inputs": FILLER_INPUTS, "steps": [{"use": "resize", "with": {"scael": 0.5}}]},
    "wrong option type": {"inputs": FILLER_INPUTS, "steps": [{"use": "blend", "with": {"amount": "high"}}]},
    "bad input value": {"inputs": FILLER_INPUTS, "steps": [{"use": "resize", "input": "sideways"}]},
    "save not a bool": {"inputs": FILLER_INPUTS, "steps": [{"use": "resize", "save": "yes please"}]},
    "unknown temporal mode": {"inputs": FILLER_INPUTS, "steps": [{"use": "resize", "temporal": "magic"}]},
    "no inputs": {"inputs": []},
    "unknown input kind": {"inputs": [{"generate": "plasma"}]},
    "unknown output sink": {"inputs": FILLER_INPUTS, "output": {"vidoe": {"path": "a.mp4"}}},
    "bad execution backend": {"inputs": FILLER_INPUTS, "execution": {"backend": "slurm"}},
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_documents_fail_schema_and_loader(validator, case, tmp_path):
    data = INVALID[case]
    assert list(validator.iter_errors(data)), f"schema accepted: {case}"
    with pytest.raises(WorkflowError):
        validate_document(parse_yaml(json.dumps(data), "bad.yaml"), tmp_path)


def test_one_or_list_options_accept_both_in_schema_and_loader(validator, tmp_path):
    for style in ("a.jpg", ["a.jpg", "b.jpg"]):
        data = {"inputs": FILLER_INPUTS, "steps": [{"use": "adain", "with": {"style": style}}]}
        assert not list(validator.iter_errors(data))
        validate_document(parse_yaml(json.dumps(data), "wf.yaml"), tmp_path)


def test_numbers_for_text_options_pass_schema_and_loader(validator, tmp_path):
    """YAML reads `fps: 25`, `g: 48`, `id: 7` as numbers; a text option takes them as its text."""
    data = {"inputs": FILLER_INPUTS, "steps": [{"use": "resize", "id": 7, "with": {"scale": 0.5}}],
            "output": {"dir": 2024, "video": {"path": "v.mp4", "fps": 25, "bitrate": 8000000, "options": {"g": 48}}}}
    assert not list(validator.iter_errors(data))
    wf = validate_document(parse_yaml(json.dumps(data), "wf.yaml"), tmp_path)
    assert wf.steps[0].id == "7" and wf.output.dir == "2024"
    data["output"]["video"]["crf"] = "best"  # and a number option still wants a number
    assert list(validator.iter_errors(data))
    with pytest.raises(WorkflowError, match="output.video.crf"):
        validate_document(parse_yaml(json.dumps(data), "wf.yaml"), tmp_path)
