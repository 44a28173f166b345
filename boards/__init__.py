"""Open-toolchain synthesis and board builds (no torch here)."""
