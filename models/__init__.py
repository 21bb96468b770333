"""Model sessions loaded once per process and shared by every call (Silero VAD, Smart Turn)."""
