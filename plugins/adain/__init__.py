"""AdaIN plugin: the `adain` stylize step and its two official weight files."""

from stylefarm.hookspecs import hookimpl
from stylefarm.weights import WeightFile

VGG_FILE = WeightFile(
    name="adain/vgg",
    filename="vgg_normalised.pth",
    url="https://github.com/naoto0804/pytorch-AdaIN/releases/download/v0.0.0/vgg_normalised.pth",
    sha256=None,
    license="MIT code (naoto0804/pytorch-AdaIN); VGG-19 weights of Simonyan & Zisserman (CC BY 4.0)",
    note="sha256 not pinned: no published digest was available offline. StyA2K uses this file too.",
)
DECODER_FILE = WeightFile(
    name="adain/decoder",
    filename="decoder.pth",
    url="https://github.com/naoto0804/pytorch-AdaIN/releases/download/v0.0.0/decoder.pth",
    sha256=None,
    license="MIT (naoto0804/pytorch-AdaIN)",
    note="sha256 not pinned: no published digest was available offline.",
)


@hookimpl
def stylefarm_register_steps():
    from .step import AdaINStep

    return [AdaINStep]


@hookimpl
def stylefarm_register_weights():
    return [VGG_FILE, DECODER_FILE]
