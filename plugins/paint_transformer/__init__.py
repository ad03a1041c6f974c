"""Paint Transformer plugin: stroke-based painting (Liu et al., ICCV 2021).

Registers the `paint_transformer` step, its weights (the shipped self-trained model, the
official `model.pth` and the official brush images) and `stylefarm train paint-transformer`.
"""

from stylefarm.hookspecs import hookimpl

HUAGE = "https://raw.githubusercontent.com/Huage001/PaintTransformer/main/inference/brush"


@hookimpl
def stylefarm_register_steps():
    from .step import PaintTransformerStep

    return [PaintTransformerStep]


@hookimpl
def stylefarm_register_sinks():
    from .sinks import AnimationSink, StrokesSink

    return [StrokesSink, AnimationSink]


@hookimpl
def stylefarm_register_weights():
    from stylefarm.weights import WeightFile

    return [
        WeightFile(
            name="paint_transformer/model", filename="paint_transformer_sf.pt",
            packaged="stylefarm.plugins.paint_transformer:weights/paint_transformer_sf.pt", license="MIT",
            note="self-trained on synthetic strokes with the shipped brushes (stylefarm train paint-transformer)",
        ),
        WeightFile(
            name="paint_transformer/official", filename="model.pth",
            url="https://drive.google.com/file/d/1NDD54BLligyr8tzo8QGI5eihZisXK1nq/view?usp=sharing",
            license="Apache-2.0", note="Huage001/PaintTransformer PyTorch checkpoint; use with brushes: official",
        ),
        WeightFile(name="paint_transformer/brush_vertical", filename="brush_large_vertical.png",
                   url=f"{HUAGE}/brush_large_vertical.png", license="Apache-2.0", note="official brush image"),
        WeightFile(name="paint_transformer/brush_horizontal", filename="brush_large_horizontal.png",
                   url=f"{HUAGE}/brush_large_horizontal.png", license="Apache-2.0", note="official brush image"),
    ]


@hookimpl
def stylefarm_register_train_commands():
    from .cli import train_command

    return [train_command]
