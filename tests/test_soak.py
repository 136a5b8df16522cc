"""The short soak: two translated calls held for two minutes on a real server process.

The 30-minute soak is a benchmark (``bench.soak``, figures in docs/benchmarks.md); this is its
short version with stated bounds, so a leak that shows within minutes fails ``make test``:

- every 30 s interval has dubs heard (the calls work throughout);
- after both calls hang up, the server's open file descriptors and event-loop tasks are back
  at what they were before the calls (a margin of 2 for a scrape racing a teardown);
- resident memory grows by at most 128 MB from the second sample to the last: the first
  minutes fill the models' and aiortc's buffers (74 MB in the second minute of the 12-minute
  soak, then flat; 64 MB between the second and fourth samples here, with the rest of the suite
  running), so the bound catches a leak of about a megabyte a second, not a slow one: that is
  the 30-minute benchmark's job.
"""

from __future__ import annotations

from bench.soak import soak

#: Growth of resident memory allowed from the second sample to the last, in MB.
RSS_GROWTH_MB = 128.0
#: Descriptors or tasks a scrape may see while the last teardown finishes.
MARGIN = 2


async def test_two_calls_for_two_minutes_leave_the_server_as_they_found_it() -> None:
    # Four samples, whatever the turns in progress add to each interval: 2 minutes held 4
    # intervals of 37-39 s, but only 3 of 42 s once utterances waited after complete words.
    result = await soak(calls=2, minutes=2.0, every_s=30.0, min_samples=4)
    assert len(result.samples) >= 4, result
    assert all(s.dubs > 0 for s in result.samples), result.samples
    assert result.after is not None
    assert result.after.fds <= result.idle.fds + MARGIN, (result.idle, result.after)
    assert result.after.tasks <= result.idle.tasks + MARGIN, (result.idle, result.after)
    # The calls did hold descriptors and tasks: the check above is not vacuous.
    assert result.samples[0].tasks > result.idle.tasks + MARGIN, result.samples[0]
    growth = result.samples[-1].rss_mb - result.samples[1].rss_mb
    assert growth <= RSS_GROWTH_MB, [s.rss_mb for s in result.samples]
