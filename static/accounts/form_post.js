// Posts Entra's sign-in answer on to the portal by itself, as Microsoft's own form_post page does.
document.addEventListener("DOMContentLoaded", function () {
  var form = document.getElementById("form-post");
  if (form) {
    form.submit();
  }
});
