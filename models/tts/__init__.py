"""Speech synthesis: Piper, espeak-ng and gTTS behind a cached fallback chain."""

from models.tts.audio import decode_to_48k, mp3_bytes, resample_to_48k, wav_bytes
from models.tts.espeak import EspeakEngine
from models.tts.gtts_engine import GttsEngine
from models.tts.piper_engine import PiperEngine, PiperVoiceFiles, installed_voices, pulled_voices
from models.tts.service import TtsService, build_engines, build_tts_service
from models.tts.settings import TtsSettings
from models.tts.speech import OUTPUT_RATE, Speech, TtsEngine

__all__ = [
    "OUTPUT_RATE",
    "EspeakEngine",
    "GttsEngine",
    "PiperEngine",
    "PiperVoiceFiles",
    "Speech",
    "TtsEngine",
    "TtsService",
    "TtsSettings",
    "build_engines",
    "build_tts_service",
    "decode_to_48k",
    "installed_voices",
    "mp3_bytes",
    "pulled_voices",
    "resample_to_48k",
    "wav_bytes",
]
