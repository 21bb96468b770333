"""Project tools run by CI: the budget of private pipecat names."""
