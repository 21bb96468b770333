"""User-turn strategies: when the caller's turn starts and ends, and when they are muted."""
