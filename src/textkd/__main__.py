from textkd.cli import main

main()
