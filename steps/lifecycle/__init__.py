"""The model lifecycle: plan, train, evaluate, register, and the registry's read side (manifests, aliases),
replay, reproduce, lineage, verify. May import every other steps package; nothing below imports it."""
