"""Built-in stylefarm plugins; each sub-package registers through the `stylefarm` entry-point group.

Plugins never import each other: helpers several plugins share live in the private modules
`stylefarm.plugins._*`.
"""

if __name__ != "stylefarm.plugins":
    raise ImportError(f"stylefarm's built-in plugins were imported as {__name__!r}; import `stylefarm.plugins`")
