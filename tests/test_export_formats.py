"""Deadline 10 and OpenCue exports of a video workflow in 3 chunks, checked against each format's
rules (key=value info files, frame grammar, tokens; the OpenCue DTD), then executed the way the
farm would substitute its tokens: the outputs equal a plain local run."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from farm_fixtures import output_hashes, stills_job, video_job

DTD = Path(__file__).parent / "data" / "opencue" / "cjsl-1.16.dtd"
DEADLINE_FRAMES = re.compile(r"^-?\d+(-\d+(x\d+)?)?(,-?\d+(-\d+(x\d+)?)?)*$")  # 1-10,20,30-40x2
OPENCUE_RANGE = re.compile(r"^\d+(-\d+([xy:]\d+)?)?(,\d+(-\d+([xy:]\d+)?)?)*$")  # 1-10x2, 1,3,5


def read_info(path: Path) -> dict[str, str]:
    """A Deadline job/plugin info file: one Key=Value per line."""
    pairs = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        assert sep and key and key == key.strip(), f"{path.name}: not a Key=Value line: {line!r}"
        assert key not in pairs, f"{path.name}: {key} given twice"
        pairs[key] = value
    return pairs


def deadline_chunks(frames: str, size: int) -> list[tuple[int, int]]:
    """The tasks Deadline makes from Frames + ChunkSize (consecutive frames of the list)."""
    numbers = []
    for part in frames.split(","):
        a, _, b = part.partition("-")
        numbers += list(range(int(a), int(b or a) + 1))
    return [(numbers[i], numbers[min(i + size, len(numbers)) - 1]) for i in range(0, len(numbers), size)]


def run_deadline_task(plugin: dict[str, str], start: int, end: int) -> None:
    args = plugin["Arguments"].replace("<STARTFRAME>", str(start)).replace("<ENDFRAME>", str(end))
    args = args.replace("<QUOTE>", '"')
    subprocess.run([plugin["Executable"], "--log-level", "error", *shlex.split(args)], check=True,
                   cwd=plugin["StartupDirectory"], capture_output=True, timeout=300)


@pytest.mark.video
def test_deadline_video_job_in_3_chunks_follows_the_commandline_plugin_rules(cli, tmp_path):
    wf = video_job(tmp_path / "shot")
    result = cli("export", "deadline", str(wf), "--chunks", "3", "--task-timeout", "90", "-o", str(tmp_path / "dl"))
    assert result.returncode == 0, result.stderr
    job, plugin = read_info(tmp_path / "dl/stylize_job_info.job"), read_info(tmp_path / "dl/stylize_plugin_info.job")
    for key in ("Plugin", "Name", "Frames", "ChunkSize"):
        assert job.get(key), f"job info lacks {key}"
    assert job["Plugin"] == "CommandLine" and DEADLINE_FRAMES.match(job["Frames"])
    assert job["TaskTimeoutMinutes"] == "2" and int(job["FailureDetectionTaskErrors"]) == 3
    assert deadline_chunks(job["Frames"], int(job["ChunkSize"])) == [(1001, 1012), (1013, 1024), (1025, 1036)]
    assert "<STARTFRAME>-<ENDFRAME>" in plugin["Arguments"] and Path(plugin["Executable"]).is_file()
    encode = read_info(tmp_path / "dl/encode_job_info.job")
    assert encode["Plugin"] == "CommandLine" and DEADLINE_FRAMES.match(encode["Frames"])
    submit = (tmp_path / "dl/submit.sh").read_text()
    assert "-SubmitMultipleJobs -dependent -job stylize_job_info.job stylize_plugin_info.job " \
           "-job encode_job_info.job encode_plugin_info.job" in submit
    for start, end in deadline_chunks(job["Frames"], int(job["ChunkSize"])):
        run_deadline_task(plugin, start, end)
    encode_plugin = read_info(tmp_path / "dl/encode_plugin_info.job")
    run_deadline_task(encode_plugin, 0, 0)
    farm = output_hashes(tmp_path / "shot" / "out")
    assert "clip_styled.mp4" in farm
    local = cli("--log-level", "error", "run", str(wf), "-o", str(tmp_path / "local"), "--no-progress")
    assert local.returncode == 0 and farm == output_hashes(tmp_path / "local")


def _dtd(path: Path) -> tuple[dict[str, re.Pattern | None], dict[str, dict[str, tuple[str, bool]]]]:
    """Element content models (as regexes over child names; None = text only) and attributes
    (name -> (type, required)) of a DTD that uses flat sequences and choice-free models."""
    text = re.sub(r"<!--.*?-->", "", path.read_text(), flags=re.S)
    elements: dict[str, re.Pattern | None] = {}
    for name, model in re.findall(r"<!ELEMENT\s+(\S+)\s+\((.*?)\)\*?\s*>", text, flags=re.S):
        if model.strip() == "#PCDATA":
            elements[name] = None
            continue
        parts = [re.fullmatch(r"\s*([\w.-]+)([?*+]?)\s*", p) for p in model.split(",")]
        elements[name] = re.compile("".join(f"(?:{m[1]},){m[2]}" for m in parts))
    attributes: dict[str, dict[str, tuple[str, bool]]] = {}
    for element, body in re.findall(r"<!ATTLIST\s+(\S+)(.*?)>", text, flags=re.S):
        for attr, kind, default in re.findall(r"([\w.-]+)\s+(NMTOKEN|CDATA|\([^)]*\))\s+(#\w+)", body):
            attributes.setdefault(element, {})[attr] = (kind, default == "#REQUIRED")
    return elements, attributes


def validate(element: ET.Element, elements, attributes) -> None:
    """Raise AssertionError where `element` (recursively) breaks the DTD."""
    tag = element.tag
    assert tag in elements, f"<{tag}> is not declared in the DTD"
    declared = attributes.get(tag, {})
    for attr, value in element.attrib.items():
        assert attr in declared, f"<{tag} {attr}=...> is not declared"
        kind = declared[attr][0]
        if kind == "NMTOKEN":
            assert re.fullmatch(r"[\w.:-]+", value), f"<{tag} {attr}={value!r}> is not an NMTOKEN"
        elif kind.startswith("("):
            assert value in [v.strip() for v in kind[1:-1].split("|")], f"<{tag} {attr}={value!r}> not allowed"
    for attr, (_, required) in declared.items():
        assert not required or attr in element.attrib, f"<{tag}> lacks required attribute {attr}"
    model, children = elements[tag], list(element)
    if model is None:
        assert not children, f"<{tag}> holds text only"
        return
    sequence = "".join(f"{child.tag}," for child in children)
    assert model.fullmatch(sequence), f"<{tag}> children {sequence!r} break its content model"
    for child in children:
        validate(child, elements, attributes)


def run_opencue_frame(layer: ET.Element, start: int, end: int) -> None:
    cmd = layer.findtext("cmd").replace("#FRAME_START#", str(start)).replace("#FRAME_END#", str(end))
    cmd = cmd.replace("#IFRAME#", str(start))
    subprocess.run(shlex.split(cmd), check=True, capture_output=True, timeout=300)


@pytest.mark.video
def test_opencue_video_job_in_3_chunks_is_valid_against_the_published_dtd(cli, tmp_path):
    wf = video_job(tmp_path / "shot")
    wf.write_text(wf.read_text().replace("device: cpu", "device: cuda"))
    result = cli("export", "opencue", str(wf), "--chunks", "3", "--task-timeout", "600", "-o", str(tmp_path / "cue"))
    assert result.returncode == 0, result.stderr
    xml = tmp_path / "cue" / "job.xml"
    assert "<!DOCTYPE spec" in xml.read_text()
    root = ET.parse(xml).getroot()
    validate(root, *_dtd(DTD))
    if shutil.which("xmllint"):  # the reference validator too, when installed
        proc = subprocess.run(["xmllint", "--noout", "--nonet", "--dtdvalid", str(DTD), str(xml)],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    stylize, encode = root.findall("job/layers/layer")
    assert (stylize.get("name"), stylize.get("type"), encode.get("name")) == ("stylize", "Render", "encode")
    assert OPENCUE_RANGE.match(stylize.findtext("range")) and stylize.findtext("range") == "1001-1036"
    assert stylize.findtext("chunk") == "12" and stylize.findtext("gpus") == "1" and encode.find("gpus") is None
    assert stylize.findtext("timeout") == "10" and "#FRAME_START#-#FRAME_END#" in stylize.findtext("cmd")
    depend = root.find("depends/depend")
    assert depend.get("type") == "LAYER_ON_LAYER"
    assert (depend.findtext("deplayer"), depend.findtext("onlayer")) == ("encode", "stylize")
    assert depend.findtext("depjob") == depend.findtext("onjob") == root.find("job").get("name")


def test_dtd_checker_rejects_what_cuebot_would(tmp_path):
    elements, attributes = _dtd(DTD)
    bad_order = ET.fromstring("<spec><shot>a</shot><show>b</show><user>u</user></spec>")
    with pytest.raises(AssertionError, match="content model"):
        validate(bad_order, elements, attributes)
    bad_type = ET.fromstring("<spec><show>a</show><shot>b</shot><user>u</user><job name='j'><layers>"
                             "<layer name='l' type='Gpu'><cmd>x</cmd><range>1</range><chunk>1</chunk></layer>"
                             "</layers></job></spec>")
    with pytest.raises(AssertionError, match="not allowed"):
        validate(bad_type, elements, attributes)


def test_opencue_shards_for_stills_run_as_the_farm_substitutes_them(cli, tmp_path):
    wf = stills_job(tmp_path / "job", count=4)
    result = cli("export", "opencue", str(wf), "--chunks", "2", "-o", str(tmp_path / "cue"))
    assert result.returncode == 0, result.stderr
    root = ET.parse(tmp_path / "cue" / "job.xml").getroot()
    validate(root, *_dtd(DTD))
    stylize, assemble = root.findall("job/layers/layer")
    assert stylize.findtext("range") == "1-2" and "#IFRAME#/2" in stylize.findtext("cmd")
    for shard in (1, 2):
        run_opencue_frame(stylize, shard, shard)
    run_opencue_frame(assemble, 1, 1)
    local = cli("--log-level", "error", "run", str(wf), "-o", str(tmp_path / "local"), "--no-progress")
    assert local.returncode == 0 and output_hashes(tmp_path / "job" / "out") == output_hashes(tmp_path / "local")


@pytest.mark.video
def test_frame_selection_with_holes_never_chunks_across_them(cli, tmp_path):
    import yaml

    wf = video_job(tmp_path / "shot", frames=24)
    picked = ("--frames", "1001-1005,1010-1020")
    for fmt in ("deadline", "opencue"):  # their chunks are runs of the frame list: refused
        result = cli("export", fmt, str(wf), *picked, "-o", str(tmp_path / fmt))
        assert result.returncode == 2 and "leaves out frames" in result.stderr
    result = cli("export", "openjd", str(wf), *picked, "--chunk-size", "4", "--no-task-chunking",
                 "-o", str(tmp_path / "oj"))
    assert result.returncode == 0, result.stderr
    template = yaml.safe_load((tmp_path / "oj" / "template.yaml").read_text())
    ranges = template["steps"][0]["parameterSpace"]["taskParameterDefinitions"][0]["range"]
    assert ranges == ["1001-1004", "1005-1005", "1010-1013", "1014-1017", "1018-1020"]
    encode = template["steps"][1]["script"]["actions"]["onRun"]["args"]
    assert encode[-3:] == ["--frames", "{{Param.Frames}}", "--no-progress"]  # as `run --frames` would
    frames = next(p for p in template["parameterDefinitions"] if p["name"] == "Frames")
    assert frames["default"] == "1001-1005,1010-1020"
