"""StyA2K plugin: the `stya2k` stylize step and the authors' released checkpoints.

The encoder is the AdaIN `vgg_normalised.pth`, registered by the adain plugin as `adain/vgg`.
"""

from stylefarm.hookspecs import hookimpl
from stylefarm.weights import WeightFile

_REPO = "https://github.com/LearningHx/StyA2K/raw/main/checkpoints/A2K"
_LICENSE = "no license file in LearningHx/StyA2K: research use, ask the authors"


def _checkpoint(role: str, sha256: str | None = None, size: int | None = None) -> WeightFile:
    return WeightFile(
        name=f"stya2k/{role}", filename=f"latest_net_{role}.pth", url=f"{_REPO}/latest_net_{role}.pth",
        sha256=sha256, size=size, license=_LICENSE,
        note="" if sha256 else "sha256 not pinned: the file was not retrievable offline to hash it.",
    )


WEIGHT_FILES = [
    _checkpoint("A2K", "0752d020344ed334ed63a5f671bdd93db71d7ad7f0d69e49074a3065ec2af7d1", 2111249),
    _checkpoint("transform"),
    _checkpoint("decoder"),
]


@hookimpl
def stylefarm_register_steps():
    from .step import StyA2KStep

    return [StyA2KStep]


@hookimpl
def stylefarm_register_weights():
    return list(WEIGHT_FILES)
