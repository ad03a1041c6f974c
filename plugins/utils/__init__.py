"""Cheap classical steps (resize, color transfer, blend) that prove the chain without a model."""

from stylefarm.hookspecs import hookimpl


@hookimpl
def stylefarm_register_steps():
    from .steps import BlendStep, ColorTransferStep, ResizeStep

    return [ResizeStep, ColorTransferStep, BlendStep]
