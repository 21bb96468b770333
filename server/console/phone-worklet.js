// The browser's phone line, on the audio thread: the microphone as 8 kHz μ-law packets of
// 20 ms, and a playout buffer that behaves like Twilio's: audio plays in order, a mark is
// echoed once the audio queued before it has played, `clear` empties the buffer and echoes
// every pending mark.

import { ulawDecode, ulawEncode } from "./mulaw.js";

const LINE_RATE = 8000;
const PACKET = 160; // samples: 20 ms at 8 kHz, one Media Streams `media` message

class PhoneLine extends AudioWorkletProcessor {
  constructor() {
    super();
    this.step = LINE_RATE / sampleRate; // line samples per context sample (≤ 1)
    // Microphone: a box filter over each line sample's span of input, then μ-law.
    this.micPhase = 0; this.micSum = 0; this.micCount = 0;
    this.packet = new Uint8Array(PACKET); this.packetFill = 0;
    // Playout: μ-law chunks in order; marks at the line-sample count queued before them.
    this.chunks = []; this.chunkPos = 0; this.linePhase = 0;
    this.queued = 0; this.played = 0; this.marks = []; this.current = 0;
    this.heard = []; // line samples played since the last report, as μ-law bytes
    this.port.onmessage = (event) => this.command(event.data);
  }

  command(message) {
    if (message.play) {
      this.chunks.push(message.play);
      this.queued += message.play.length;
    } else if (message.mark !== undefined) {
      this.marks.push({ name: message.mark, at: this.queued });
    } else if (message.clear) {
      this.chunks = []; this.chunkPos = 0;
      this.played = this.queued;
      this.echoMarks();
    }
  }

  echoMarks() {
    while (this.marks.length && this.marks[0].at <= this.played) {
      this.report();
      this.port.postMessage({ mark: this.marks.shift().name });
    }
  }

  report() {
    if (this.heard.length) this.port.postMessage({ heard: Uint8Array.from(this.heard) });
    this.heard = [];
  }

  nextLineSample() { // the next queued μ-law byte, or null when the buffer is empty
    while (this.chunks.length && this.chunkPos >= this.chunks[0].length) {
      this.chunks.shift(); this.chunkPos = 0;
    }
    if (!this.chunks.length) return null;
    this.played++;
    const byte = this.chunks[0][this.chunkPos++];
    this.heard.push(byte);
    return byte;
  }

  playout(output) {
    for (let i = 0; i < output.length; i++) {
      // Hold each line sample for 1/step context samples (the context is at 8 kHz or above).
      if (this.linePhase <= 0) {
        const byte = this.nextLineSample();
        this.current = byte === null ? 0 : ulawDecode(byte) / 32768;
        this.linePhase += 1;
      }
      this.linePhase -= this.step;
      output[i] = this.current;
    }
    this.echoMarks();
    if (this.heard.length >= PACKET) this.report();
  }

  capture(input) {
    for (let i = 0; i < input.length; i++) {
      this.micSum += input[i]; this.micCount++;
      this.micPhase += this.step;
      if (this.micPhase >= 1) {
        this.micPhase -= 1;
        const sample = Math.round((this.micSum / this.micCount) * 32768);
        this.packet[this.packetFill++] = ulawEncode(Math.max(-32768, Math.min(32767, sample)));
        this.micSum = 0; this.micCount = 0;
        if (this.packetFill === PACKET) {
          this.port.postMessage({ media: this.packet });
          this.packet = new Uint8Array(PACKET); this.packetFill = 0;
        }
      }
    }
  }

  process(inputs, outputs) {
    const mic = inputs[0] && inputs[0][0];
    if (mic) this.capture(mic);
    const speaker = outputs[0] && outputs[0][0];
    if (speaker) {
      this.playout(speaker);
      for (let c = 1; c < outputs[0].length; c++) outputs[0][c].set(speaker);
    }
    return true;
  }
}

registerProcessor("phone-line", PhoneLine);
