"""ONNX initializers of `multistyle26.onnx` -> a torch state_dict in the weights cache.

The conversion lives in `plugins/_cin.py` because `fast_style` trains new styles on top of the
same weights (`stylefarm train fast-style --base cin26`); these names stay for cin26's callers.
"""

from stylefarm.plugins._cin import (  # noqa: F401 (re-exported)
    INSTALL_HINT,
    ONNX_NAME,
    PACKAGE,
    convert,
    converted_path,
    load_cin26_state,
    package_model_path,
    read_initializers,
)
