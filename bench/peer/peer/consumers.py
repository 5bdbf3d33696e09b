"""The two consumers the benchmark drives: a raw echo and a chat room (store, broadcast, ack)."""
import json

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.db import IntegrityError, transaction
from django.db.models import Max

from .models import Message


class Echo(AsyncWebsocketConsumer):
    """Each frame straight back, in the interface server's process."""

    async def receive(self, text_data=None, bytes_data=None):
        await self.send(text_data=text_data)


class Room(AsyncWebsocketConsumer):
    """The chat: a message is stored with the room's next id, sent to the room's group, acked."""

    async def connect(self):
        self.room = self.scope["url_route"]["kwargs"]["slug"]
        self.group = "room-%s" % self.room
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        frame = json.loads(text_data)
        if frame.get("type") != "message":
            return
        stored = await self.store(frame["client_id"], frame["text"])
        await self.channel_layer.group_send(self.group, {"type": "chat.message", "frame": {
            "type": "message", "id": stored.seq, "room": self.room, "text": stored.text,
            "ts": stored.created.isoformat(), "client_id": stored.client_id}})
        await self.send(text_data=json.dumps({"type": "ack", "client_id": stored.client_id,
                                              "id": stored.seq}))

    async def chat_message(self, event):
        await self.send(text_data=json.dumps(event["frame"]))

    @database_sync_to_async
    def store(self, client_id, text):
        try:
            with transaction.atomic():
                last = Message.objects.filter(room=self.room).aggregate(m=Max("seq"))["m"] or 0
                return Message.objects.create(room=self.room, seq=last + 1, client_id=client_id, text=text)
        except IntegrityError:
            return Message.objects.get(client_id=client_id)
