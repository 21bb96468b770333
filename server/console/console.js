// The operator's console: live calls, the call list, one call, a pipeline's latency, and a
// call to the bot from the browser. Reads `GET /calls` and `GET /calls/{call_sid}`.

import { api, build, onUnauthorised, token } from "./common.js";
import { BrowserPhone } from "./phone.js";
import { callPage, callsPage, livePage, pipelinePage, pipelinesPage } from "./pages.js";
import { TalkPage } from "./talk.js";

const page = document.getElementById("page");
let refresh = null; // the current page's poll timer

function showLogin(message = "") {
  document.getElementById("nav").hidden = true;
  document.getElementById("login").hidden = false;
  document.getElementById("login-error").textContent = message;
  page.replaceChildren();
}

async function logIn(event) {
  event.preventDefault();
  const given = document.getElementById("token").value.trim();
  const response = await fetch("/console/session", {
    method: "POST", headers: { Authorization: `Bearer ${given}` },
  });
  if (!response.ok) return showLogin("Wrong token.");
  document.getElementById("token").value = "";
  route();
}

async function logOut() {
  await fetch("/console/session", { method: "DELETE" });
  showLogin();
}

// One phone for the page's lifetime: a call goes on while the operator looks at other pages.
const phone = new BrowserPhone(api, () => talkPage.changed());
const talkPage = new TalkPage(phone);
window.browserPhone = phone;

let shown = 0; // which navigation the page shows: a slower, older one never overwrites it

async function route() {
  if (!token()) return showLogin();
  document.getElementById("login").hidden = true;
  document.getElementById("nav").hidden = false;
  clearInterval(refresh);
  const [, section = "live", ...rest] = location.hash.split("/");
  for (const link of document.querySelectorAll("#nav a")) {
    link.classList.toggle("current", link.getAttribute("href") === `#/${section}`);
  }
  const arg = decodeURIComponent(rest.join("/"));
  const render = {
    calls: (view) => (arg ? callPage(view, arg) : callsPage(view)),
    pipelines: (view) => (arg ? pipelinePage(view, arg) : pipelinesPage(view)),
    talk: (view) => talkPage.show(view),
    live: (view) => livePage(view),
  }[section] || livePage;
  if (section !== "talk") talkPage.view = null;
  const navigation = ++shown;
  const show = async () => {
    const view = build("div", { id: `page-${section}` });
    try {
      await render(view);
    } catch (error) {
      view.replaceChildren(build("p", { className: "error" }, [error.message]));
    }
    if (navigation === shown && token()) page.replaceChildren(view);
  };
  await show();
  if (section === "live" && navigation === shown) refresh = setInterval(show, 2000);
}

onUnauthorised(() => showLogin("The token was refused: log in again."));
document.getElementById("login").addEventListener("submit", logIn);
document.getElementById("log-out").addEventListener("click", logOut);
window.addEventListener("hashchange", route);
route();
