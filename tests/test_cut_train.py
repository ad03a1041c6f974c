"""`stylefarm train cut`: a tiny run learns (NCE goes down), writes the official layout, resumes,
loads into the `cut` step; bad folders and mismatched checkpoints fail in one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from stylefarm.errors import InputError, StylefarmError, WeightsError  # noqa: E402
from stylefarm.plugins.cut.data import ImageFolder, UnpairedData  # noqa: E402
from stylefarm.plugins.cut.train import LoopLimits, TrainConfig, train  # noqa: E402

TINY = {"ngf": 8, "n_blocks": 2, "ndf": 8, "load_size": 72, "crop_size": 64, "num_patches": 32, "lr": 2e-3}


def _folders(root: Path) -> tuple[Path, Path]:
    """Domain A: smooth gradients with noise; domain B: their inverted, mirrored colours (unpaired use)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    a, b = root / "A", root / "B"
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    for i in range(3):
        img = rng.random((72, 72, 3)) * 0.3 + np.linspace(0, 0.7, 72)[None, :, None]
        Image.fromarray((img * 255).astype(np.uint8)).save(a / f"{i}.png")
        Image.fromarray(((1 - img[..., ::-1]) * 255).astype(np.uint8)).save(b / f"{i}.jpg")
    return a, b


def _run(root: Path, out: Path, iters: int, mode: str = "cut", fresh: bool = False, **over):
    a, b = _folders(root) if not (root / "A").exists() else (root / "A", root / "B")
    cfg = TrainConfig.for_mode(mode, **{**TINY, "n_epochs": 100, "n_epochs_decay": 0, **over})
    data = UnpairedData(ImageFolder(a, "--a"), ImageFolder(b, "--b"), 1, cfg.crop_size, True, 0)
    return train(cfg, data, out, LoopLimits(max_iters=iters, save_every=0, preview_every=10, print_every=1000),
                 fresh=fresh, log=lambda *_: None)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, one_torch_thread):
    """One tiny QS-Attn run of 30 iterations at 64 px, shared by the tests below."""
    root = tmp_path_factory.mktemp("cut-train")
    state = _run(root, root / "run", 30, mode="qsattn")
    return root, state


def test_tiny_qsattn_run_lowers_the_nce_loss(trained):
    _, state = trained
    nce = [entry[2]["NCE"] for entry in state.history]
    # the median of the second half, not the last few: GAN training spikes for a few iterations
    # now and then (where depends on the CPU's float kernels), and a spike is not a failure to learn
    assert len(nce) == 30 and np.median(nce[15:]) < np.mean(nce[:5]) - 0.3


def test_run_writes_the_official_checkpoint_layout_and_previews(trained):
    root, _ = trained
    run = root / "run"
    for name in ("latest_net_G.pth", "latest_net_D.pth", "latest_net_F.pth", "preview_000010.png"):
        assert (run / name).is_file()
    g = torch.load(run / "latest_net_G.pth", weights_only=True)
    d = torch.load(run / "latest_net_D.pth", weights_only=True)
    f = torch.load(run / "latest_net_F.pth", weights_only=True)
    assert "model.7.filt" in g and "model.12.conv_block.1.weight" in g  # official generator keys
    assert "model.2.filt" in d and d["model.14.weight"].shape[0] == 1  # anti-aliased PatchGAN, 1-channel head
    assert f["mlp_4.2.weight"].shape == (256, 256) and f["mlp_0.0.weight"].shape == (256, 3)


def test_resume_continues_the_counters_and_the_networks(trained, tmp_path, one_torch_thread):
    import shutil

    root, first = trained
    out = tmp_path / "run"
    shutil.copytree(root / "run", out)
    before = torch.load(out / "latest_net_G.pth", weights_only=True)
    state = _run(root, out, 35, mode="qsattn")
    assert state.total_iters == 35 and len(state.history) == 35
    assert state.history[:30] == first.history
    after = torch.load(out / "latest_net_G.pth", weights_only=True)
    assert not torch.equal(before["model.1.weight"], after["model.1.weight"])


def test_trained_checkpoint_loads_into_the_step(trained, one_torch_thread):
    from stylefarm.plugins.cut.step import CUTOptions, CUTStep

    root, _ = trained
    step = CUTStep(CUTOptions(weights={"G": str(root / "run" / "latest_net_G.pth")}, ngf=8, n_blocks=2))
    step.setup("cpu")
    out = step.translate([np.full((40, 52, 3), 0.3, np.float32)])[0]
    assert out.shape == (40, 52, 3) and np.isfinite(out).all()


def test_resume_with_another_setup_names_what_differs(trained, tmp_path):
    import shutil

    root, _ = trained
    shutil.copytree(root / "run", tmp_path / "run")
    with pytest.raises(StylefarmError, match="ngf: 8 there, 16 now") as err:
        _run(root, tmp_path / "run", 31, mode="qsattn", ngf=16)
    assert "\n" not in str(err.value)


def test_official_checkpoint_of_another_config_names_keys_and_fitting_generator(trained, tmp_path):
    root, _ = trained
    out = tmp_path / "official"
    out.mkdir()
    g = torch.load(root / "run" / "latest_net_G.pth", weights_only=True)
    torch.save(g, out / "latest_net_G.pth")  # like an official run: nets only, no train_state.pt
    with pytest.raises(WeightsError, match="it fits --ngf 8, --n-blocks 2") as err:
        _run(root, out, 1, ngf=16, n_blocks=3)
    assert "\n" not in str(err.value) and "model.1.weight" in str(err.value)


def test_missing_and_empty_folders_are_one_line_errors(tmp_path):
    with pytest.raises(InputError, match="--a .*: no such folder"):
        ImageFolder(tmp_path / "nope", "--a")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not an image")
    with pytest.raises(InputError, match="--b .*: no images or videos"):
        ImageFolder(tmp_path / "empty", "--b")


def test_cli_reports_a_missing_folder_in_one_line(cli, tmp_path):
    (tmp_path / "B").mkdir()
    result = cli("train", "cut", "--a", str(tmp_path / "missing"), "--b", str(tmp_path / "B"),
                 "--out", str(tmp_path / "run"))
    assert result.returncode != 0
    lines = [ln for ln in result.stderr.splitlines() if "missing" in ln]
    assert len(lines) == 1 and "no such folder" in lines[0] and "Traceback" not in result.stderr


def test_video_file_in_a_folder_gives_sampled_frames(tmp_path):
    import shutil

    media = Path(__file__).resolve().parent.parent / "workflows" / "media" / "testsrc.mp4"
    (tmp_path / "v").mkdir()
    shutil.copy(media, tmp_path / "v" / "clip.mp4")
    folder = ImageFolder(tmp_path / "v", "--a", video_frames=5)
    image, eight_bit = folder.get(len(folder) - 1)
    assert len(folder) == 5 and image.shape == (240, 320, 3) and eight_bit


def test_fastcut_mode_uses_the_official_defaults():
    cfg = TrainConfig.for_mode("fastcut")
    assert (cfg.nce_idt, cfg.lambda_NCE, cfg.flip_equivariance, cfg.n_epochs, cfg.n_epochs_decay) == \
        (False, 10.0, True, 150, 50)
    cut = TrainConfig.for_mode("cut")
    assert (cut.load_size, cut.crop_size, cut.lr, cut.beta1, cut.num_patches, cut.nce_T, cut.nce_layers) == \
        (286, 256, 2e-4, 0.5, 256, 0.07, [0, 4, 8, 12, 16])


def test_registered_run_is_a_weights_manager_entry_the_step_can_name(trained, one_torch_thread):
    from stylefarm.host import get_host
    from stylefarm.plugins.cut.cli import _register
    from stylefarm.plugins.cut.step import CUTOptions, CUTStep

    root, _ = trained
    _register(root / "run", "tiny_test")  # into $STYLEFARM_WEIGHTS_DIR (a per-session folder in tests)
    assert "cut/tiny_test" in get_host(refresh=True).weights
    step = CUTStep(CUTOptions(model="cut/tiny_test", ngf=8, n_blocks=2))
    step.setup("cpu")
    assert np.isfinite(step.translate([np.full((32, 32, 3), 0.5, np.float32)])[0]).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_training_runs_on_cuda(tmp_path):
    a, b = _folders(tmp_path)
    cfg = TrainConfig.for_mode("qsattn", **{**TINY, "n_epochs": 1, "n_epochs_decay": 0})
    data = UnpairedData(ImageFolder(a, "--a"), ImageFolder(b, "--b"), 1, cfg.crop_size, True, 0)
    state = train(cfg, data, tmp_path / "run", LoopLimits(max_iters=3, save_every=0, preview_every=0),
                  device="cuda", log=lambda *_: None)
    assert state.total_iters == 3 and (tmp_path / "run" / "latest_net_G.pth").is_file()
