"""digits-cnn trainer: a small CNN on 8x8 handwritten digits (scikit-learn's bundled set)."""
from __future__ import annotations

from steps.training.runtime import exit_trainer, run_trainer

DEFAULT_HYPERPARAMETERS = {"channels": 16, "hidden": 64, "dropout": 0.0}


class DigitsCNN:
    name = "digits-cnn"
    schema_name = "digits"

    def featurize(self, frame, hyperparameters):
        import torch

        pixels = frame[[f"p{i}" for i in range(64)]].astype("float32").to_numpy() / 16.0
        return torch.from_numpy(pixels).reshape(-1, 1, 8, 8)

    def build_model(self, hyperparameters, n_classes):
        from torch import nn

        channels = int(hyperparameters.get("channels", DEFAULT_HYPERPARAMETERS["channels"]))
        hidden = int(hyperparameters.get("hidden", DEFAULT_HYPERPARAMETERS["hidden"]))
        dropout = float(hyperparameters.get("dropout", DEFAULT_HYPERPARAMETERS["dropout"]))
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be at least 0 and below 1, not {dropout}")
        # No Dropout layer at 0: the layers' names in the weights file, and so every earlier model's
        # weights hash, stay as they were.
        regularize = [nn.Dropout(dropout)] if dropout > 0 else []
        return nn.Sequential(
            nn.Conv2d(1, channels, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, 2 * channels, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(2 * channels * 4 * 4, hidden),
            nn.ReLU(),
            *regularize,
            nn.Linear(hidden, n_classes),
        )


if __name__ == "__main__":
    exit_trainer(run_trainer(DigitsCNN()))
