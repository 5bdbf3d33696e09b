"""Notifications of mentions: who was named in a message, told live on their sockets and listed on a page."""
