"""WebSocket handlers of the Game of Life (routed under /ws/gameoflife/)."""
from django.urls import path

from . import handlers

urlpatterns = [
    path("reset/", handlers.reset, name="gameoflife-reset"),
    path("cell/<int:run_id>/<int:index>/", handlers.cell, name="gameoflife-cell"),
    path("watch/", handlers.watch, name="gameoflife-watch"),
]
