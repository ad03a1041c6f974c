"""StyleNAT plugin: `inputs: - generate: stylenat` (seeds, latent walks) and its released weights."""

from stylefarm.hookspecs import hookimpl
from stylefarm.weights import WeightFile

_LICENSE = "MIT (SHI-Labs/StyleNAT); trained on FFHQ (CC BY-NC-SA 4.0 images)"
FFHQ256_FILE = WeightFile(
    name="stylenat/ffhq256",
    filename="FFHQ256_940k_flip.pt",
    url="https://shi-labs.com/projects/stylenat/checkpoints/FFHQ256_940k_flip.pt",
    license=_LICENSE,
    note="official FFHQ-256 generator (FID 2.046); sha256 not pinned: no published digest was available offline.",
)
FFHQ1024_FILE = WeightFile(
    name="stylenat/ffhq1024",
    filename="FFHQ1024_700k.pt",
    url="https://shi-labs.com/projects/stylenat/checkpoints/FFHQ1024_700k.pt",
    license=_LICENSE,
    note="official FFHQ-1024 generator (FID 4.174); sha256 not pinned: no published digest was available offline.",
)


@hookimpl
def stylefarm_register_sources():
    from .source import StyleNATSource

    return [StyleNATSource]


@hookimpl
def stylefarm_register_weights():
    return [FFHQ256_FILE, FFHQ1024_FILE]
