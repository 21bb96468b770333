"""The phone line: Twilio Media Streams, its playout, the transport, a call's lifecycle."""
