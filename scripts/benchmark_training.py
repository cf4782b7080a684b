"""Training throughput (images/s) of a network alone, or of the whole training loop:
``python -m h3r.benchmarks training`` (see :mod:`h3r.benchmarks` and ``--help``).

    python scripts/benchmark_training.py --backbone hrnet_w18 --input 256 --device cuda
    python scripts/benchmark_training.py --loop cpu --threads 1      # the cpu profile's loop
"""
import sys

from h3r.benchmarks import training_main

if __name__ == "__main__":
    training_main(sys.argv[1:])
