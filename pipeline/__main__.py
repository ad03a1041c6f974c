"""`python -m stylefarm` is the same as the `stylefarm` command."""

from .cli import main

main()
