"""Provider services: pipecat services for phone calls, one vendor service per module."""
