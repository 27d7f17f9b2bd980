import sys

from harness.cli import main

if __name__ == "__main__":  # worker processes (spawn) import this module again and must not re-run the CLI
    sys.exit(main())
