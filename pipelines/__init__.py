"""Pipeline declarations (`*.toml`, one per bot) and the pure functions that build them."""
