"""python -m converters: same as face-convert."""
import sys

from .cli import main

sys.exit(main())
