"""Repository-level test settings: images build from the local Debian base (no registry here)."""

import os

os.environ.setdefault("PEAKCHAOS_BASE_IMAGE", "peakchaos/python-base:bookworm")
