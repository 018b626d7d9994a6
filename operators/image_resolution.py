"""Hand plan_run a digest resolver for executors that run real images (once per run)."""
from __future__ import annotations

from collections.abc import Callable

from trainyard.settings import Settings


def resolver_for(settings: Settings) -> Callable[[str], str] | None:
    if settings.executor == "subprocess":
        return None
    from steps.images.image_digest import require_digest, resolve_digest

    def resolve(reference: str) -> str:
        # Production refuses a mutable tag outright; elsewhere the tag is pinned here, once.
        require_digest(reference, settings.production)
        digest = resolve_digest(reference, insecure=settings.registry_insecure).digest
        if digest is None:
            raise ValueError(f"the registry gave no digest for {reference}")
        return digest

    return resolve


def digest_checker_for(settings: Settings) -> Callable[[str], bool] | None:
    """Whether a pinned digest still exists in its registry (exact replays check this)."""
    if settings.executor == "subprocess":
        return None
    from steps.images.image_digest import ManifestNotFound, resolve_digest_by_head

    def exists(pinned_reference: str) -> bool:
        try:
            resolve_digest_by_head(pinned_reference, insecure=settings.registry_insecure)
        except ManifestNotFound:
            return False
        return True

    return exists
