from lmaudit.cli.main import main

main()
