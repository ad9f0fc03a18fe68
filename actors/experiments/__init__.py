"""Fault-injection experiments: break the platform on purpose, check it recovers.

`python run.py experiment FILE [--seed N]` reads an experiment file
(`schema`), runs it on a virtual clock (`runner`: the workload, the fault
schedule, the heal), judges it (`checks`) and writes a report with a picture
(`report`, `picture`). See the README's "Experiments" section for the file
format.
"""

from actors.experiments.runner import main, run_experiment
from actors.experiments.schema import Experiment, InvalidExperiment, load_experiment

__all__ = ["Experiment", "InvalidExperiment", "load_experiment", "main", "run_experiment"]
