"""Local stand-ins that speak the real wire protocols of Twilio, Deepgram and OpenAI.

They serve the test suite, the benchmarks and the offline `python bot.py call --offline`.
"""
