"""``python -m standby``: the command line (the gateway starts its page process so)."""

from standby.cli import main

main()
