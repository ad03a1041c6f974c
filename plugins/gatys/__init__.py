"""gatys plugin: optimisation-based style transfer (Gatys et al.) with spatial, colour and scale control."""

from stylefarm.hookspecs import hookimpl


@hookimpl
def stylefarm_register_steps():
    from .step import GatysStep

    return [GatysStep]


@hookimpl
def stylefarm_register_weights():
    from stylefarm.plugins._lossnet_files import LOSSNET_FILES

    return list(LOSSNET_FILES)
