"""Executors run a trainer for a TrainingJob and return its TrainerResult: subprocess, container.
May import steps.training (the contract), steps.images, steps.kubernetes (the pod a container mirrors), steps.store, steps.warm."""
