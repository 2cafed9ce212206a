"""WebSocket handlers of the chat (routed under /ws/chat/)."""
from django.urls import path

from . import handlers

urlpatterns = [path("presence/<slug:slug>/", handlers.presence, name="chat-presence-ws")]
