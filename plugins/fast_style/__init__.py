"""fast_style plugin: feed-forward style transfer nets users train (Johnson et al.; conditional IN, Dumoulin et al.).

Registers the `fast_style` step, `stylefarm train fast-style`, and every net trained into the
weights cache (`fast_style/<name>`, see `registered_nets`).
"""

from stylefarm.hookspecs import hookimpl


@hookimpl
def stylefarm_register_steps():
    from .step import FastStyleStep

    return [FastStyleStep]
