"""Live translation of call audio: speech detection, recognition, translation, synthesis."""
