"""Rooms, the WebSocket signaling protocol and join tokens."""
