from glpibot.cli import main

main()
