from automem.cli import main

main()
