"""The plugin contract: every hook a stylefarm plugin can implement.

A plugin is a module (or object) registered under the `stylefarm` entry-point group::

    [project.entry-points.stylefarm]
    my_plugin = "my_package.plugin"

and implements any of the hooks below, marked with `stylefarm.hookspecs.hookimpl`.
Every hook returns a list; the host calls each plugin's implementation on its own so that
it can say which distribution provided what (duplicate names are reported with both).
Hooks are called once per process, lazily; keep imports of heavy libraries (torch) inside
`Step.setup`, not at module import, so `stylefarm --help` stays fast.
"""

import pluggy

hookspec = pluggy.HookspecMarker("stylefarm")
hookimpl = pluggy.HookimplMarker("stylefarm")


@hookspec
def stylefarm_register_steps():
    """Return a list of `stylefarm.step.Step` subclasses this plugin provides.

    Each class has a unique `name` (what a workflow's `use:` names), a `kind`
    (stylize | paint | translate | generate | util), an `Options` pydantic model
    (validates the step's `with:` mapping; exported by `stylefarm schema`) and `temporal`.
    """


@hookspec
def stylefarm_register_sources():
    """Return a list of `stylefarm.sources.Source` subclasses (new kinds of workflow input).

    A source is chosen by the key it declares in `Source.key` (e.g. `video`, `sequence`,
    `generate`); the host matches each `inputs:` entry to the first source that accepts it.
    """


@hookspec
def stylefarm_register_sinks():
    """Return a list of `stylefarm.sinks.Sink` subclasses (new kinds of workflow output).

    A sink is enabled by its `Sink.key` appearing under `output:` (e.g. `output.video`,
    `output.sheet`); its `Options` model validates that mapping.
    """


@hookspec
def stylefarm_register_weights():
    """Return a list of `stylefarm.weights.WeightFile` records (name, URL, sha256, ...).

    The weights manager (`stylefarm weights ...`) lists, verifies and resolves these files;
    steps call `stylefarm.weights.resolve(name, override)` in `setup`.
    """


@hookspec
def stylefarm_register_commands():
    """Return a list of `click.Command` objects added to the `stylefarm` CLI.

    Used for plugin-specific tools such as `stylefarm sheet`. Commands are added under their
    own name; a name that a built-in command or another plugin already uses is an error: the
    plugin is marked FAILED in `stylefarm plugins` and the command is not added.
    """


@hookspec
def stylefarm_register_train_commands():
    """Return a list of `click.Command` objects, each shown as `stylefarm train NAME`.

    `NAME` is the command's own name (e.g. `@click.command("paint-transformer")`), usually the
    model it trains. Same clash rules as `stylefarm_register_commands`, within `train`.
    """
