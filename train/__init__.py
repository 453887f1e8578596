"""Training (edgeclf.train). Importing it before torch pins torch's CPU arithmetic to one portable code path, so
the same training gives the same bytes on any x86-64 CPU (see edgeclf.train.settings.pin_arithmetic)."""

from edgeclf.train.settings import pin_arithmetic

pin_arithmetic()
