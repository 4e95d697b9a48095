import sys

from metricseg.cli import main

sys.exit(main())
