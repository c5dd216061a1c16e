// Messages shared by every view: the error region (role=alert) and the signed-in key.
import { ApiError } from "./api.js";
import { byId, fill, message } from "./dom.js";

/** The signed-in key as GET /admin/v1/key describes it; role "unknown" when the server
 * cannot say (then the API alone decides what the key may do). */
export const who = { name: "", role: "unknown", scopes: [] };

/** Show an error (an ApiError, an Error or a string) in the page's alert region. */
export function showError(error, context = "") {
  let text = error instanceof ApiError ? error.describe()
    : error instanceof Error ? error.message : String(error);
  if (context) text = `${context}: ${text}`;
  fill(byId("errors"), message(text, "error"));
}

export function clearErrors() {
  byId("errors").replaceChildren();
}

/** Run an action with its button busy, errors shown; resolves to the action's result
 * or undefined when it failed. */
export async function busy(button, context, action) {
  if (button) {
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
  }
  try {
    clearErrors();
    return await action();
  } catch (error) {
    showError(error, context);
    return undefined;
  } finally {
    if (button) {
      button.disabled = false;
      button.removeAttribute("aria-busy");
    }
  }
}
