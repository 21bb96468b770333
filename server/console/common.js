// What every page uses: the token kept in the console's cookie, the API, DOM building.

const COOKIE = "console_token";
let unauthorised = () => {};

export function token() {
  const entry = document.cookie.split("; ").find((c) => c.startsWith(COOKIE + "="));
  return entry ? decodeURIComponent(entry.slice(COOKIE.length + 1)) : "";
}

export function onUnauthorised(handler) {
  unauthorised = handler;
}

// GET (or `options`) `path` with the bearer token; the JSON body, or an Error saying why not.
export async function api(path, options = {}) {
  const headers = { ...(options.headers || {}), Authorization: `Bearer ${token()}` };
  const response = await fetch(path, { ...options, headers });
  if (response.status === 401) {
    unauthorised();
    throw new Error("not logged in");
  }
  const body = response.status === 204 ? null : await response.json();
  if (!response.ok) throw new Error((body && (body.error || body.detail)) || response.statusText);
  return body;
}

export function build(tag, props = {}, children = []) {
  const element = Object.assign(document.createElement(tag), props);
  element.append(...children.filter((c) => c !== null && c !== undefined && c !== false));
  return element;
}
