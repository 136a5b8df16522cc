"""Speech to text: faster-whisper engine, its settings, results and audio decoding."""

from models.stt.audio import SAMPLE_RATE, decode_audio
from models.stt.result import Segment, Transcript
from models.stt.settings import SttSettings
from models.stt.whisper import WhisperEngine

__all__ = ["SAMPLE_RATE", "Segment", "SttSettings", "Transcript", "WhisperEngine", "decode_audio"]
