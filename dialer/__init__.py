"""Placing calls through the bot's operator API: one number, or a campaign from a CSV file."""
