"""Training prints nothing but its own progress: the shared loop raises no warning a user would
see on every run (it used to convert a grad-tracking loss to a float, a UserWarning per run)."""
from __future__ import annotations

import warnings


def test_the_shared_training_loop_emits_no_warning():
    import torch

    from steps.training.loop import fit
    from steps.training.training_state import new_training_state

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    features, targets = torch.randn(16, 4), torch.randint(0, 3, (16,))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test, with its text
        state = new_training_state(model, {"learning_rate": 0.01}, seed=1, device="cpu")
        fit(state, features, targets, epochs=2, batch_size=8)
    assert [record.epoch for record in state.history] == [1, 2]
