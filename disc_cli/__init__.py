"""The `disc` command: one entry point for every part of the product."""
