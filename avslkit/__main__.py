"""`python -m avslkit ...` (also what `torchrun -m avslkit` launches)."""

from avslkit.cli.main import main

if __name__ == "__main__":
    main()
