"""evaluate plugin: `stylefarm eval` (warping error, frame difference, SSIM, VGG losses of a video).

The Python API is `stylefarm.plugins.evaluate.api.evaluate`; metrics in `metrics.py` (numpy).
"""

from stylefarm.hookspecs import hookimpl


@hookimpl
def stylefarm_register_commands():
    from .cli import eval_command

    return [eval_command]
