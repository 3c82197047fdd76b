"""The subcommands of `kdbench`, one small object each (bench/commands/base.py): its options, what it
does, and what an interrupt leaves behind. `bench/cli.py` lists them and runs the one asked for.
Each module imports only light libraries at the top, so `kdbench --help` starts in a moment; a
command loads what it needs when it runs."""
