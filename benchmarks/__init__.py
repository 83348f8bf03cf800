"""vigil's benchmarks: speed and accuracy beside the model card's pipeline and its peers.

Plain modules run from the repository root, not an installed package: they measure vigil,
they are not part of it, and they pull in what vigil itself never needs (torch,
transformers, Optimum, matplotlib).

    python -m benchmarks.run            the CPU benchmark (also `vigil bench`); --quick to smoke-test
    python benchmarks/gpu.py            the GPU benchmark, on a machine with a CUDA GPU; --dry-run on a CPU

Modules, in the order a run uses them:

- config.py: what a run measures (`BenchConfig`), the full and quick presets.
- workload.py: the real tweets of data/tweets, mixed across languages.
- prepare.py: stand-in, artifact and Optimum's virtual environment, cached.
- run.py: the runner and its command line; one worker process per contender.
- worker.py: one contender measured in its own process.
- contenders.py: the ways of scoring tweets that are compared.
- measure.py: timing rules (throughput points, latency samples, percentiles).
- service_load.py: closed- and open-loop load through vigil's Service.
- report.py: accuracy, targets and the Markdown report; plots.py: the PNGs.
- machine.py: processor, cores, memory, versions; source.py: the checkout, and vigil from it.
- gpu.py: the GPU script, standalone.

Results of full runs go under benchmarks/results/.
"""
