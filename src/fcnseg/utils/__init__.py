"""Small shared utilities (downloads, atomic file writes)."""
