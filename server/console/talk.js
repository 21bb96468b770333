// The "Talk to the bot" page: pick a pipeline, call it from the browser, see what was heard.

import { api, build } from "./common.js";

export class TalkPage {
  constructor(phone) {
    this.phone = phone;
  }

  async show(view) {
    this.pipelines = (await api("/console/pipelines")).pipelines;
    this.view = view;
    this.render();
  }

  // The phone changed: the page is rebuilt when its state did, else only its figures change
  // (they change with every 20 ms of bot audio heard).
  changed() {
    if (!this.view) return;
    if (this.phone.state !== this.shownState) this.render();
    else this.update();
  }

  render() {
    const phone = this.phone;
    this.shownState = phone.state;
    const box = build("div", { className: "phone", id: "phone" }, [
      build("h1", {}, ["Talk to the bot"]),
      build("p", { className: "muted" }, [
        "Your microphone and speaker, as a phone line: the same stream and pipeline a call " +
        "gets, recorded like any other call."]),
    ]);
    if (phone.state === "idle" || phone.state === "ended") {
      const select = build("select", { id: "pipeline" },
        (this.pipelines || []).map((name) => build("option", { value: name }, [name])));
      const button = build("button", { id: "call", type: "button" }, ["Call"]);
      button.onclick = () => phone.call(select.value);
      box.append(build("label", {}, ["Pipeline ", select]), button);
    } else {
      const button = build("button", { id: "hang-up", type: "button" }, ["Hang up"]);
      button.onclick = () => phone.hangUp();
      box.append(button);
    }
    box.append(
      build("p", { id: "phone-state" }, [`State: ${phone.state}`,
        phone.endReason ? ` (${phone.endReason})` : ""]),
      build("p", { id: "phone-heard" }),
      build("ol", { id: "phone-replies" }),
      phone.callSid && build("p", {}, ["Call ",
        build("a", { href: `#/calls/${phone.callSid}` }, [phone.callSid])]),
      phone.error && build("p", { className: "error" }, [phone.error]),
    );
    this.view.replaceChildren(box);
    this.update();
  }

  update() {
    const phone = this.phone;
    const heard = this.view.querySelector("#phone-heard");
    if (!heard) return;
    heard.textContent = `Bot audio heard: ${(phone.heardBytes / 8000).toFixed(1)} s in ` +
      `${phone.bursts.length} replies · marks echoed: ${phone.marksEchoed} · ` +
      `cleared: ${phone.clears}`;
    this.view.querySelector("#phone-replies").replaceChildren(...phone.bursts.map((burst) =>
      build("li", {}, [`bot spoke: ${(burst.length / 8000).toFixed(1)} s heard`])));
  }
}
