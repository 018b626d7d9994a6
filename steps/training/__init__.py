"""The trainer side: the trainer contract (env in, result out), the runtime every trainer shares
(determinism, split, loop, metrics, data-parallel ranks) and the torchrun command that starts it on
nodes x procs_per_node processes. Runs inside trainer images: may import steps.data, steps.store, steps.hashing."""
