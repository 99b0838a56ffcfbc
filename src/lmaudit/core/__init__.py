"""Core types, errors and statistics shared by every capability (import submodules directly)."""
