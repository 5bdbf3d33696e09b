"""No pages: the peer answers WebSockets only."""
urlpatterns = []
