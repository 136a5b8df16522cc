"""The model store: finds, assembles, downloads and verifies model folders by name."""

from models.store.catalogue import CATALOGUE, ModelSpec, lookup
from models.store.settings import StoreSettings
from models.store.store import ModelStore, ResolvedModel, VerifyResult, pull_command

__all__ = [
    "CATALOGUE",
    "ModelSpec",
    "ModelStore",
    "ResolvedModel",
    "StoreSettings",
    "VerifyResult",
    "lookup",
    "pull_command",
]
