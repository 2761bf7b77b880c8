"""Feature pre-extraction (SPEC 9): raw media / AU texts -> float32 .npy per sample."""
