"""The headless Chromium the page tests and the browser benchmarks drive: where it is and the
flags it needs on a loopback-only machine (fake devices, no mDNS candidates, no throttling)."""

from __future__ import annotations

from pathlib import Path

CHROMIUM = "/usr/lib/chromium/chromium"


def chromium_flags(
    fake_audio: Path, *, fake_video: Path | None = None, devices_allowed: bool = True
) -> list[str]:
    """Flags for a headless Chromium caller; ``fake_video`` is a Y4M file for the camera
    (else Chromium's own test pattern).

    Without ``devices_allowed`` the permission prompt is not auto-accepted, so getUserMedia is
    refused (NotAllowedError) as when a user blocks the camera and microphone.
    """
    flags = [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={fake_audio}",
        "--autoplay-policy=no-user-gesture-required",
        "--allow-loopback-in-peer-connection",
        # One switch only: the last --disable-features wins and replaces Playwright's list.
        "--disable-features=WebRtcHideLocalIpsWithMdns",
        "--disable-background-timer-throttling",
        "--disable-renderer-backgrounding",
        "--disable-backgrounding-occluded-windows",
    ]
    if fake_video is not None:
        flags.append(f"--use-file-for-fake-video-capture={fake_video}")
    if not devices_allowed:
        flags.remove("--use-fake-ui-for-media-stream")
    return flags
