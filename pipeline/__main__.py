"""`python -m pipeline` is the same as the `stylefarm` command."""

from .cli import main

main()
