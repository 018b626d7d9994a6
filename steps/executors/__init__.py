"""Executors run a trainer for a TrainingJob and return its TrainerResult."""
from steps.executors.base import TrainerExecutor, TrainerFailed, TrainerImage

__all__ = ["TrainerExecutor", "TrainerFailed", "TrainerImage"]
