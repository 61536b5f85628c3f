// Files in the browser is not built yet: an honest placeholder until its view lands (issue 19).
import {notAvailable} from "../dom.js";

export async function mount(root) {
  notAvailable(root, "Files");
}
