// G.711 μ-law as Twilio Media Streams carry it: bit-exact with telephony/mulaw.py (Sun's g711.c).

const BIAS = 0x84;
const SEGMENT_ENDS = [0x3f, 0x7f, 0xff, 0x1ff, 0x3ff, 0x7ff, 0xfff, 0x1fff];

export function ulawEncode(pcm) { // a 16-bit sample → one μ-law byte
  const x = pcm >> 2;
  const mask = x < 0 ? 0x7f : 0xff;
  const magnitude = Math.min(Math.abs(x), 8159) + 0x21;
  let segment = 0;
  while (segment < 8 && magnitude > SEGMENT_ENDS[segment]) segment++;
  const value = segment > 7 ? 0x7f : (segment << 4) | ((magnitude >> (segment + 1)) & 0x0f);
  return (value ^ mask) & 0xff;
}

export function ulawDecode(byte) { // one μ-law byte → a 16-bit sample
  const u = ~byte & 0xff;
  const magnitude = ((((u & 0x0f) << 3) + BIAS) << ((u >> 4) & 0x07)) - BIAS;
  return u & 0x80 ? -magnitude : magnitude;
}
