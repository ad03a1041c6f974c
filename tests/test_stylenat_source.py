"""StyleNAT as a workflow source: seeds and walks as pixel-less items, the generator step on the
workers, truncation, the official seed recipe end to end, weights errors, and a generated walk
through a util step into a video (local executor and a real local Ray cluster).

RANDOM-WEIGHT TEST MODE (tiny config) except the exotic-fixture test, which loads the shared
fixture's official-layout weights from a checkpoint file.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from _ray_fixture import ray_cluster  # noqa: F401

from stylefarm.errors import EXIT_OK, InputError, WeightsError
from stylefarm.images import read_image
from stylefarm.plan import build_plan
from stylefarm.plugins.stylenat.source import StyleNATSource, StyleNATSourceOptions, parse_seeds
from stylefarm.plugins.stylenat.step import StyleNATGenerator
from stylefarm.runner import Run
from stylefarm.shard import Shard, make_filter
from stylefarm.workflow import read_yaml_file

REPO = Path(__file__).resolve().parent.parent
TINY = {"size": 16, "style_dim": 32, "n_mlp": 2, "mlp_ratio": 1, "kernels": [[3], [3], [3]],
        "dilations": [[1], [1], [1, 2]]}
pytestmark = pytest.mark.filterwarnings("ignore:.*RANDOM WEIGHTS:UserWarning")


def source(tmp_path: Path | None = None, **options) -> StyleNATSource:
    spec = {"generate": "stylenat", "random_weights": True, "config": TINY, **options}
    return StyleNATSource(StyleNATSourceOptions.model_validate(spec), tmp_path or REPO)


def generate(src: StyleNATSource) -> list[np.ndarray]:
    cls, options = src.generator()
    step = cls(options)
    step.setup("cpu")
    items = list(src.items())
    assert all(it.image is None and it.loader is None for it in items)  # seeds travel, not pixels
    return [it.image for it in step.process(items)]


@pytest.fixture(scope="module")
def seed_images(one_torch_thread) -> dict[int, np.ndarray]:
    return dict(zip([3, 5, 9], generate(source(seeds=[3, 5, 9]))))


def test_seed_lists_and_ranges_parse_inclusively():
    assert parse_seeds("0-3,7") == [0, 1, 2, 3, 7]
    assert parse_seeds([4, 2]) == [4, 2] and parse_seeds(9) == [9]
    with pytest.raises(ValueError, match="bad seeds"):
        parse_seeds("a-b")
    with pytest.raises(ValueError, match="one of seeds, count or walk"):
        StyleNATSourceOptions.model_validate({"generate": "stylenat", "seeds": [1], "count": 2})


def test_same_seed_same_image_in_any_batch_and_different_seeds_differ(seed_images, one_torch_thread):
    again = generate(source(seeds=[9, 3]))
    np.testing.assert_allclose(again[0], seed_images[9], atol=1e-6)
    np.testing.assert_allclose(again[1], seed_images[3], atol=1e-6)
    assert np.abs(seed_images[3] - seed_images[5]).max() > 1e-3
    image = seed_images[3]
    assert image.shape == (16, 16, 3) and image.dtype == np.float32 and 0 <= image.min() <= image.max() <= 1


def test_seed_items_carry_seed_and_row_and_name_by_seed():
    items = list(source(seeds="7-8", batch=2).items())
    assert [(it.index, it.meta["stylenat"]["seed"], it.meta["stylenat"]["row"]) for it in items] == [
        (0, 7, 0), (1, 7, 1), (2, 8, 0), (3, 8, 1)]
    assert [it.frame for it in source(seeds=[7, 42]).items()] == [7, 42]
    assert source(count=3).count() == 3 and items[0].source == "stylenat/custom"


def test_truncation_psi_one_equals_no_truncation_and_psi_zero_is_the_mean(seed_images, one_torch_thread):
    psi1 = generate(source(seeds=[3, 5], truncation=1.0, truncation_samples=256))
    np.testing.assert_allclose(psi1[0], seed_images[3], atol=1e-5)
    np.testing.assert_allclose(psi1[1], seed_images[5], atol=1e-5)
    psi0 = generate(source(seeds=[3, 5], truncation=0.0, truncation_samples=256))
    np.testing.assert_allclose(psi0[0], psi0[1], atol=1e-6)
    assert np.abs(psi0[0] - seed_images[3]).max() > 1e-3


@pytest.mark.parametrize("space,interpolation", [("z", "slerp"), ("w", "lerp")])
def test_walk_end_frames_equal_the_keyframe_seeds_images(seed_images, space, interpolation, one_torch_thread):
    walk = {"keyframes": [3, 5], "frames": 3, "space": space, "interpolation": interpolation}
    frames = generate(source(walk=walk))
    assert len(frames) == 4
    np.testing.assert_allclose(frames[0], seed_images[3], atol=1e-6)
    np.testing.assert_allclose(frames[-1], seed_images[5], atol=1e-6)
    assert min(np.abs(frames[1] - seed_images[3]).max(), np.abs(frames[1] - seed_images[5]).max()) > 1e-4


def test_walk_items_are_video_frames_with_rational_fps():
    src = source(walk={"keyframes": [1, 2, 3], "frames": 4, "loop": True}, fps="29.97")
    items = list(src.items())
    assert src.count() == len(items) == 12
    assert [it.index for it in items] == list(range(12)) and items[5].frame == 5
    assert items[0].fps == Fraction(30000, 1001) and items[0].meta["video"] == {"first": 0, "count": 12}
    assert items[-1].meta["stylenat"]["to"] == 1  # the loop walks back to the first keyframe
    assert items[0].source == "stylenat/custom_walk"


def test_random_weights_say_so_loudly_on_the_driver():
    with pytest.warns(UserWarning, match="RANDOM WEIGHTS"):
        source(seeds=[1]).count()


def test_size_is_checked_against_the_checkpoint_config():
    with pytest.raises(InputError, match="size 32 does not match the checkpoint's 16 px"):
        source(seeds=[1], size=32).count()


def test_exotic_fixture_checkpoint_via_source_reproduces_official_inference(shared, tmp_path, one_torch_thread):
    """seeds: [1], batch: 2 draws the fixture's z_exotic; images = clamp(unnormalize(official))."""
    fixture = torch.load(shared / "reference" / "stylenat" / "fixture.pt", weights_only=True)
    ckpt = tmp_path / "exotic.pt"
    torch.save({"state_dicts": {"g_ema": fixture["state_dicts"]["exotic"]}}, ckpt)
    entry = fixture["configs"]["exotic"]
    src = StyleNATSource(StyleNATSourceOptions.model_validate({
        "generate": "stylenat", "weights": "exotic.pt", "seeds": [1], "batch": 2, "size": 32,
        "config": {**entry["generator_args"], "size": entry["size"]}, "na_backend": "torch"}), tmp_path)
    images = generate(src)
    want = fixture["outputs"]["exotic"]["image_unnorm"].clamp(0, 1).permute(0, 2, 3, 1).numpy()
    assert np.abs(np.stack(images) - want).max() <= 1e-4


def test_checkpoint_of_other_config_is_a_plan_error_naming_keys(shared, tmp_path):
    fixture = torch.load(shared / "reference" / "stylenat" / "fixture.pt", weights_only=True)
    torch.save({"g": {}, "g_ema": fixture["state_dicts"]["main_legacy"]}, tmp_path / "old.pt")
    src = StyleNATSource(StyleNATSourceOptions.model_validate(
        {"generate": "stylenat", "weights": "old.pt", "config": "ffhq256", "seeds": [0]}), tmp_path)
    with pytest.raises(WeightsError, match=r"does not fit config 'ffhq256': layers\.0\.blocks\.0\.mlp") as info:
        src.count()
    assert "\n" not in str(info.value)
    auto = StyleNATSource(StyleNATSourceOptions.model_validate(
        {"generate": "stylenat", "weights": "old.pt", "seeds": [0]}), tmp_path)
    assert auto.check().size == 64 and auto.check().dilations[4] == (1, 8)  # inferred from the legacy shapes


def test_shipped_walk_workflow_without_weights_stops_with_the_weights_message(cli):
    result = cli("run", str(REPO / "workflows" / "stylenat_walk.yaml"))
    assert result.returncode != 0
    assert "stylefarm weights add stylenat/ffhq256" in result.stderr
    assert "FFHQ256_940k_flip.pt" in result.stderr and "Traceback" not in result.stderr


def walk_plan(tmp_path: Path, name: str, video: bool = True, **execution):
    data = {"version": 1,
            "inputs": [{"generate": "stylenat", "random_weights": True, "config": TINY,
                        "walk": {"keyframes": [1, 2], "frames": 5}, "fps": 12}],
            "steps": [{"use": "resize", "with": {"scale": 2}}],
            "output": {"dir": name, "images": False, "frames": {"pattern": "f/{input.stem}.{frame:04d}.png"},
                       "video": {"path": "{input.stem}.mp4", "preset": "ultrafast"} if video else False},
            "execution": {"device": "cpu", "batch_size": 2, **execution}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return build_plan(read_yaml_file(path), tmp_path)


def frames_of(root: Path) -> dict[str, np.ndarray]:
    return {p.name: read_image(p)[0] for p in sorted((root / "f").glob("*.png"))}


@pytest.fixture(scope="module")
def local_walk(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("walk")
    run = Run(walk_plan(tmp, "local"), progress=False)
    report = run.execute()
    return tmp, run, report


@pytest.mark.video
def test_generated_walk_through_a_util_step_into_a_video_locally(local_walk):
    from stylefarm.video.probe import probe

    tmp, run, report = local_walk
    assert run.exit_code == EXIT_OK and report["counts"]["done"] == 6
    frames = frames_of(tmp / "local")
    assert len(frames) == 6 and frames["custom_walk.0000.png"].shape == (32, 32, 3)  # resize x2 ran after
    info = probe(tmp / "local" / "custom_walk.mp4")
    assert info.frames == 6 and info.fps == 12
    assert "stylenat" in report["steps"] and "resize" in report["steps"]


@pytest.mark.video
def test_resume_and_shards_address_generated_frames_by_index(local_walk):
    tmp, _, _ = local_walk
    (tmp / "local" / "f" / "custom_walk.0003.png").unlink()
    report = Run(walk_plan(tmp, "local"), progress=False).execute()
    assert report["counts"] == {**report["counts"], "done": 1, "skipped": 5}
    plan = walk_plan(tmp, "shard", video=False)  # farm shards write frames; a video needs every frame
    Run(plan, progress=False, item_filter=make_filter(Shard(2, 3), total=6)).execute()
    shard = frames_of(tmp / "shard")
    assert sorted(shard) == ["custom_walk.0002.png", "custom_walk.0003.png"]
    local = frames_of(tmp / "local")
    assert all(np.array_equal(image, local[name]) for name, image in shard.items())


@pytest.mark.ray
@pytest.mark.video
@pytest.mark.usefixtures("ray_cluster")
def test_generated_walk_on_ray_actors_equals_the_local_run(local_walk, tmp_path):
    tmp, _, _ = local_walk
    run = Run(walk_plan(tmp_path, "ray", backend="ray", actors=1), progress=False)
    run.execute()
    assert run.exit_code == EXIT_OK
    ray_frames, local = frames_of(tmp_path / "ray"), frames_of(tmp / "local")
    assert set(ray_frames) == set(local)
    for name, image in ray_frames.items():
        assert np.array_equal(image, local[name]), name


def test_plan_puts_the_generator_first_and_core_patterns_still_work(tmp_path):
    plan = walk_plan(tmp_path, "plan")
    first = plan.chain[0]
    assert first.cls is StyleNATGenerator and first.generates == 0 and plan.generated == {0}
    assert [call.name for call in plan.chain] == ["stylenat", "resize"]
    path = tmp_path / "pattern.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "inputs": [{"generate": "noise", "count": 1}], "output": {}}))
    assert build_plan(read_yaml_file(path), tmp_path).generated == set()
