"""The data side: snapshots (content-addressed, sha256 dataset hash), the stat cache, the dataset reader,
schemas and Great Expectations validation. May import steps.store, steps.hashing and steps.warm only."""
