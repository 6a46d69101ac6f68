"""``python -m chargeback``: the command line."""

from chargeback.cli import main

main()
