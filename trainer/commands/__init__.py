"""face-train sub-commands: each module defines ``register(subparsers)`` (auto-registered by trainer.cli)."""
