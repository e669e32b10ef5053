"""The bottom layer: small helpers every other part of infaug may use (seeds, progress bars,
atomic file writes). Nothing here imports the rest of infaug."""
