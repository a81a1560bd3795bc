import ios_mp  # noqa: F401  (first, before anything imports ansible or multiprocessing)

# isort: split
from iosmp_playbooks.app import main

if __name__ == "__main__":
    main().main_loop()
