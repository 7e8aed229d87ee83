// The service's HTTP API: JSON in and out, the token in the Authorization header.

/** An error answer of the service: {"error": {"category", "message", "request_id"}}. */
export class ApiError extends Error {
  constructor(status, category, message, requestId) {
    super(message);
    this.status = status;
    this.category = category;
    this.requestId = requestId;
  }

  describe() {
    return this.requestId ? `${this.message} (request ${this.requestId})` : this.message;
  }
}

export class Api {
  /**
   * @param {URL} base where the service's paths start (the page's own origin and prefix)
   * @param {() => string | null} token reads the current token
   * @param {() => void} onUnauthorized called when the service refuses the token
   */
  constructor(base, token, onUnauthorized) {
    this.base = base;
    this.token = token;
    this.onUnauthorized = onUnauthorized;
  }

  url(path, query = {}) {
    const url = new URL(path, this.base);
    for (const [key, value] of Object.entries(query)) {
      if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, value);
    }
    return url;
  }

  headers(extra = {}) {
    const token = this.token();
    return { ...(token ? { Authorization: `Bearer ${token}` } : {}), ...extra };
  }

  /** The raw response of a request; throws ApiError for an error answer. */
  async fetch(method, path, { body, query, headers, signal } = {}) {
    const init = { method, headers: this.headers(headers), signal, cache: "no-store" };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers["Content-Type"] = "application/json";
    }
    const response = await fetch(this.url(path, query), init);
    if (!response.ok) throw await errorOf(response, this.onUnauthorized);
    return response;
  }

  async json(method, path, options) {
    const response = await this.fetch(method, path, options);
    return response.status === 204 ? null : response.json();
  }

  get(path, query) {
    return this.json("GET", path, { query });
  }

  post(path, body = {}) {
    return this.json("POST", path, { body });
  }
}

async function errorOf(response, onUnauthorized) {
  let error = {};
  try {
    error = (await response.json()).error || {};
  } catch {
    // not JSON: a proxy's page, say
  }
  if (response.status === 401) onUnauthorized();
  return new ApiError(
    response.status,
    error.category || `http_${response.status}`,
    error.message || `${response.status} ${response.statusText}`.trim(),
    error.request_id || response.headers.get("x-request-id"),
  );
}
