"""``python -m benchmarks``: every hot path against its peers (see :mod:`benchmarks.run`)."""

from benchmarks.run import main

main()
