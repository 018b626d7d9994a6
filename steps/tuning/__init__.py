"""Hyperparameter search: search spaces, study plans, Optuna samplers and the study's state in the store
(waves of trials, trial outcomes, the study record and its plots). May import steps.lifecycle and below."""
