"""CUT plugin: the `cut` translate step (CUT, FastCUT and QS-Attn generators), their weights and
`stylefarm train cut` (unpaired training on two folders, official checkpoint layout).
"""

from pathlib import Path

from stylefarm.hookspecs import hookimpl

CUT_PRETRAINED = "http://efrosgans.eecs.berkeley.edu/CUT/pretrained_models.tar"
DEMO_WEIGHTS = Path(__file__).parent / "weights" / "cut_demo_qsattn.pt"


@hookimpl
def stylefarm_register_steps():
    from .step import CUTStep

    return [CUTStep]


def _trained_models() -> list:
    """Models saved by `stylefarm train cut --register NAME` (cache folder `cut__NAME`) become `cut/NAME`."""
    from stylefarm.weights import WeightFile, cache_dir

    root = cache_dir()
    if not root.is_dir():
        return []
    found = []
    for folder in sorted(root.glob("cut__*")):
        name = folder.name[len("cut__"):]
        if name not in ("G", "demo") and (folder / "latest_net_G.pth").is_file():
            found.append(WeightFile(name=f"cut/{name}", filename="latest_net_G.pth",
                                    note="trained here with `stylefarm train cut --register`"))
    return found


@hookimpl
def stylefarm_register_weights():
    from stylefarm.weights import WeightFile

    files = [WeightFile(
        name="cut/G", filename="latest_net_G.pth", url=CUT_PRETRAINED, license="BSD (taesungp/contrastive-unpaired-"
        "translation)", note="official pretrained generator, e.g. horse2zebra_cut_pretrained/latest_net_G.pth from "
        "the tar; FastCUT and QS-Attn generators load the same way")]
    if DEMO_WEIGHTS.is_file():
        files.append(WeightFile(
            name="cut/demo", filename=DEMO_WEIGHTS.name, packaged=f"stylefarm.plugins.cut:weights/{DEMO_WEIGHTS.name}",
            license="same as stylefarm",
            note="small QS-Attn demo (photo -> cin26 style 19 look), trained by stylefarm on a 2-core CPU in 19 min; "
            "use with ngf: 16, n_blocks: 6 (docs/translate.md)"))
    return files + _trained_models()


@hookimpl
def stylefarm_register_train_commands():
    from .cli import train_command

    return [train_command]
