"""Rendering a training run as Kubernetes objects (the trainer pod). Plain kubernetes-client models, no
API calls. May import steps.training, steps.images, steps.catalog, steps.store and steps.hashing."""
