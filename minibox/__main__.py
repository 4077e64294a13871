from minibox.cli import run

run()
