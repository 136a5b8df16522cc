"""Translation: language codes, the NLLB and Apertium engines, and the engine chain."""
