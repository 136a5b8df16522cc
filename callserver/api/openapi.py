"""The OpenAPI 3.1 description of the speech API, served at /api/openapi.json."""

from __future__ import annotations

from typing import Any

from callserver import __version__

_ERROR = {
    "description": "Refused: the body says why and whether retrying helps",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}


def _json(schema: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}


def openapi_document(max_upload_bytes: int, max_texts: int) -> dict[str, Any]:
    """The document, with the server's limits written into it."""
    errors = {"400": _ERROR, "413": _ERROR, "422": _ERROR, "503": _ERROR}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "callserver speech API",
            "version": __version__,
            "description": "Speech to text, translation and text to speech, as used by calls.",
        },
        "paths": {
            "/api/stt": {
                "post": {
                    "summary": "Transcribe an audio file (any format FFmpeg decodes)",
                    "parameters": [
                        {"name": "language", "in": "query", "schema": {"type": "string"}},
                        {
                            "name": "allowed",
                            "in": "query",
                            "description": "Comma-separated languages detection may pick",
                            "schema": {"type": "string"},
                        },
                    ],
                    "requestBody": {
                        "description": f"Raw audio, or multipart with a 'file' field; at most "
                        f"{max_upload_bytes} bytes",
                        "content": {
                            "application/octet-stream": {"schema": {"type": "string"}},
                            "multipart/form-data": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "file": {"type": "string", "format": "binary"},
                                        "language": {"type": "string"},
                                        "allowed": {"type": "string"},
                                    },
                                    "required": ["file"],
                                }
                            },
                        },
                    },
                    "responses": {
                        "200": {"description": "Transcript", "content": _json("Transcript")},
                        **errors,
                    },
                }
            },
            "/api/translate": {
                "post": {
                    "summary": f"Translate one text, or up to {max_texts} texts in a batch",
                    "requestBody": {"content": _json("TranslateRequest")},
                    "responses": {
                        "200": {"description": "Translation", "content": _json("Translation")},
                        **errors,
                    },
                }
            },
            "/api/tts": {
                "post": {
                    "summary": "Speak text: 48 kHz mono WAV or MP3",
                    "requestBody": {"content": _json("TtsRequest")},
                    "responses": {
                        "200": {
                            "description": "Audio; X-Engine, X-Voice and X-Cache headers",
                            "content": {
                                "audio/wav": {"schema": {"type": "string", "format": "binary"}},
                                "audio/mpeg": {"schema": {"type": "string", "format": "binary"}},
                            },
                        },
                        **errors,
                    },
                }
            },
            "/api/languages": {
                "get": {
                    "summary": "Languages per engine",
                    "responses": {
                        "200": {"description": "Languages", "content": {"application/json": {}}}
                    },
                }
            },
            "/api/engines": {
                "get": {
                    "summary": "Engine health and model information",
                    "responses": {
                        "200": {"description": "Engines", "content": {"application/json": {}}}
                    },
                }
            },
            "/api/stats": {
                "get": {
                    "summary": "Requests, p50/p95 latency, errors and cache hit rate since start",
                    "responses": {
                        "200": {"description": "Statistics", "content": {"application/json": {}}}
                    },
                }
            },
        },
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {
                        "error": {
                            "type": "object",
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                                "retry": {"type": "boolean"},
                            },
                            "required": ["code", "message", "retry"],
                        }
                    },
                },
                "Transcript": {
                    "type": "object",
                    "properties": {
                        "text": {"type": "string"},
                        "language": {"type": "string"},
                        "language_probability": {"type": "number"},
                        "duration": {"type": "number"},
                        "segments": {"type": "array", "items": {"type": "object"}},
                        "timing_ms": {"type": "object"},
                    },
                },
                "TranslateRequest": {
                    "type": "object",
                    "properties": {
                        "text": {"type": "string"},
                        "texts": {
                            "type": "array",
                            "items": {"type": "string"},
                            "maxItems": max_texts,
                        },
                        "source": {"type": "string", "examples": ["en"]},
                        "target": {"type": "string", "examples": ["es"]},
                    },
                    "required": ["source", "target"],
                },
                "Translation": {
                    "type": "object",
                    "properties": {
                        "translation": {"type": "string"},
                        "translations": {"type": "array", "items": {"type": "string"}},
                        "engine": {"type": ["string", "null"]},
                        "timing_ms": {"type": "object"},
                    },
                },
                "TtsRequest": {
                    "type": "object",
                    "properties": {
                        "text": {"type": "string"},
                        "language": {"type": "string"},
                        "voice": {"type": "string"},
                        "format": {"enum": ["wav", "mp3"], "default": "wav"},
                    },
                    "required": ["text", "language"],
                },
            }
        },
    }
