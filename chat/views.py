"""Plain pages served by gunicorn: rooms, accounts and message history."""
import json
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from tokens import httplimit
from tokens.auth import session_or_token

from . import delivery, edits, members, protocol, reads
from .exceptions import ClientError
from .forms import RoomForm, SignupForm
from .models import Membership, Message, Room
from .poll import parse_after


def _rooms(user):
    """The rooms the user may open, each with its unread count (`unread`)."""
    rooms = list(Room.objects.visible_to(user))
    unread = reads.counts(user, rooms)
    for room in rooms:
        room.unread = unread.get(room.pk, 0)
    return rooms


def _room_list(request, form, status=200):
    return render(request, "chat/room_list.html", {"rooms": _rooms(request.user), "form": form}, status=status)


@require_GET
def room_list(request):
    return _room_list(request, RoomForm())


@login_required
@require_POST
def room_create(request):
    form = RoomForm(request.POST)
    if not form.is_valid():
        return _room_list(request, form, status=400)
    room = Room.objects.create(slug=form.cleaned_data["slug"], name=form.cleaned_data["name"],
                               private=form.cleaned_data["private"], owner=request.user)
    if room.private:
        Membership.objects.create(room=room, user=request.user)
    return redirect(room)


def _admitted_room(request, slug):
    """The room, if the user may open it; Http404 / PermissionDenied (403) otherwise."""
    room = get_object_or_404(Room, slug=slug)
    if not room.admits(request.user):
        raise PermissionDenied("room %r is private" % slug)
    return room


# The page shows the latest entries of the stream; older messages load as the user scrolls up.
PAGE = 50


@login_required
@require_GET
def room_detail(request, slug):
    room = _admitted_room(request, slug)
    history = list(room.messages.select_related("user", "room").order_by("-seq")[:PAGE])[::-1]
    rooms = _rooms(request.user)  # the room list's counts, which read frames keep live; this one's among them
    return render(request, "chat/room.html", {
        "room": room,
        # Escaped so message text can never close the <script> element it sits in.
        "history_json": json.dumps([m.as_frame() for m in history]).replace("<", "\\u003c")
        .replace(">", "\\u003e").replace("&", "\\u0026"),
        "max_length": settings.CHAT_MESSAGE_MAX_LENGTH,
        "ws_protocol": protocol.VERSION,
        "unread": next(listed.unread for listed in rooms if listed.pk == room.pk),
        "rooms": rooms,
        "members": room.memberships.select_related("user") if room.private else (),
        "manageable": room.manageable_by(request.user),
        "member_error": request.GET.get("member_error", ""),
    })


@login_required
@require_POST
def room_members(request, slug, action):
    """POST username: invite them to the private room, or remove them (closing their sockets)."""
    room = _admitted_room(request, slug)
    if not room.manageable_by(request.user):
        raise PermissionDenied("only the room's owner (or staff) manages its members")
    try:
        (members.invite if action == "invite" else members.remove)(room, request.POST.get("username", ""))
    except ClientError as error:
        if request.META.get("HTTP_ACCEPT", "").startswith("application/json"):
            return JsonResponse(error.as_frame(), status=400)
        return redirect("%s?%s#members" % (room.get_absolute_url(), urlencode({"member_error": error.detail})))
    return redirect(room.get_absolute_url() + "#members")


@session_or_token
@require_http_methods(["GET", "POST"])
def room_messages(request, slug):
    """GET: messages after ?after=<id>, oldest first (how clients catch up).
    POST text + client_id: send a message without a WebSocket (the long-poll fallback)."""
    try:
        room = _admitted_room(request, slug)
    except PermissionDenied as denied:
        return JsonResponse({"type": "error", "code": "not_a_member", "detail": str(denied)}, status=403)
    if request.method == "POST":
        return _post_message(request, room)
    if "before" in request.GET:
        return _older(request, room)
    after = parse_after(request.GET.get("after"))
    if after is None:
        return JsonResponse({"type": "error", "code": "invalid_after",
                             "detail": "after must be a non-negative integer"}, status=400)
    messages = Message.objects.after(after).filter(room=room).select_related("user", "room")[:1000]
    return JsonResponse([m.as_frame() for m in messages], safe=False)


def _older(request, room):
    """GET ?before=<id>: the PAGE messages before that id, oldest first (the page's scroll back)."""
    before = parse_after(request.GET.get("before"))
    if not before:
        return JsonResponse({"type": "error", "code": "invalid_before",
                             "detail": "before must be a positive integer"}, status=400)
    older = room.messages.said().filter(seq__lt=before).select_related("user", "room").order_by("-seq")[:PAGE]
    return JsonResponse([m.as_frame() for m in reversed(older)], safe=False)


def _post_message(request, room):
    """POST type (message, the default; edit; delete), id, text, client_id: a change without a
    WebSocket, answered with its ack or an error body."""
    limited = httplimit.refusal(request, request.POST.get("client_id"))  # 429 past the sends' bucket
    if limited is not None:
        return limited
    fields = {name: request.POST.get(name) for name in ("type", "id", "text", "client_id")}
    fields["type"] = fields["type"] or "message"
    try:
        frame = protocol.validate(fields)
        if frame["type"] not in protocol.CHANGES:
            raise ClientError("unknown_type", "send read marks over the WebSocket")
        stored, created = edits.store(room, request.user, frame)
    except ClientError as error:
        return JsonResponse(error.as_frame(), status=403 if error.code == "not_yours" else 400)
    delivery.deliver(room, stored, created)
    return JsonResponse({"type": "ack", "client_id": stored.client_id, "id": stored.seq})


@require_http_methods(["GET", "POST"])
def signup(request):
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        login(request, form.save())
        return redirect("/")
    return render(request, "registration/signup.html", {"form": form}, status=400 if form.errors else 200)
