"""`python -m trainyard.cli`, as the tests call it."""
import sys

from trainyard.cli import main

sys.exit(main())
