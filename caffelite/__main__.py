"""`python -m caffelite ...` runs the caffelite command."""
from .cli import main

main(prog_name="caffelite")
