"""`python -m nanochat_cli` == `nanochat` (torchrun launches us this way)."""

from nanochat_cli.cli import main

if __name__ == "__main__":
    main()
