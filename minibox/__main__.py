import sys

from minibox.cli import main

sys.exit(main())
