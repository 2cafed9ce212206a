"""WebSocket handlers of the Game of Life (routed under /ws/gameoflife/)."""
urlpatterns: list = []
