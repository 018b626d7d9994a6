"""What the platform team configures: the dataset catalog, the algorithm registry (with dated image
history and default training shape), retraining schedules and teams (config/*.yaml). May import
steps.store, steps.hashing and steps.training.shape (the bounds of nodes × procs_per_node)."""
