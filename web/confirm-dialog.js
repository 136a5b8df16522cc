// One question before a step that cannot be taken back (removing someone, ending the call for
// everyone): a modal <dialog> with the question, Cancel and the step's own button.

const $ = (id) => document.getElementById(id);

let pending = null; // the resolve of the question on screen

/** Ask `question`; resolves to true only when the user pressed the `confirm` button. */
export function confirmStep(question, confirm) {
  const dialog = $("confirm-dialog");
  if (dialog.open) return Promise.resolve(false); // one question at a time
  $("confirm-text").textContent = question;
  $("confirm-ok").textContent = confirm;
  dialog.returnValue = "";
  return new Promise((resolve) => {
    pending = resolve;
    dialog.showModal();
    $("confirm-cancel").focus();
  });
}

/** Close the question (the call ended under it): it counts as Cancel. */
export function dismissConfirm() {
  const dialog = $("confirm-dialog");
  if (dialog.open) dialog.close("cancel");
}

export function setupConfirmDialog() {
  // Escape, Cancel and the confirm button all close the dialog; returnValue says which.
  $("confirm-dialog").addEventListener("close", () => {
    const resolve = pending;
    pending = null;
    if (resolve) resolve($("confirm-dialog").returnValue === "ok");
  });
}
