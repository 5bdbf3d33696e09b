"""The notifications page: a user's mentions, newest first, read or not."""
import re

from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from chat.exceptions import ClientError
from chat.models import Room

from .models import Notification

# The page lists this many, newest first (older ones stay, counted in the badge while unread).
PAGE = 100


@login_required
@require_GET
def notification_list(request):
    notifications = list(Notification.objects.filter(user=request.user)
                         .select_related("message", "message__user", "room")[:PAGE])
    # A member removed from a private room keeps the notification, not the room's later text.
    readable = set(Room.objects.visible_to(request.user).filter(pk__in={n.room_id for n in notifications})
                   .values_list("pk", flat=True)) if notifications else set()
    for notification in notifications:
        notification.readable = notification.room_id in readable
    return render(request, "notifications/list.html", {
        "notifications": notifications,
        # "Mark all read" marks what the page shows and older: one that arrives meanwhile stays unread.
        "up_to": notifications[0].pk if notifications else 0,
    })


@login_required
@require_GET
def notification_open(request, pk):
    """Following a notification's link marks it read and goes to its message in the room. A GET,
    so that the link is a link (it opens in a new tab, works without script): marking one's own
    notification read is idempotent and reveals nothing, whoever made the browser follow it."""
    notification = get_object_or_404(Notification.objects.select_related("message", "room"),
                                     pk=pk, user=request.user)
    if notification.read is None:
        Notification.objects.filter(pk=notification.pk, read__isnull=True).update(read=timezone.now())
    return redirect(notification.get_absolute_url())


@login_required
@require_POST
def mark_all_read(request):
    """POST (CSRF): every unread notification of the user is read; with up_to=<id> (the page sends
    the newest it shows) only those up to that id."""
    try:
        up_to = _parse_up_to(request.POST.get("up_to"))
    except ClientError as error:
        return JsonResponse(error.as_frame(), status=400)
    unread = Notification.objects.filter(user=request.user, read__isnull=True)
    if up_to is not None:
        unread = unread.filter(pk__lte=up_to)
    unread.update(read=timezone.now())
    return redirect("notification_list")


def _parse_up_to(value):
    if value is None:
        return None
    if not re.fullmatch(r"[0-9]{1,18}", value):
        raise ClientError("invalid_up_to", "up_to must be the id of the newest notification to mark read "
                                           "(a non-negative integer)")
    return int(value)
