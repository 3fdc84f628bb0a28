from discriminator_cli.cli.app import main

main()
