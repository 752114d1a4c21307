// Users page: a role chosen in the table is saved at once.
import { api, showErrors } from "/admin/static/js/api.js";

document.addEventListener("change", async (event) => {
  const select = event.target.closest("select[data-user-role]");
  if (!select) return;
  try {
    await api("PATCH", `/api/admin/users/${select.dataset.userRole}`, { role: select.value });
    location.reload();
  } catch (error) {
    showErrors(document.body, error);
  }
});
