#!/usr/bin/env python
"""Django's command-line utility for Hookline."""

import os
import sys

# Commands that connect to DATABASE_URL even when DATABASE_POOL_URL is set: a migration holds its
# locks for as long as it runs and may set session options, so it gets a server connection of its
# own rather than a pooled one (config.database).
DIRECT_COMMANDS = {"migrate"}


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    if sys.argv[1:2] and sys.argv[1] in DIRECT_COMMANDS:
        os.environ.pop("DATABASE_POOL_URL", None)
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
