"""Stage commands: each module has ``main(argv=None)`` and takes every path from its arguments."""
