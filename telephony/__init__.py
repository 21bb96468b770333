"""Telephony audio primitives shared by the processors and the stand-ins."""
