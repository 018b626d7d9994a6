"""What the platform team configures: the dataset catalog, the algorithm registry (with dated image
history), retraining schedules and teams (config/*.yaml). May import steps.store and steps.hashing."""
