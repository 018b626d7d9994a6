"""The trainer side: the trainer contract (env in; records, exit codes out) and the runtime every trainer
shares — determinism, split, the loop and its epoch-end hooks, checkpoints and resume, the stall watchdog,
metrics and TensorBoard events. Runs inside trainer images: may import steps.data, steps.store, steps.hashing."""
