"""repro: a reproducibility kit for "A Systematic Study of In-the-Wild Model Merging for LLMs".

Data flows one way: facts (configs/, checkpoints.lock) -> plan -> work (merge, evaluate)
-> results -> report. See docs/architecture.md and the module docstrings for the layers.
"""

__version__ = "0.1.0"
