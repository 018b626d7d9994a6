"""The trainer side: the trainer contract (env in, result out) and the runtime every trainer shares
(determinism, split, loop, metrics). Runs inside trainer images: may import steps.data, steps.store, steps.hashing."""
