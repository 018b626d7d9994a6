"""What every command needs: the service settings and the store they select."""
from __future__ import annotations


def load_settings():
    from trainyard.settings import Settings

    return Settings.load()


def open_configured_store(settings=None):
    from steps.store import open_store

    return open_store((settings or load_settings()).store)
