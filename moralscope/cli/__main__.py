from moralscope.cli import main

main()
