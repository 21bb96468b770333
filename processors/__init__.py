"""Custom Pipecat frame processors, one per module."""
