"""The media plane: peer connections with participants, per-listener mixing, outgoing tracks."""
