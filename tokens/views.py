"""The tokens page: list, create (the token shown once) and revoke a user's personal API tokens."""
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from . import auth
from .forms import MAX_NAME_LENGTH, TokenForm
from .models import ApiToken


@never_cache  # the page may carry a new token: no cache keeps it
@login_required
@require_http_methods(["GET", "POST"])
def token_list(request):
    """GET: the user's tokens and the create form. POST name (+ expires_in_days): create a token and
    show it, this once."""
    form = TokenForm(request.POST if request.method == "POST" else None)
    created = status = None
    if request.method == "POST":
        if form.is_valid():
            created = ApiToken.issue(request.user, form.cleaned_data["name"], form.cleaned_data["expires_in_days"])
            form = TokenForm()
        else:
            status = 400
    return render(request, "tokens/token_list.html", {
        "tokens": ApiToken.objects.filter(user=request.user),
        "form": form,
        "errors": form.coded_errors() if form.is_bound else [],
        "created": created,  # (ApiToken, the token): the only time the token is on a page
        "max_name_length": MAX_NAME_LENGTH,
    }, status=status)


@login_required
@require_POST
def token_revoke(request, pk):
    """Revoke one of the user's tokens (again: nothing changes) and close the sockets it opened."""
    auth.revoke(get_object_or_404(ApiToken, pk=pk, user=request.user))
    return redirect("tokens")
