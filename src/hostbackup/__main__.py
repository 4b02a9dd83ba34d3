from hostbackup.cli.main import main

main()
