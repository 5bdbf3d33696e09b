"""`notifications_unread` on every page: the nav's badge."""
from django.utils.functional import SimpleLazyObject

from .models import Notification


def unread(request):
    """The logged-in user's unread notifications, counted (one query) only if the page shows them;
    nothing for anonymous users."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"notifications_unread": SimpleLazyObject(
        lambda: Notification.objects.filter(user=user, read__isnull=True).count())}
