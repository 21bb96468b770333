// A call to a pipeline from the browser: the microphone and the speaker on Twilio's Media
// Streams protocol, over the same `/media/<token>` endpoint a phone call uses.

const LINE_RATE = 8000;
const BURST_GAP_BYTES = 4000; // 0.5 s of silence between two bursts of bot audio

function base64(bytes) {
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text);
}

function unbase64(text) {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

function sid(prefix) {
  const hex = Array.from(crypto.getRandomValues(new Uint8Array(16)),
    (b) => b.toString(16).padStart(2, "0")).join("");
  return prefix + hex;
}

export class BrowserPhone {
  // `api(path, options)`: the console's authorised fetch; `onChange()`: the state changed.
  constructor(api, onChange) {
    this.api = api; this.onChange = onChange;
    this.state = "idle"; this.error = "";
    this.heardBytes = 0; this.bursts = []; this.marksEchoed = 0; this.clears = 0;
    this.sequence = 0; this.chunk = 0; this.silentSince = 0;
  }

  async call(pipeline) {
    this.state = "dialing"; this.onChange();
    try {
      const call = await this.api("/console/calls", {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ pipeline }),
      });
      this.callSid = call.call_sid;
      await this.openAudio();
      this.openStream(call);
    } catch (error) {
      this.fail(`could not place the call: ${error.message}`);
    }
  }

  async openAudio() {
    this.microphone = await navigator.mediaDevices.getUserMedia({ audio: true });
    try { // the browser resamples the microphone and the speaker to the line's rate
      await this.connectAudio(new AudioContext({ sampleRate: LINE_RATE }));
    } catch { // a browser that cannot (Firefox: a microphone at another rate): the worklet does
      await this.connectAudio(new AudioContext());
    }
  }

  async connectAudio(context) {
    try {
      await context.audioWorklet.addModule("/console/static/phone-worklet.js");
      const line = new AudioWorkletNode(context, "phone-line", { outputChannelCount: [1] });
      line.port.onmessage = (event) => this.fromLine(event.data);
      context.createMediaStreamSource(this.microphone).connect(line);
      line.connect(context.destination);
      await context.resume();
      this.context = context; this.line = line;
    } catch (error) {
      context.close();
      throw error;
    }
  }

  openStream(call) {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    this.socket = new WebSocket(`${scheme}//${location.host}${call.stream_path}`);
    this.streamSid = sid("MZ");
    this.socket.onopen = () => {
      this.send({ event: "connected", protocol: "Call", version: "1.0.0" });
      this.send({
        event: "start", streamSid: this.streamSid,
        start: {
          accountSid: "", streamSid: this.streamSid, callSid: call.call_sid,
          tracks: ["inbound"], customParameters: call.parameters,
          mediaFormat: { encoding: "audio/x-mulaw", sampleRate: LINE_RATE, channels: 1 },
        },
      });
      this.startedAt = performance.now();
      this.state = "connected"; this.onChange();
    };
    this.socket.onmessage = (event) => this.fromServer(JSON.parse(event.data));
    this.socket.onclose = (event) => {
      if (this.state === "dialing") this.fail(`the server refused the stream (${event.code})`);
      else this.ended("the bot hung up");
    };
  }

  send(message) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      if (message.event !== "connected") message.sequenceNumber = String(++this.sequence);
      this.socket.send(JSON.stringify(message));
    }
  }

  fromServer(message) {
    if (message.event === "media") {
      this.line.port.postMessage({ play: unbase64(message.media.payload) });
    } else if (message.event === "mark") {
      this.line.port.postMessage({ mark: message.mark.name });
    } else if (message.event === "clear") {
      this.clears++;
      this.line.port.postMessage({ clear: true });
      this.onChange();
    }
  }

  fromLine(message) {
    if (message.media && this.state === "connected") {
      this.chunk++;
      this.send({
        event: "media", streamSid: this.streamSid,
        media: {
          track: "inbound", chunk: String(this.chunk),
          timestamp: String(Math.round(performance.now() - this.startedAt)),
          payload: base64(message.media),
        },
      });
    } else if (message.heard) {
      this.heard(message.heard);
    } else if (message.mark !== undefined) {
      this.marksEchoed++;
      this.send({ event: "mark", streamSid: this.streamSid, mark: { name: message.mark } });
    }
  }

  // What played at the speaker, in bursts: a new one after half a second of silence.
  heard(bytes) {
    const now = this.chunk * 160; // the line's clock: microphone samples sent so far
    if (!this.bursts.length || now - this.lastHeardAt > BURST_GAP_BYTES) this.bursts.push([]);
    this.bursts[this.bursts.length - 1].push(...bytes);
    this.lastHeardAt = now + bytes.length;
    this.heardBytes += bytes.length;
    this.onChange();
  }

  hangUp() {
    this.send({ event: "stop", streamSid: this.streamSid, stop: { callSid: this.callSid } });
    this.ended("you hung up");
  }

  fail(reason) {
    this.error = reason;
    this.ended(reason);
  }

  ended(reason) {
    if (this.state === "ended") return;
    this.state = "ended"; this.endReason = reason;
    if (this.socket) this.socket.close();
    if (this.microphone) this.microphone.getTracks().forEach((track) => track.stop());
    if (this.context) this.context.close();
    this.onChange();
  }

  // For tests and the curious: each burst of bot audio heard, base64 μ-law.
  heardBursts() {
    return this.bursts.map((burst) => base64(burst));
  }
}
