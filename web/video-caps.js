// What this page sends each peer on the direct video links: less as the call grows (the table
// is signaling/video_caps.py's, through generated.js), and nothing to a participant who turned
// their incoming video off. `?videocaps=off` on the page's address leaves the browser's own
// choice (for measuring without the caps); turning video off for someone still applies.

import { VIDEO_CAPS } from "./generated.js";

/** Whether the caps apply on this page (not with `?videocaps=off`). */
export function capsEnabled(search = window.location.search) {
  return new URLSearchParams(search).get("videocaps") !== "off";
}

/** The row for a page with `others` other participants: the last row beyond the table. */
export function capFor(others) {
  for (const row of VIDEO_CAPS) {
    if (others <= row.maxOthers) return row;
  }
  return VIDEO_CAPS[VIDEO_CAPS.length - 1];
}

/**
 * The first encoding of the camera sender to `peer` (the server's participant, or undefined
 * before the server said who they are) in a call with `others` other participants.
 */
export function encodingFor(peer, others, caps = capsEnabled()) {
  const encoding = { active: !peer || peer.video !== false };
  if (!caps) return encoding;
  const row = capFor(Math.max(1, others));
  encoding.maxBitrate = row.maxBitrate;
  encoding.scaleResolutionDownBy = row.scaleResolutionDownBy;
  encoding.maxFramerate = row.maxFramerate;
  return encoding;
}
