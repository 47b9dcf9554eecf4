"""The on-board news sentiment model."""
