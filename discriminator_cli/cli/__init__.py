"""The command-line layer: parse options, call the library, print. Nothing else."""
