"""The model lifecycle: plan, train, evaluate, register, and the registry's read side (manifests, aliases),
replay, reproduce, lineage, verify, a run's progress and failure records.
May import every other steps package; nothing below imports it."""
