from kronos_cli.cli.app import main

main()
