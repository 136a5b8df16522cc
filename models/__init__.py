"""Speech engines: recognition, translation, synthesis, their caches and the model store."""
