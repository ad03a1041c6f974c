"""Built-in stylefarm plugins; each sub-package registers through the `stylefarm` entry-point group."""
