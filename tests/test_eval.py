"""`stylefarm eval`: E_warp (Lai et al.) is 0 for a static video and grows with flicker, cuts
split shots, the losses are labelled, and the command writes JSON, a table and a plot."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import imageio.v3 as iio
import numpy as np
import pytest

from stylefarm.plugins.evaluate.api import evaluate, evaluate_frames
from stylefarm.plugins.evaluate.cli import default_report

MEDIA = Path(__file__).resolve().parents[1] / "workflows" / "media"


def photo(name: str = "astronaut.jpg") -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(MEDIA / name)), cv2.COLOR_BGR2RGB).astype(np.float32) / 255


def pan(n: int = 6, h: int = 72, w: int = 96, name: str = "astronaut.jpg") -> list[np.ndarray]:
    img = photo(name)
    return [np.ascontiguousarray(img[100 + t:100 + t + h, 120 + 2 * t:120 + 2 * t + w]) for t in range(n)]


def noisy(frames: list[np.ndarray], sigma: float) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [np.clip(f + rng.normal(0, sigma, f.shape), 0, 1).astype(np.float32) for f in frames]


def test_e_warp_is_zero_for_a_static_video():
    still = [pan(1)[0]] * 4
    result = evaluate_frames(still, still, perceptual=False)
    assert result["e_warp"] == pytest.approx(0.0, abs=1e-10) and result["frame_diff"] == 0.0
    assert result["ssim"] == pytest.approx(1.0)


def test_e_warp_grows_with_added_noise_on_a_moving_scene():
    frames = pan()
    clean = evaluate_frames(frames, frames, perceptual=False)["e_warp"]
    low = evaluate_frames(noisy(frames, 0.02), frames, perceptual=False)["e_warp"]
    high = evaluate_frames(noisy(frames, 0.08), frames, perceptual=False)["e_warp"]
    assert clean < low < high
    assert high > 10 * clean  # the flow explains the motion: what is left is the flicker


def test_a_cut_in_the_input_splits_shots_and_is_left_out_of_e_warp():
    frames = pan(4) + pan(3, name="coffee.jpg")
    result = evaluate_frames(frames, frames, perceptual=False)
    assert [(s["first"], s["last"]) for s in result["shots"]] == [(0, 3), (4, 6)]
    cut_row = result["per_frame"][4]
    assert cut_row["cut"] and cut_row["e_warp"] is None
    assert result["pairs"] == 6


def test_losses_use_random_vgg_weights_labelled_when_no_vgg_file_is_installed(one_torch_thread):
    frames = pan(3, 48, 64)
    style = photo("coffee.jpg")[:64, :64]
    result = evaluate_frames(noisy(frames, 0.05), frames, style, loss_size=64)
    assert result["content_loss"] > 0 and result["style_loss"] > 0
    same = evaluate_frames(frames, frames, None, loss_size=64)
    assert same["content_loss"] == 0.0 and same["style_loss"] is None
    if "RANDOM" not in result["vgg"]:
        pytest.skip("a VGG file is installed here")
    assert "RANDOM VGG weights" in result["vgg"]


@pytest.mark.video
def test_evaluate_reads_the_demo_video_against_itself():
    result = evaluate(MEDIA / "testsrc.mp4", MEDIA / "testsrc.mp4", max_frames=4, perceptual=False)
    assert result["frames"] == 4 and result["ssim"] == pytest.approx(1.0)
    assert len(result["per_frame"]) == 4 and result["per_frame"][1]["e_warp"] is not None


def test_default_report_sits_beside_the_output(tmp_path):
    assert default_report("out/clip.mp4", ".json") == Path("out/clip.eval.json")
    assert default_report("out/f.%04d.png", ".png") == Path("out/f.eval.png")
    assert default_report(str(tmp_path), ".json") == tmp_path.parent / f"{tmp_path.name}.eval.json"


def write_frames(folder: Path, frames: list[np.ndarray]) -> None:
    folder.mkdir()
    for t, frame in enumerate(frames):
        iio.imwrite(folder / f"f.{t:04d}.png", (frame * 255 + 0.5).astype(np.uint8))


def test_eval_command_prints_a_table_and_writes_json_and_a_plot(tmp_path, cli):
    frames = pan(5, 48, 64)
    write_frames(tmp_path / "src", frames)
    write_frames(tmp_path / "out", noisy(frames, 0.05))
    proc = cli("eval", str(tmp_path / "out"), "--source", str(tmp_path / "src" / "f.%04d.png"), "--no-perceptual")
    assert proc.returncode == 0, proc.stderr
    assert "e_warp" in proc.stdout and "shot" in proc.stdout
    data = json.loads((tmp_path / "out.eval.json").read_text())
    assert data["frames"] == 5 and data["e_warp"] > 0 and data["content_loss"] is None
    assert iio.imread(tmp_path / "out.eval.png").shape[2] == 3


def test_eval_command_names_a_missing_input_in_one_line(tmp_path, cli):
    proc = cli("eval", str(tmp_path / "nope.mp4"), "--source", str(tmp_path / "src"), "--no-perceptual")
    assert proc.returncode != 0
    assert "no such file" in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: "), proc.stderr  # the CLI's own form, not click's "Error:"


def test_eval_of_a_single_frame_writes_its_plot(tmp_path, cli):
    """It crashed drawing the plot (UnboundLocalError) after printing the table, exit 1."""
    frames = pan(1, 48, 64)
    write_frames(tmp_path / "src", frames)
    write_frames(tmp_path / "out", frames)
    proc = cli("eval", str(tmp_path / "out"), "--source", str(tmp_path / "src"), "--no-perceptual")
    assert proc.returncode == 0, proc.stderr
    assert iio.imread(tmp_path / "out.eval.png").shape[2] == 3


def test_eval_refuses_an_output_and_source_of_different_lengths_unless_told(tmp_path, cli):
    """An output made from a range was scored, silently, against the first frames of the source."""
    frames = pan(6, 48, 64)
    write_frames(tmp_path / "src", frames)
    write_frames(tmp_path / "out", frames[2:5])
    args = ("eval", str(tmp_path / "out"), "--source", str(tmp_path / "src"), "--no-perceptual")
    proc = cli(*args)
    assert proc.returncode == 2 and "differ in length (the source has more than 3 frames)" in proc.stderr
    assert "--max-frames 3" in proc.stderr
    assert cli(*args, "--max-frames", "3").returncode == 0
