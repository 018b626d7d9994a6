"""What people watch runs by, made on the service side from what trainers stored: the learning-curve
PNG and TensorBoard log directories (fetched and verified) with a server on them.
May import steps.store and steps.training (its records); steps.lifecycle calls it, never the reverse."""
