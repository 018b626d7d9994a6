"""The data side: snapshots (content-addressed, sha256 dataset hash; source_tree: a dataset is regular files,
never links), the stat cache, the dataset reader, schemas and Great Expectations validation (results cached by
content). May import steps.store, steps.hashing and steps.warm only."""
