"""The bot's HTTP and WebSocket server: Twilio webhook, Media Streams, health."""
