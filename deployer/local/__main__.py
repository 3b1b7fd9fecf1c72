"""`python -m deployer.local --port N`: the emulator process that `deployer local start` runs, detached."""

import sys

from deployer.local.emulator import main

sys.exit(main())
