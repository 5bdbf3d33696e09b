"""The login page with throttling (guard.throttle): django.contrib.auth's LoginView, extended."""
import math

from django.contrib.auth import views as auth_views

from . import throttle
from .addresses import client_address


class ThrottledLoginView(auth_views.LoginView):
    """LoginView that refuses (429, Retry-After) a username or address with too many recent failures,
    before checking the password: a locked-out attempt learns nothing, even with the right one."""

    def post(self, request, *args, **kwargs):
        wait = throttle.retry_after(self.username(), client_address(request))
        if wait:
            return self.refuse(wait)
        return super(ThrottledLoginView, self).post(request, *args, **kwargs)

    def username(self):
        return self.request.POST.get("username", "")

    def form_invalid(self, form):
        throttle.record_failure(self.username(), client_address(self.request))
        return super(ThrottledLoginView, self).form_invalid(form)

    def form_valid(self, form):
        throttle.clear(self.username())
        return super(ThrottledLoginView, self).form_valid(form)

    def refuse(self, wait):
        minutes = int(math.ceil(wait / 60.0))
        refused = ("Too many failed logins for this username or from this address: try again in %d minute%s." %
                   (minutes, "" if minutes == 1 else "s"))
        response = self.render_to_response(self.get_context_data(form=self.get_form(), refused=refused), status=429)
        response["Retry-After"] = str(wait)
        return response
