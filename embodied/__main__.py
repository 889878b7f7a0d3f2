import sys

from embodied.cli import main

sys.exit(main())
