"""Plain pages served by gunicorn: rooms, accounts and message history."""
import json

from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import UserCreationForm
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from tokens import httplimit
from tokens.auth import session_or_token

from . import delivery, protocol
from .exceptions import ClientError
from .forms import RoomForm
from .models import Message, Room
from .poll import parse_after


@require_GET
def room_list(request):
    return render(request, "chat/room_list.html", {"rooms": Room.objects.all(), "form": RoomForm()})


@login_required
@require_POST
def room_create(request):
    form = RoomForm(request.POST)
    if not form.is_valid():
        return render(request, "chat/room_list.html",
                      {"rooms": Room.objects.all(), "form": form}, status=400)
    room = Room.objects.create(slug=form.cleaned_data["slug"], name=form.cleaned_data["name"])
    return redirect(room)


@login_required
@require_GET
def room_detail(request, slug):
    room = get_object_or_404(Room, slug=slug)
    history = list(room.messages.select_related("user", "room").order_by("-seq")[:50])[::-1]
    return render(request, "chat/room.html", {
        "room": room,
        # Escaped so message text can never close the <script> element it sits in.
        "history_json": json.dumps([m.as_frame() for m in history]).replace("<", "\\u003c")
        .replace(">", "\\u003e").replace("&", "\\u0026"),
        "max_length": settings.CHAT_MESSAGE_MAX_LENGTH,
        "ws_protocol": protocol.VERSION,
    })


@session_or_token
@require_http_methods(["GET", "POST"])
def room_messages(request, slug):
    """GET: messages after ?after=<id>, oldest first (how clients catch up).
    POST text + client_id: send a message without a WebSocket (the long-poll fallback)."""
    room = get_object_or_404(Room, slug=slug)
    if request.method == "POST":
        return _post_message(request, room)
    after = parse_after(request.GET.get("after"))
    if after is None:
        return JsonResponse({"type": "error", "code": "invalid_after",
                             "detail": "after must be a non-negative integer"}, status=400)
    messages = Message.objects.after(after).filter(room=room).select_related("user", "room")[:1000]
    return JsonResponse([m.as_frame() for m in messages], safe=False)


def _post_message(request, room):
    limited = httplimit.refusal(request, request.POST.get("client_id"))  # 429 past the sends' bucket
    if limited is not None:
        return limited
    try:
        frame = protocol.validate_message({
            "type": "message", "text": request.POST.get("text"), "client_id": request.POST.get("client_id")})
    except ClientError as error:
        return JsonResponse(error.as_frame(), status=400)
    stored, created = Message.post(room, request.user, frame["client_id"], frame["text"])
    delivery.deliver(room, stored, created)
    return JsonResponse({"type": "ack", "client_id": stored.client_id, "id": stored.seq})


@require_http_methods(["GET", "POST"])
def signup(request):
    form = UserCreationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        login(request, form.save())
        return redirect("/")
    return render(request, "registration/signup.html", {"form": form}, status=400 if form.errors else 200)
