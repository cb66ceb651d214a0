"""Development tools: generated test data, the real-data check and the converter benchmark."""
