"""Training on Lightning: task modules, callbacks, the run directory and the engine."""
