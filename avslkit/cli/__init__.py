"""Thin Typer command-line layer over the avslkit package: one module per command."""
