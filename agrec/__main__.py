import sys

from agrec.cli import main

sys.exit(main())
