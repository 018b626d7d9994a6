"""Rendering a training run as Kubernetes objects (the trainer pod; a multi-node run's Indexed Job and
headless Service). Plain kubernetes-client models, no API calls. May import steps.training, steps.images,
steps.catalog, steps.store and steps.hashing."""
