from __future__ import annotations

import sys

from courier.cli import main

sys.exit(main())
