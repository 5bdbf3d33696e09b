"""The chat message, stored as the project stores it (per-room id, idempotent per client_id)."""
from django.db import models


class Message(models.Model):
    """A stored chat message; seq is the room's gapless id."""
    room = models.CharField(max_length=50)
    seq = models.PositiveIntegerField()
    client_id = models.CharField(max_length=64, unique=True)
    text = models.TextField()
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        unique_together = (("room", "seq"),)
