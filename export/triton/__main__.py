from .repository import main

main()
