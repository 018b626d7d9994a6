"""What pins a trainer: image digests resolved from an OCI registry, and the content hash of the embedded
trainer's code. May import steps.hashing and steps.project_root only."""
