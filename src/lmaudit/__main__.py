from lmaudit.cli.main import run

run()
