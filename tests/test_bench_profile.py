"""The profile summary the media-plane figures come from: waiting is not work."""

from __future__ import annotations

from pathlib import Path

from bench.profile import summarise


def test_waiting_samples_are_left_out_and_shares_are_of_the_work(tmp_path: Path) -> None:
    stacks = tmp_path / "stacks.txt"
    stacks.write_text(
        # As py-spy writes them: paths already relative to sys.path.
        'process 1:"python";_run_once (asyncio/base_events.py:1)'
        ";EpollSelector.select (selectors.py:468) 700\n"
        'process 1:"python";_run_once (asyncio/base_events.py:1)'
        ";recv (callserver/media/tracks.py:70)"
        ";audio_frame (callserver/media/tracks.py:120) 30\n"
        'process 1:"python";_run_once (asyncio/base_events.py:1)'
        ";encode (aiortc/codecs/opus.py:60) 70\n"
    )
    profile = summarise(stacks)
    assert (profile.total, profile.idle) == (100, 700)
    assert profile.own["audio_frame (callserver/media/tracks.py)"] == 30
    assert profile.own["encode (aiortc/codecs/opus.py)"] == 70
    assert profile.inclusive["_run_once (asyncio/base_events.py)"] == 100
    table = profile.table(rows=2)
    assert table.splitlines()[2] == "| `encode (aiortc/codecs/opus.py)` | 70.0% | 70.0% |"
