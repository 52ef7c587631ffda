import sys

from centralino.cli import main

sys.exit(main())
