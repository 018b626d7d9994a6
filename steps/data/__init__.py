"""The data side: snapshots (content-addressed, sha256 dataset hash; source_tree: a dataset is regular files,
never links), the stat cache, the dataset reader, schemas and Great Expectations validation.
May import steps.store and steps.hashing only."""
