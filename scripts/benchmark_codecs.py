"""Encode and decode throughput of every codec preset, next to mmpose's codecs where installed:
``python -m h3r.benchmarks codecs`` (see :mod:`h3r.benchmarks` and ``--help``).

    python scripts/benchmark_codecs.py --device cpu --json results/benchmark_codecs.json
"""
import sys

from h3r.benchmarks import codecs_main

if __name__ == "__main__":
    codecs_main(sys.argv[1:])
