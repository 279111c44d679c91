"""``python -m detector``: the console command (also how ``detector run`` starts workers)."""

from detector.cli.main import run

run()
