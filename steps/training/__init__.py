"""The trainer side: the trainer contract (env in; records, exit codes out), the runtime every trainer
shares — determinism, split, the loop and its epoch-end hooks, checkpoints and resume, the stall watchdog,
metrics and TensorBoard events, data-parallel ranks — and the torchrun command that starts it on
nodes x procs_per_node processes. Runs inside trainer images: may import steps.data, steps.store, steps.hashing."""
